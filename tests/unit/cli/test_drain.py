"""`drain`: which pods are skipped, migrated, evicted or left; the plan, the summary, the verdict; the runner with a
fake orchestrator and a fake API server (no sleeps: the fakes' sleep only advances a clock)."""

from __future__ import annotations

import argparse
import asyncio
import io
from dataclasses import dataclass, field
from typing import Any

import pytest

from ai_storage_orchestrator.cli import build_parser
from ai_storage_orchestrator.cli.client import ApiError, CliError, UsageError
from ai_storage_orchestrator.cli.drain import Drainer, drain_with, interrupted_lines
from ai_storage_orchestrator.cli.drain_pods import (
    Action,
    Outcome,
    PodWork,
    apply_dry_run,
    daemonset_blockers,
    parse_duration,
    plan_lines,
    remaining_problem,
    skip_reason,
    sort_pods,
    summary_lines,
)
from ai_storage_orchestrator.cli.drain_progress import DrainProgress, plain_line
from ai_storage_orchestrator.cli.plugin import build_parser as plugin_parser
from ai_storage_orchestrator.cli.plugin import plugin_argv
from ai_storage_orchestrator.kube.errors import KubeApiError
from tests.unit.cli.conftest import screen

JSON = dict[str, Any]
NODE = "node-a"
PDB_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


def pod(name: str, *, namespace: str = "ml", owner: str | None = None, **metadata: Any) -> JSON:
    meta: JSON = {"name": name, "namespace": namespace, "uid": f"uid-{name}", **metadata}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": f"{name}-owner", "controller": True}]
    return {"metadata": meta, "spec": {"nodeName": NODE}}


def refused(reason: str = "owned_by_controller") -> ApiError:
    check = {"name": "not_owned_by_controller", "passed": False, "reason": reason, "message": "owned by ReplicaSet"}
    body = {"error": reason, "message": "the pod is owned by ReplicaSet web", "details": {"failed_checks": [check]}}
    return ApiError(422, body)


# sorting --------------------------------------------------------------------------------------------------------
def test_skipped_like_kubectl_drain() -> None:
    assert skip_reason(pod("plain")) is None
    assert skip_reason(pod("rs", owner="ReplicaSet")) is None  # the orchestrator decides about owned pods
    assert "DaemonSet ds-owner" in str(skip_reason(pod("ds", owner="DaemonSet")))
    mirror = pod("static", annotations={"kubernetes.io/config.mirror": "abc"})
    assert "mirror pod" in str(skip_reason(mirror))
    assert skip_reason(pod("going", deletionTimestamp="2024-05-01T10:00:00Z")) == "already terminating"


def test_sort_pods_separates_candidates_and_skipped_in_order() -> None:
    candidates, skipped = sort_pods([pod("b"), pod("ds", owner="DaemonSet"), pod("a", namespace="x"), pod("a")])
    assert [w.key for w in candidates] == ["ml/a", "ml/b", "x/a"]
    assert [(w.key, w.action, w.outcome) for w in skipped] == [("ml/ds", Action.SKIP, Outcome.SKIPPED)]
    assert candidates[0].uid == "uid-a"


def test_daemonset_pods_block_without_ignore_daemonsets() -> None:
    pods = [pod("ds", owner="DaemonSet"), pod("x"), pod("gone", owner="DaemonSet", deletionTimestamp="t")]
    assert daemonset_blockers(pods) == ["ml/ds"]


def test_dry_run_plan_accepted_refused_and_left() -> None:
    accepted = PodWork("ml", "a")
    plan = {"ok": True, "request": {"target_node": "node-b"}, "target_choice": {"chosen": {"node": "node-b"}}}
    apply_dry_run(accepted, plan, evict=True)
    assert (accepted.action, accepted.target) == (Action.MIGRATE, "node-b")
    checks = [
        {"name": "a", "passed": True, "reason": None},
        {"name": "b", "passed": False, "reason": "owned_by_controller", "message": "owned by ReplicaSet web"},
    ]
    evicted, left = PodWork("ml", "b"), PodWork("ml", "c")
    apply_dry_run(evicted, {"ok": False, "checks": checks}, evict=True)
    apply_dry_run(left, {"ok": False, "checks": checks}, evict=False)
    assert (evicted.action, evicted.reason) == (Action.EVICT, "refused (owned_by_controller): owned by ReplicaSet web")
    assert left.action is Action.LEAVE
    assert left.reason.endswith("left in place (--no-evict)")


