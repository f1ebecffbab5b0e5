"""Trainer downtime and request -> Ready from the kubelet's time stamps, the medians of --timing-pairs, their
rendering, and a whole run with pairs against the fake cluster of test_spec_output."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pytest

from ai_storage_orchestrator.compare import report
from ai_storage_orchestrator.compare import workload as wl
from ai_storage_orchestrator.compare.measuring import parse_rfc3339_ns
from ai_storage_orchestrator.compare.options import Options
from ai_storage_orchestrator.compare.scenario import Scenario
from ai_storage_orchestrator.compare.spec_output import spec_blocks_missing
from ai_storage_orchestrator.compare.timing import (
    NATIVE,
    ORCHESTRATOR,
    Span,
    Stats,
    TimedMigration,
    TimingRun,
    TrainerWatch,
    ratio,
    request_to_ready,
    trainer_downtime,
)
from ai_storage_orchestrator.controller.planning.naming import target_pod_name
from ai_storage_orchestrator.kube.resources import PODS, Resource
from tests.unit.compare.test_spec_output import FakeExec, FakeKube, FakeOrchestrator

pytestmark = pytest.mark.unit

JSON = dict[str, Any]


def _pod(trainer_state: JSON, *, ready_at: str | None = None) -> JSON:
    conditions = [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}] if ready_at else []
    return {
        "metadata": {"name": "p"},
        "status": {
            "conditions": conditions,
            "containerStatuses": [
                {"name": "model-monitor", "state": {"terminated": {"finishedAt": "2024-05-01T10:00:00Z"}}},
                {"name": "tensorflow-trainer", "state": trainer_state},
            ],
        },
    }


def _terminated(at: str) -> JSON:
    return {"terminated": {"exitCode": 143, "reason": "Error", "finishedAt": at}}


# Trainer downtime ----------------------------------------------------------------------------------------------------
def test_downtime_is_the_new_trainers_start_minus_the_last_finish_seen_of_the_old_one() -> None:
    watch = TrainerWatch("p")
    watch.observe(_pod({"running": {"startedAt": "2024-05-01T09:00:00Z"}}))
    watch.observe(_pod(_terminated("2024-05-01T10:00:03Z")))
    watch.observe(_pod(_terminated("2024-05-01T10:00:04Z")))  # the kubelet's last word wins
    watch.observe(None)
    assert watch.gone
    new = _pod({"running": {"startedAt": "2024-05-01T10:00:09Z"}})
    span = trainer_downtime(watch, new)
    assert span == Span(5.0, 1.0, "2024-05-01T10:00:04Z", "2024-05-01T10:00:09Z")
    assert span.text() == "5s ± 1s"  # whole seconds on both ends: ± 1 s
    assert span.to_json() == {
        "seconds": 5.0,
        "plus_minus_seconds": 1.0,
        "start": "2024-05-01T10:00:04Z",
        "end": "2024-05-01T10:00:09Z",
        "reason": None,
    }


def test_a_finer_time_stamp_narrows_the_error_and_an_overlap_is_negative() -> None:
    watch = TrainerWatch("p")
    watch.observe(_pod(_terminated("2024-05-01T10:00:04.250Z")))
    span = trainer_downtime(watch, _pod({"running": {"startedAt": "2024-05-01T10:00:03.750Z"}}))
    assert span.seconds == pytest.approx(-0.5)  # the new trainer ran before the old one stopped
    assert span.error == pytest.approx(0.001)


def test_downtime_is_not_measured_when_the_old_trainer_was_never_seen_terminated() -> None:
    watch = TrainerWatch("tensorflow-ai-workload")
    watch.observe(_pod({"running": {"startedAt": "2024-05-01T09:00:00Z"}}))
    watch.observe(None)  # gone without a status showing the trainer terminated
    span = trainer_downtime(watch, _pod({"running": {"startedAt": "2024-05-01T10:00:09Z"}}))
    assert span.seconds is None
    assert span.text() == "not measured"
    assert span.reason == (
        "the source pod tensorflow-ai-workload's tensorflow-trainer was never seen terminated before the pod went"
        " (last seen: running)"
    )
    assert "(never seen)" in trainer_downtime(TrainerWatch("p"), _pod({"running": {}})).reason  # type: ignore[operator]


def test_downtime_is_not_measured_when_the_new_trainer_is_not_running() -> None:
    watch = TrainerWatch("p")
    watch.observe(_pod(_terminated("2024-05-01T10:00:04Z")))
    span = trainer_downtime(watch, _pod({"waiting": {"reason": "ContainerCreating"}}))
    assert span.reason == "the new pod's tensorflow-trainer has no state.running.startedAt"


# Request -> Ready ----------------------------------------------------------------------------------------------------
def test_request_to_ready_is_the_middle_of_the_second_the_ready_time_stamp_rounds_down() -> None:
    requested = parse_rfc3339_ns("2024-05-01T10:00:00Z") / 1e9 + 0.3  # the DELETE or POST, this machine's clock
    span = request_to_ready(requested, _pod({"running": {}}, ready_at="2024-05-01T10:00:04Z"))
    assert span.seconds == pytest.approx(4.2)  # Ready in [4.0, 5.0) after 0.3 s: 3.7 .. 4.7
    assert span.error == 0.5
    assert span.text() == "4.2s ± 0.5s"
    assert span.start == "2024-05-01T10:00:00.300Z"
    assert span.end == "2024-05-01T10:00:04Z"


def test_request_to_ready_is_cut_at_the_moment_this_machine_saw_the_pod_ready() -> None:
    requested = parse_rfc3339_ns("2024-05-01T10:00:00Z") / 1e9 + 0.3
    pod = _pod({"running": {}}, ready_at="2024-05-01T10:00:04Z")
    span = request_to_ready(requested, pod, seen=requested + 3.9)  # Ready in [4.0, 4.2): 3.7 .. 3.9 after the request
    assert span.seconds == pytest.approx(3.8)
    assert span.error == pytest.approx(0.1)
    clocks_disagree = request_to_ready(requested, pod, seen=requested + 3.5)  # seen before the stamp's second began
    assert clocks_disagree.seconds == pytest.approx(4.2)
    assert clocks_disagree.error == 0.5


def test_request_to_ready_is_not_measured_without_a_ready_condition() -> None:
    span = request_to_ready(0.0, _pod({"running": {}}))
    assert span.seconds is None
    assert span.reason == "the new pod has no Ready=True condition with a lastTransitionTime"


# The pairs' medians and ratios ---------------------------------------------------------------------------------------
def _timed(number: int, method: str, ready: float | None, down: float | None, wall: float) -> TimedMigration:
    def span(value: float | None, error: float) -> Span:
        return Span(value, error) if value is not None else Span(None, reason="never seen terminated")

    return TimedMigration(number, method, "a", "b", "p", span(ready, 0.5), span(down, 1.0), wall)


def _run() -> TimingRun:
    run = TimingRun(3)
    figures = [(NATIVE, 6.5, 5.0, 6.6), (ORCHESTRATOR, 3.5, 1.0, 3.9), (NATIVE, 8.5, 7.0, 8.7),
               (ORCHESTRATOR, 4.5, None, 4.8), (NATIVE, 7.5, 6.0, 7.4), (ORCHESTRATOR, 2.5, 2.0, 2.6)]  # fmt: skip
    run.migrations = [_timed(n, *f) for n, f in enumerate(figures, start=1)]
    return run


def test_stats_leave_out_what_was_not_measured_and_never_count_it_as_zero() -> None:
    assert Stats.of([3.0, None, 1.0, 2.0]) == Stats(3, 1, 2.0, 1.0, 3.0)
    assert Stats.of([4.0, 1.0]).median == 2.5
    assert Stats.of([None, None]) == Stats(0, 2, None, None, None)
    assert Stats.of([None]).text(1) == "not measured (n=0 of 1)"


def test_medians_and_ratios_of_the_pairs() -> None:
    run = _run()
    assert run.stats(NATIVE, "request_to_ready") == Stats(3, 0, 7.5, 6.5, 8.5)
    assert run.stats(ORCHESTRATOR, "request_to_ready") == Stats(3, 0, 3.5, 2.5, 4.5)
    assert run.stats(ORCHESTRATOR, "trainer_downtime") == Stats(2, 1, 1.5, 1.0, 2.0)
    assert run.ratio("request_to_ready") == pytest.approx(3.5 / 7.5)
    assert run.ratio("trainer_downtime") == pytest.approx(1.5 / 6.0)
    assert ratio(Stats.of([0.0]), Stats.of([1.0])) is None  # no ratio to a native 0
    assert ratio(Stats.of([None]), Stats.of([1.0])) is None


def test_the_timing_block_and_its_json() -> None:
    run = _run()
    lines = run.lines()
    assert lines[0] == "TIMING (3 pairs, medians)"
    rows = {line.split("│")[0].strip(): [c.strip() for c in line.split("│")[1:]] for line in lines if "│" in line}
    assert rows["FIGURE"] == ["K8S NATIVE", "AI ORCHESTRATOR", "ORCH/NATIVE"]
    assert rows["Request → Ready"] == [
        "7.5s (n=3, min 6.5s, max 8.5s)",
        "3.5s (n=3, min 2.5s, max 4.5s)",
        "0.47",
    ]
    assert rows["Trainer downtime"] == [
        "6.0s (n=3, min 5.0s, max 7.0s)",
        "1.5s (n=2, min 1.0s, max 2.0s; 1 not measured)",
        "0.25",
    ]
    assert rows["Wall time"][2] == "0.53"  # 3.9 / 7.4
    assert "# timing 4 (orchestrator) trainer downtime not measured: never seen terminated" in lines
    assert _timed(4, ORCHESTRATOR, 4.5, None, 4.8).line(6) == (
        "  timing 4/6 orchestrator a → b: request→Ready 4.5s ± 0.5s, trainer downtime not measured, wall 4.80s"
    )
    document = run.to_json()
    assert document["pairs_requested"] == document["pairs_done"] == 3
    assert document["medians"]["native"]["request_to_ready"] == {
        "n": 3,
        "not_measured": 0,
        "median_seconds": 7.5,
        "min_seconds": 6.5,
        "max_seconds": 8.5,
    }
    assert document["medians"]["orchestrator"]["trainer_downtime"]["not_measured"] == 1
    assert document["ratio_orchestrator_to_native"] == {
        "request_to_ready": 0.467,
        "trainer_downtime": 0.25,
        "wall": 0.527,
    }
    assert document["migrations"][3]["trainer_downtime"]["reason"] == "never seen terminated"
    markdown = "\n".join(run.markdown())
    assert "## Timing (3 pairs, medians)" in markdown
    assert "| Request → Ready | 7.5s (n=3, min 6.5s, max 8.5s) | 3.5s (n=3, min 2.5s, max 4.5s) | 0.47 |" in markdown
    assert "| 4 | orchestrator | a → b | 4.5s ± 0.5s | not measured: never seen terminated | 4.80s |" in markdown


def test_pairs_stopped_early_say_how_many_were_done() -> None:
    run = _run()
    run.migrations = run.migrations[:3]
    run.error = "migration x failed: no"
    lines = run.lines()
    assert lines[0] == "TIMING (1 of 3 pairs, medians)"
    assert "# stopped early: migration x failed: no" in lines


# A whole run against fakes whose pods carry the kubelet's time stamps ------------------------------------------------
def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class KubeletKube(FakeKube):
    """Pods get ``startedAt`` and Ready's ``lastTransitionTime``; a deleted pod shows its containers terminated to one
    more list (``terminated.finishedAt``) before it is gone, as a kubelet's last status update does."""

    def __init__(self) -> None:
        super().__init__()
        self.going: set[str] = set()

    async def create(self, resource: Resource, body: JSON, *, namespace: str | None = None) -> JSON:
        created = await super().create(resource, body, namespace=namespace)
        if resource == PODS:
            obj = self.objects[(resource.plural, created["metadata"]["name"])]
            for status in obj["status"]["containerStatuses"]:
                status["state"] = {"running": {"startedAt": _now()}}
            obj["status"]["conditions"][0]["lastTransitionTime"] = _now()
        return created

    async def delete(self, resource: Resource, name: str, *, namespace: str | None = None, **kwargs: Any) -> JSON:
        obj = self.objects.get((resource.plural, name))
        if resource != PODS or obj is None:
            return await super().delete(resource, name, namespace=namespace)
        for status in obj["status"]["containerStatuses"]:
            status["state"] = {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": _now()}}
        self.going.add(name)
        return {}

    async def list(self, resource: Resource, **kwargs: Any) -> tuple[list[JSON], str]:
        name = str(kwargs.get("field_selector") or "").removeprefix("metadata.name=")
        if resource == PODS and name in self.going:
            self.going.discard(name)
            return [copy.deepcopy(self.objects.pop((resource.plural, name)))], str(self.version)
        return await super().list(resource, **kwargs)


class MovingOrchestrator(FakeOrchestrator):
    """The fake orchestrator, naming each new pod as the real one does, one migration id after the other."""

    def __init__(self, kube: FakeKube) -> None:
        super().__init__(kube)
        self.count = 0
        self.new_pod = ""

    async def create(self, body: JSON) -> JSON:
        self.count += 1
        migration_id = f"{self.count:08d}abcd"
        old = await self.kube.get(PODS, body["pod_name"])
        new = copy.deepcopy(old)
        self.new_pod = target_pod_name(body["pod_name"], migration_id)
        new["metadata"] = {"name": self.new_pod, "labels": old["metadata"]["labels"]}
        new["spec"]["nodeName"] = body["target_node"]
        new["spec"]["containers"] = [c for c in old["spec"]["containers"] if c["name"] != wl.COMPLETING_CONTAINER]
        await self.kube.create(PODS, new)
        await self.kube.delete(PODS, body["pod_name"])
        return {"migration_id": migration_id, "status": "pending", "phase": "Pending", "message": "queued"}

    async def wait(
        self, migration: JSON, *, timeout: float, on_change: Callable[[JSON], None] | None = None
    ) -> tuple[JSON, float]:
        final, done = await super().wait(migration, timeout=timeout, on_change=on_change)
        return {**final, "migration_id": migration["migration_id"], "new_pod_name": self.new_pod}, done


async def _whole_run(kube: FakeKube, **options: Any) -> tuple[list[str], Any]:
    lines: list[str] = []
    settings = {
        "namespace": "ml",
        "workload": "numpy",
        "nfs_server": "127.0.0.1",
        "interval": 0.001,
        "timeout": 30,
        "timing_spread": 0,  # back to back: the fake has no relist timer to spread over
    }
    scenario = Scenario(
        Options(**{**settings, **options}),
        kube=kube,  # type: ignore[arg-type]
        execs=FakeExec(),  # type: ignore[arg-type]
        api=MovingOrchestrator(kube),  # type: ignore[arg-type]
        say=lines.append,
    )
    comparison = await scenario.run()
    lines += report.console_lines(comparison, threshold=20, allow_unmeasured=False)
    await scenario.clean_up()
    return lines, comparison


async def test_a_run_with_timing_pairs_prints_each_migration_and_the_medians() -> None:
    kube = KubeletKube()
    lines, comparison = await _whole_run(kube, timing_pairs=2)
    text = "\n".join(lines)
    assert comparison.error is None, text
    assert spec_blocks_missing(text) == [], text  # the certification's lines are all still there, in order
    for method in (comparison.native, comparison.orchestrator):
        assert method is not None
        assert method.downtime.seconds is not None, method.downtime.reason
        assert 0 <= method.downtime.seconds <= 1  # the fake's clock: within a second
        assert method.request_to_ready.seconds is not None
    rows = [line for line in lines if line.startswith(("Trainer downtime", "Request → Ready"))]
    assert [row.split("│")[0].strip() for row in rows] == ["Trainer downtime", "Request → Ready"] * 2
    timed = [line for line in lines if line.startswith("  timing ")]
    assert [line.split()[1:3] for line in timed] == [
        ["1/4", "native"],
        ["2/4", "orchestrator"],
        ["3/4", "native"],
        ["4/4", "orchestrator"],
    ]
    assert timed[0].startswith("  timing 1/4 native       node-a → node-b: request→Ready ")
    assert timed[1].startswith("  timing 2/4 orchestrator node-b → node-a: request→Ready ")
    assert "not measured" not in "\n".join(timed)
    block = lines.index("TIMING (2 pairs, medians)")
    assert block > lines.index(next(line for line in lines if line.startswith("RESULT:")))
    assert lines[block + 1].split("│")[0].strip() == "FIGURE"
    document = comparison.to_json(threshold=20, allow_unmeasured=False)
    assert document["timing"]["pairs_done"] == 2
    assert document["timing"]["medians"]["native"]["trainer_downtime"]["n"] == 2
    assert [m["method"] for m in document["timing"]["migrations"]] == [NATIVE, ORCHESTRATOR] * 2
    assert document["methods"]["native"]["trainer_downtime"]["plus_minus_seconds"] == 1.0
    assert document["comparison"]["request_to_ready_seconds"]["orchestrator"] is not None
    assert "## Timing (2 pairs, medians)" in report.markdown(comparison, threshold=20, allow_unmeasured=False)
    assert not kube.objects.get(("pods", wl.POD_NAME))  # cleaned up


async def test_without_pairs_nothing_is_timed_and_an_unseen_termination_is_not_measured() -> None:
    lines, comparison = await _whole_run(FakeKube())  # pods vanish at once: no terminated trainer is ever seen
    assert comparison.error is None
    assert comparison.timing is None
    assert not any(line.startswith(("TIMING", "  timing ")) for line in lines)
    assert comparison.native is not None
    assert comparison.native.downtime.seconds is None
    assert "was never seen terminated before the pod went" in str(comparison.native.downtime.reason)
    row = next(line for line in lines if line.startswith("Trainer downtime"))
    assert [c.strip() for c in row.split("│")[1:]] == ["not measured", "not measured", "n/a"]
    assert any(line.startswith("# Trainer downtime (K8S NATIVE) not measured: the source pod") for line in lines)
    assert comparison.to_json(threshold=20, allow_unmeasured=False)["timing"] is None


async def test_a_failed_pair_stops_the_timing_not_the_comparison() -> None:
    kube = KubeletKube()

    class Failing(MovingOrchestrator):
        async def wait(
            self, migration: JSON, *, timeout: float, on_change: Callable[[JSON], None] | None = None
        ) -> tuple[JSON, float]:
            final, done = await super().wait(migration, timeout=timeout, on_change=on_change)
            if self.count > 1:
                return {**final, "status": "failed", "error": {"message": "target not Ready"}}, done
            return final, done

    lines: list[str] = []
    options = Options(namespace="ml", workload="numpy", nfs_server="127.0.0.1", interval=0.001, timeout=30,
                      timing_pairs=3)  # fmt: skip
    scenario = Scenario(options, kube=kube, execs=FakeExec(), api=Failing(kube), say=lines.append)  # type: ignore[arg-type]
    comparison = await scenario.run()
    assert comparison.error is None
    assert comparison.timing is not None
    assert [m.method for m in comparison.timing.migrations] == [NATIVE]
    assert comparison.timing.error == "migration 00000002abcd failed: target not Ready"
    assert comparison.timing.lines()[0] == "TIMING (0 of 3 pairs, medians)"


def test_ready_in_the_second_of_the_request_is_never_before_it() -> None:
    second = parse_rfc3339_ns("2024-05-01T10:00:04Z") / 1e9
    span = request_to_ready(second + 0.6, _pod({"running": {}}, ready_at="2024-05-01T10:00:04Z"))
    assert span.seconds == pytest.approx(0.2)  # Ready in [0, 0.4) after the request
    assert span.error == pytest.approx(0.2)
    behind = request_to_ready(second + 2, _pod({"running": {}}, ready_at="2024-05-01T10:00:04Z"))
    assert behind.seconds is None
    assert "the kubelet's clock is behind this machine's" in str(behind.reason)