def test_plan_lines() -> None:
    works = [
        PodWork("ml", "a", action=Action.MIGRATE, target="node-b", reason="least allocated"),
        PodWork("ml", "b", action=Action.EVICT, reason="refused (owned_by_controller)"),
        PodWork("ml", "ds", action=Action.SKIP, reason="managed by DaemonSet ds"),
        PodWork("ml", "x", reason="boom (http_500)"),
    ]
    assert plan_lines(NODE, works) == [
        "Drain plan for node node-a, dry run: nothing was changed (the node was not cordoned)",
        "NAMESPACE   POD   ACTION    TARGET   REASON",
        "ml          a     migrate   node-b   least allocated",
        "ml          b     evict     -        refused (owned_by_controller)",
        "ml          ds    skip      -        managed by DaemonSet ds",
        "ml          x     fail      -        boom (http_500)",
        "Would migrate 1, evict 1, skip 1, leave 0; 1 cannot be planned",
    ]


def test_summary_and_verdict() -> None:
    works = [
        PodWork("ml", "a", outcome=Outcome.MIGRATED, target="node-b", migration_id="m1"),
        PodWork("ml", "b", outcome=Outcome.EVICTED),
        PodWork("ml", "ds", outcome=Outcome.SKIPPED, reason="managed by DaemonSet ds"),
        PodWork("ml", "x", outcome=Outcome.FAILED, reason="eviction refused: forbidden"),
    ]
    assert summary_lines(NODE, works) == [
        "Node node-a: migrated 1, evicted 1, skipped 1, failed 1",
        "  migrated  ml/a -> node-b (migration m1)",
        "  skipped   ml/ds: managed by DaemonSet ds",
        "  failed    ml/x: eviction refused: forbidden",
    ]
    assert remaining_problem(NODE, [pod("ds", owner="DaemonSet")], set()) is None
    assert remaining_problem(NODE, [pod("kept")], {"uid-kept"}) is None
    assert remaining_problem(NODE, [pod("x"), pod("ds", owner="DaemonSet")], set()) == (
        "node node-a is not drained: 1 pod(s) that are not skipped are still on it: ml/x"
    )


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_a_usage_error() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_duration("5 minutes")


# progress -------------------------------------------------------------------------------------------------------
def test_plain_progress_lines_one_per_change() -> None:
    stream = io.StringIO()
    works = [PodWork("ml", "a"), PodWork("ml", "ds", action=Action.SKIP, state="skipped", outcome=Outcome.SKIPPED)]
    works[1].reason = "managed by DaemonSet ds"
    shown = DrainProgress(works, stream=stream, clock=lambda: 12.0)
    shown.start()
    works[0].started, works[0].action, works[0].state, works[0].target = 10.0, Action.MIGRATE, "Checkpointing", "b"
    shown.update(works[0])
    shown.update(works[0])  # unchanged: no line
    shown.stop()
    assert stream.getvalue().splitlines() == [
        "[      -] ml/ds skip: skipped (managed by DaemonSet ds)",
        "[   2.0s] ml/a migrate: Checkpointing -> b",
    ]
    assert plain_line(works[0], 15.5) == "[   5.5s] ml/a migrate: Checkpointing -> b"


# the runner with fakes -------------------------------------------------------------------------------------------
@dataclass
class FakeOrchestrator:
    refusals: dict[str, ApiError] = field(default_factory=dict)
    polls: dict[str, list[JSON]] = field(default_factory=dict)
    created: list[JSON] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def create(self, body: JSON) -> JSON:
        self.created.append(body)
        name = body["pod_name"]
        if name in self.refusals:
            raise self.refusals[name]
        if body.get("dry_run"):
            return {"ok": True, "request": {**body, "target_node": "node-b"}}
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.polls[name] = [
            {"migration_id": f"m-{name}", "status": "running", "phase": "Checkpointing", "target_node": "node-b"},
            {"migration_id": f"m-{name}", "status": "completed", "phase": "Completed", "target_node": "node-b"},
        ]
        return {"migration_id": f"m-{name}", "status": "pending", "phase": "Pending", "target_node": "node-b"}

    async def get(self, migration_id: str) -> JSON:
        answer = self.polls[migration_id.removeprefix("m-")].pop(0)
        if answer["status"] == "completed":
            self.in_flight -= 1
        return answer


@dataclass
class FakeCluster:
    pods: list[JSON]
    refuse_evictions: int = 0
    evict_error: KubeApiError | None = None
    cordoned: bool = False
    evicted: list[str] = field(default_factory=list)

    async def node_exists(self, node: str) -> bool:
        return node == NODE

    async def cordon(self, node: str) -> None:
        self.cordoned = True

    async def pods_on(self, node: str, namespace: str | None) -> list[JSON]:
        return [p for p in self.pods if namespace is None or p["metadata"]["namespace"] == namespace]

    async def evict(self, namespace: str, name: str, uid: str | None) -> None:
        if self.evict_error is not None:
            raise self.evict_error
        if self.refuse_evictions:
            self.refuse_evictions -= 1
            raise KubeApiError(429, "TooManyRequests", PDB_MESSAGE)
        self.evicted.append(name)
        self.pods = [p for p in self.pods if p["metadata"]["name"] != name]

    async def pod_present(self, namespace: str, name: str, uid: str | None) -> bool:
        return any(p["metadata"]["name"] == name for p in self.pods)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)  # let the other pods' tasks run, as a real wait would


def drainer(orchestrator: FakeOrchestrator, cluster: FakeCluster, **options: Any) -> tuple[Drainer, Clock]:
    clock = Clock()
    return Drainer(NODE, orchestrator, cluster, clock=clock, sleep=clock.sleep, **options), clock


async def test_migrates_accepted_pods_evicts_refused_ones_with_bounded_parallelism() -> None:
    pods = [pod("a"), pod("b"), pod("c"), pod("web", owner="ReplicaSet")]
    fake = FakeOrchestrator(refusals={"web": refused()})
    cluster = FakeCluster(list(pods), refuse_evictions=2)
    runner, clock = drainer(fake, cluster, parallel=2)
    candidates, _ = sort_pods(pods)
    await runner.run(candidates)
    outcomes = {w.name: (w.outcome, w.target) for w in candidates}
    assert outcomes == {
        "a": (Outcome.MIGRATED, "node-b"),
        "b": (Outcome.MIGRATED, "node-b"),
        "c": (Outcome.MIGRATED, "node-b"),
        "web": (Outcome.EVICTED, None),
    }
    assert fake.most_in_flight == 2
    assert all("target_node" not in body for body in fake.created)  # the orchestrator chooses
    assert cluster.evicted == ["web"]
    assert clock.now >= 1.0 + 2.0  # the disruption budget's 429 was retried with backoff
    assert next(w for w in candidates if w.name == "web").reason.startswith("refused (owned_by_controller)")


async def test_no_evict_leaves_refused_pods_and_a_timeout_stops_eviction_retries() -> None:
    fake = FakeOrchestrator(refusals={"web": refused()})
    left, _ = drainer(fake, FakeCluster([pod("web")]), evict=False)
    work = PodWork("ml", "web")
    await left.run([work])
    assert (work.outcome, work.action) == (Outcome.LEFT, Action.MIGRATE)
    assert work.reason.endswith("left in place (--no-evict)")

    cluster = FakeCluster([pod("web")], refuse_evictions=1000)
    blocked, clock = drainer(fake, cluster, deadline=30.0)
    work = PodWork("ml", "web")
    await blocked.run([work])
    assert work.outcome is Outcome.FAILED
    assert work.reason == f"eviction still refused at the drain's --timeout: {PDB_MESSAGE}"
    assert clock.now <= 30.0


async def test_other_refusals_fail_the_pod_with_the_reason() -> None:
    fake = FakeOrchestrator(refusals={"x": ApiError(403, {"error": "forbidden", "message": "not allowed"})})
    runner, _ = drainer(fake, FakeCluster([pod("x")]))
    work = PodWork("ml", "x")
    await runner.run([work])
    assert (work.outcome, work.reason) == (Outcome.FAILED, "not allowed (forbidden)")


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["drain", NODE, *argv])


async def test_dry_run_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    pods = [pod("a"), pod("web", owner="ReplicaSet"), pod("ds", owner="DaemonSet")]
    cluster = FakeCluster(list(pods))
    fake = FakeOrchestrator(refusals={"web": refused()})
    code = await drain_with(args("--dry-run"), cluster, fake, program="p")
    out = capsys.readouterr().out
    assert code == 0
    assert not cluster.cordoned
    assert cluster.evicted == []
    assert all(body.get("dry_run") for body in fake.created)
    assert "Would migrate 1, evict 1, skip 1, leave 0; 0 cannot be planned" in out


async def test_drain_cordons_and_exits_zero_only_when_the_node_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    class Moving(FakeCluster):
        listings = 0

        async def pods_on(self, node: str, namespace: str | None) -> list[JSON]:
            listed = await super().pods_on(node, namespace)
            self.listings += 1
            if self.listings == 2:  # listed before and after the cordon; the migration then removes the source
                self.pods = [p for p in self.pods if p["metadata"]["name"] != "a"]
            return listed

    cluster = Moving([pod("a"), pod("ds", owner="DaemonSet")])
    code = await drain_with(args("--poll-interval", "0"), cluster, FakeOrchestrator(), program="p")
    captured = capsys.readouterr()
    assert (code, cluster.cordoned) == (0, True)
    assert "Node node-a: migrated 1, evicted 0, skipped 1, failed 0" in captured.out
    assert captured.out.splitlines()[-1] == "node/node-a drained"

    stuck = FakeCluster([pod("web")])
    code = await drain_with(args("--no-evict"), stuck, FakeOrchestrator(refusals={"web": refused()}), program="p")
    captured = capsys.readouterr()
    assert code == 1
    assert "node node-a is not drained: 1 pod(s) that are not skipped are still on it: ml/web" in captured.err


async def test_daemonset_pods_stop_the_drain_without_ignore_daemonsets() -> None:
    cluster = FakeCluster([pod("ds", owner="DaemonSet")])
    with pytest.raises(UsageError, match="DaemonSet-managed pods \\(ml/ds\\)"):
        await drain_with(args("--no-ignore-daemonsets"), cluster, FakeOrchestrator(), program="p")
    assert not cluster.cordoned


def test_defaults_and_the_plugin_command() -> None:
    parsed = args()
    assert (parsed.ignore_daemonsets, parsed.parallel, parsed.timeout, parsed.evict) == (True, 2, 600.0, True)
    plugged = plugin_parser().parse_args(plugin_argv(["drain", NODE, "--dry-run", "--parallel", "3"]))
    assert (plugged.command, plugged.node, plugged.dry_run, plugged.parallel) == ("drain", NODE, True, 3)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_table_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    terminal = Terminal()
    work = PodWork("ml", "a", action=Action.MIGRATE, state="Checkpointing", target="node-b", started=1.0)
    shown = DrainProgress([work], stream=terminal, clock=lambda: 4.0)
    shown.start()
    work.state, work.finished, work.outcome = "Completed", 3.5, Outcome.MIGRATED
    shown.update(work)
    shown.stop()
    lines = screen(terminal.getvalue())
    assert lines[0].split() == ["POD", "ACTION", "STATE", "TARGET", "ELAPSED"]
    assert lines[-1].split() == ["ml/a", "migrate", "Completed", "node-b", "2.5s"]


def test_interrupted_lines_name_what_is_in_flight() -> None:
    works = [
        PodWork("ml", "a", action=Action.MIGRATE, state="Checkpointing", migration_id="m1", started=1.0),
        PodWork("ml", "b", action=Action.EVICT, state="terminating", started=1.0),
        PodWork("ml", "c", outcome=Outcome.MIGRATED, started=1.0),
        PodWork("ml", "d"),
    ]
    assert interrupted_lines(NODE, works, program="kubectl migrate") == [
        "interrupted: no new work started; node node-a stays cordoned (undo with: kubectl uncordon node-a)",
        "  in flight: ml/a migration m1 (Checkpointing) goes on (cancel it with: kubectl migrate cancel m1)",
        "  in flight: ml/b evict (terminating)",
        "  not started: ml/d",
    ]


# a refused pod kubectl drain would not evict without an override --------------------------------------------------
def with_emptydir(spec_pod: JSON) -> JSON:
    spec_pod["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    return spec_pod


async def test_a_refused_pod_without_a_controller_is_left_not_deleted_for_good(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pods = [pod("bare"), with_emptydir(pod("web", owner="ReplicaSet")), pod("job", owner="Job")]
    cluster = FakeCluster(list(pods))
    fake = FakeOrchestrator(refusals={name: refused("no_target_node") for name in ("bare", "web", "job")})
    code = await drain_with(args(), cluster, fake, program="p")
    out = capsys.readouterr().out
    assert code == 1, "the node still holds pods"
    assert cluster.evicted == ["job"]
    assert "bare: refused (no_target_node)" in out
    assert "(--force to evict it)" in out
    assert "its emptyDir data (scratch) would be lost (--delete-emptydir-data to evict it)" in out


async def test_force_and_delete_emptydir_data_evict_them_as_kubectl_does() -> None:
    pods = [pod("bare"), with_emptydir(pod("web", owner="ReplicaSet"))]
    cluster = FakeCluster(list(pods))
    fake = FakeOrchestrator(refusals={name: refused("no_target_node") for name in ("bare", "web")})
    code = await drain_with(args("--force", "--delete-emptydir-data"), cluster, fake, program="p")
    assert code == 0
    assert sorted(cluster.evicted) == ["bare", "web"]


async def test_the_dry_run_says_which_refused_pods_would_be_left(capsys: pytest.CaptureFixture[str]) -> None:
    cluster = FakeCluster([pod("bare")])
    fake = FakeOrchestrator(refusals={"bare": refused("no_target_node")})
    await drain_with(args("--dry-run"), cluster, fake, program="p")
    out = capsys.readouterr().out
    assert "leave 1" in out
    assert "not evicted: no controller would recreate it" in out


async def test_an_api_server_error_while_waiting_for_an_eviction_fails_that_pod_only() -> None:
    class Unavailable(FakeCluster):
        async def pod_present(self, namespace: str, name: str, uid: str | None) -> bool:
            raise KubeApiError(503, "ServiceUnavailable", "etcd is down")

    fake = FakeOrchestrator(refusals={"web": refused()})
    cluster = Unavailable([pod("web", owner="ReplicaSet"), pod("a")])
    runner, _ = drainer(fake, cluster)
    works, _ = sort_pods(cluster.pods)
    await runner.run(works)
    outcomes = {w.name: (w.outcome, w.reason) for w in works}
    assert outcomes["web"] == (Outcome.FAILED, "the API server answered: etcd is down")
    assert outcomes["a"][0] is Outcome.MIGRATED


async def test_a_pod_bound_to_the_node_while_it_was_being_cordoned_is_drained_too() -> None:
    class Arriving(FakeCluster):
        async def cordon(self, node: str) -> None:
            await super().cordon(node)
            self.pods.append(pod("late"))  # a concurrent move bound it here after the first listing

    cluster = Arriving([pod("a")])
    fake = FakeOrchestrator()
    await drain_with(args("--poll-interval", "0"), cluster, fake, program="p")
    assert sorted(body["pod_name"] for body in fake.created if not body.get("dry_run")) == ["a", "late"]


def test_the_orchestrators_own_emptydirs_do_not_keep_a_pod_from_eviction() -> None:
    moved = pod("moved", owner="ReplicaSet")
    moved["spec"]["volumes"] = [
        {"name": "ai-storage-gate-knock", "emptyDir": {}},
        {"name": "ai-storage-restore-state", "emptyDir": {}},
    ]
    [work], _ = sort_pods([moved])
    assert work.not_evictable is None


@dataclass
class StuckOrchestrator(FakeOrchestrator):
    """Accepts every migration; none ever ends."""

    async def get(self, migration_id: str) -> JSON:
        return {"migration_id": migration_id, "status": "running", "phase": "Checkpointing", "target_node": "node-b"}


async def test_nothing_new_starts_after_the_drains_timeout() -> None:
    """A slot freed by a pod timed out is not a slot for another migration: --parallel holds past the deadline."""
    fake = StuckOrchestrator()
    runner, _ = drainer(fake, FakeCluster([pod(n) for n in "abcdef"]), parallel=1, deadline=10.0)
    works = [PodWork("ml", n) for n in "abcdef"]
    await runner.run(works)
    assert [b["pod_name"] for b in fake.created] == ["a"]
    assert works[0].outcome is Outcome.FAILED
    assert works[0].reason.endswith("at the drain's --timeout; it goes on (cancel m-a stops it)")
    assert {(w.outcome, w.reason) for w in works[1:]} == {
        (Outcome.FAILED, "not started: the drain's --timeout had passed")
    }


@dataclass
class UnreachableOrchestrator(FakeOrchestrator):
    async def create(self, body: JSON) -> JSON:
        raise CliError("cannot connect to https://orchestrator:8080: connection refused")


async def test_an_orchestrator_that_does_not_answer_stops_the_drain_before_the_cordon() -> None:
    cluster = FakeCluster([pod("a")])
    with pytest.raises(CliError) as caught:
        await drain_with(args(), cluster, UnreachableOrchestrator(), program="p")
    assert caught.value.exit_code == 2
    assert "nothing was changed" in caught.value.message
    assert not cluster.cordoned
