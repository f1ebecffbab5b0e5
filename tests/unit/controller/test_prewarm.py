"""A checkpoint-restart move with a pre-warmed target, step by step against the in-memory API: the target starts
right after the checkpoint, the source stops only once the target's gate runs, the gate opens only once the source is
gone from a live read, and a target that cannot start fails the move with the source never touched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ai_storage_orchestrator.checkpoint import CheckpointJob, CheckpointSpec
from ai_storage_orchestrator.checkpoint.annotations import Hook
from ai_storage_orchestrator.checkpoint.saving import NO_RUNNING_WRITER
from ai_storage_orchestrator.controller.controller import LocationOnlyCheckpointer
from ai_storage_orchestrator.controller.execsupport import ExecSupport
from ai_storage_orchestrator.controller.planning.gate import GATE_CONTAINER, GATE_DIGEST_ENV, token_digest
from ai_storage_orchestrator.controller.records import now_iso
from ai_storage_orchestrator.conventions import HANDOFF_ANNOTATION
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, PODS
from ai_storage_orchestrator.models import Phase
from ai_storage_orchestrator.settings import Settings
from tests.unit.controller.fakes import NAMESPACE, POD, TARGET, World

pytestmark = pytest.mark.unit
KEY = f"{NAMESPACE}/m1"
JSON = dict[str, Any]


async def _checkpointed(world: World) -> str:
    """Drive a new checkpoint-restart move until its checkpoint is done; the pre-warmed target's name."""
    world.request(strategy="checkpoint-restart")
    await world.drive()
    assert world.phase() == Phase.CHECKPOINTING.value
    await _checkpoints_finish(world)
    assert world.phase() == Phase.STOPPING_SOURCE.value
    return str(world.record()["status"]["targetPod"])


async def _checkpoints_finish(world: World) -> None:
    """Let the running checkpoints end, then step on."""
    pool = world.controller.checkpoints
    for task in list(pool._jobs.values()):
        await task
    await world.drive()


def _checkpoint_with(world: World, checkpointer: LocationOnlyCheckpointer) -> None:
    world.controller.checkpointer = world.controller.checkpoints.checkpointer = checkpointer
    world.controller.planner.declared = checkpointer.declared


def _token(world: World) -> str:
    return str(world.record()["status"]["prewarm"]["token"])


def _evicted(world: World) -> bool:
    return any(call.startswith("evict ") for call in world.api.calls)


async def test_the_target_starts_after_the_checkpoint_and_its_gate_opens_once_the_source_is_gone() -> None:
    world = World()
    target = await _checkpointed(world)
    pod = world.api.pod(target)
    assert pod is not None, "created with the checkpoint recorded, before the source is touched"
    gate = pod["spec"]["initContainers"][0]
    assert gate["name"] == GATE_CONTAINER
    assert gate["image"] == pod["spec"]["containers"][0]["image"]
    assert {"name": GATE_DIGEST_ENV, "value": token_digest(_token(world))} in gate["env"]
    assert _token(world) not in str(pod), "only the token's hash is in the pod"
    assert not _evicted(world), "the source waits for the target to prove it can start"

    world.api.run_gate(target)
    await world.drive()
    assert _evicted(world)
    assert HANDOFF_ANNOTATION not in world.api.pod(target)["metadata"].get("annotations", {})  # type: ignore[index]

    world.api.finish_termination(POD)
    await world.drive()
    assert world.api.pod(target)["metadata"]["annotations"][HANDOFF_ANNOTATION] == _token(world)  # type: ignore[index]
    assert world.phase() == Phase.WAITING_FOR_TARGET.value
    world.api.make_ready(target)
    await world.drive()
    phases = [t["phase"] for t in world.record()["status"]["phaseTransitions"]]
    assert phases == [
        "Validating",
        "Checkpointing",
        "StoppingSource",
        "CreatingTarget",
        "WaitingForTarget",
        "Completed",
    ]
    assert world.record()["status"]["podsAlive"] == [target]


async def test_the_gate_opens_once_the_kubelet_reports_the_sources_containers_stopped() -> None:
    world = World()
    target = await _checkpointed(world)
    world.api.run_gate(target)
    await world.drive()
    world.api.stop_containers(POD)  # the pod object stays while the kubelet cleans up after its containers
    await world.drive()
    assert world.api.pod(POD) is not None
    assert world.api.pod(target)["metadata"]["annotations"][HANDOFF_ANNOTATION] == _token(world)  # type: ignore[index]
    assert world.phase() == Phase.WAITING_FOR_TARGET.value


async def test_the_gate_stays_shut_while_the_api_server_still_has_the_source() -> None:
    world = World()
    target = await _checkpointed(world)
    world.api.run_gate(target)
    await world.drive()
    source = world.api.pod(POD)
    assert source is not None
    world.state.pods.apply("DELETED", source)  # the cache runs ahead of the API server
    await world.drive()
    assert HANDOFF_ANNOTATION not in world.api.pod(target)["metadata"].get("annotations", {})  # type: ignore[index]
    assert world.phase() == Phase.STOPPING_SOURCE.value


async def test_a_target_without_the_image_fails_the_move_and_the_source_is_never_touched() -> None:
    world = World()
    target = await _checkpointed(world)
    world.api.run_gate(target, {"waiting": {"reason": "ErrImageNeverPull", "message": "image not present"}})
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value
    world.api.finish_termination(target)
    await world.drive()
    status = world.record()["status"]
    assert world.phase() == Phase.FAILED.value
    assert status["error"]["reason"] == "target_container_error"
    assert "the source pod was not touched" in status["error"]["message"]
    assert not _evicted(world)
    assert world.api.pod(POD)["metadata"]["uid"] == world.source["metadata"]["uid"]  # type: ignore[index]
    assert world.api.pod(target) is None
    assert world.record()["status"]["podsAlive"] == [POD]


async def test_a_gate_that_cannot_run_in_the_image_falls_back_to_stopping_the_source_first() -> None:
    world = World()
    target = await _checkpointed(world)
    world.api.run_gate(target, {"waiting": {"reason": "RunContainerError", "message": 'exec: "sh": not found'}})
    await world.drive()
    assert not _evicted(world), "the gated target goes first"
    assert "RunContainerError" in world.record()["status"]["prewarm"]["skipped"]
    world.api.finish_termination(target)
    await world.drive()
    assert _evicted(world)
    world.api.finish_termination(POD)
    await world.drive()
    recreated = world.api.pod(target)
    assert recreated is not None
    assert "initContainers" not in recreated["spec"], "created after the source stopped, without a gate"
    assert world.phase() == Phase.WAITING_FOR_TARGET.value


async def test_a_cancel_before_the_source_stops_removes_the_pre_warmed_target() -> None:
    world = World()
    target = await _checkpointed(world)
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"spec": {"cancelRequested": True}}, namespace=NAMESPACE)
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value
    world.api.finish_termination(target)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert not _evicted(world)
    assert world.api.pod(target) is None
    assert world.record()["status"]["podsAlive"] == [POD]


async def test_a_restart_between_opening_the_gate_and_recording_it_opens_it_again() -> None:
    world = World()
    target = await _checkpointed(world)
    world.api.run_gate(target)
    await world.drive()
    world.api.finish_termination(POD)
    await world.api.merge_patch(
        PODS, target, {"metadata": {"annotations": {HANDOFF_ANNOTATION: _token(world)}}}, namespace=NAMESPACE
    )
    await world.drive()
    assert world.phase() == Phase.WAITING_FOR_TARGET.value
    assert world.api.pod(target)["metadata"]["annotations"][HANDOFF_ANNOTATION] == _token(world)  # type: ignore[index]


async def test_a_target_node_missing_an_image_it_may_not_pull_fails_before_the_source_stops() -> None:
    world = World()
    node = world.state.node("node-b")
    assert node is not None
    listed = {**node, "status": {**node["status"], "images": [{"names": ["docker.io/library/other:1"]}]}}
    world.state.nodes.apply("MODIFIED", listed)
    world.request(strategy="checkpoint-restart")
    source = world.api.pod(POD)
    assert source is not None
    await world.drive()
    pool = world.controller.checkpoints
    for task in list(pool._jobs.values()):
        await task
    await world.drive()
    target = str(world.record()["status"]["targetPod"])
    pod = world.api.pod(target)
    assert pod is not None
    pod["spec"]["containers"][0]["imagePullPolicy"] = "Never"  # as if the pod had said so
    world.api.run_gate(target)
    await world.drive()
    assert world.record()["status"]["error"]["reason"] == "target_image_missing"
    assert not _evicted(world)


async def test_without_prewarm_nothing_starts_before_the_source_stops() -> None:
    world = World(settings=Settings(leader_election=False, prewarm=False))
    world.request(strategy="checkpoint-restart")
    await world.drive()
    assert world.record()["status"]["prewarm"] == {"skipped": "pre-warming is off (--no-prewarm)"}
    assert world.api.pod(str(world.record()["status"]["targetPod"])) is None


async def test_where_exec_is_known_to_work_the_target_starts_beside_the_checkpoint() -> None:
    world = World()
    world.controller.exec_support.note("node-a", works=True)
    world.request(strategy="checkpoint-restart")
    await world.drive()
    assert world.phase() == Phase.CHECKPOINTING.value
    assert world.controller.checkpoints.running(KEY)
    target = world.api.pod(str(world.record()["status"]["targetPod"]))
    assert target is not None, "created while the checkpoint runs"
    assert target["spec"]["initContainers"][0]["name"] == GATE_CONTAINER


async def test_a_node_known_to_lack_exec_skips_the_checkpoint_without_trying() -> None:
    world = World()
    world.controller.exec_support.note("node-a", works=False)
    world.request(strategy="checkpoint-restart")
    await world.drive()
    assert world.phase() == Phase.STOPPING_SOURCE.value
    assert not world.controller.checkpoints.running(KEY)
    checkpoint = world.record()["status"]["checkpoint"]
    assert checkpoint["skipped"] == "exec_unavailable"
    assert "not tried" in checkpoint["message"]
    assert world.api.pod(str(world.record()["status"]["targetPod"])) is not None, "pre-warmed after the skip"
    status_writes = [c for c in world.api.calls if c == "patch PodMigration m1/status"]
    assert len(status_writes) == 1, "the plan, the skipped checkpoint and the write-ahead: one write"
    phases = [t["phase"] for t in world.record()["status"]["phaseTransitions"]]
    assert phases == ["Validating", "Checkpointing", "StoppingSource"]
    assert world.record()["status"]["sourceStopped"] is True
    assert not _evicted(world), "recorded ahead: the source is evicted once the target's gate runs"


class _NoExec(LocationOnlyCheckpointer):
    async def save(self, job: CheckpointJob) -> JSON:
        return {"saved": False, "skipped": "exec_unavailable", "message": "no exec on this node"}


class _Hooked(LocationOnlyCheckpointer):
    """Every pod declares a quiesce hook in its trainer."""

    def declared(self, pod: JSON) -> CheckpointSpec:
        return CheckpointSpec(hooks=(Hook("trainer", ("true",)),))

    def prepare(self, **kwargs: Any) -> tuple[JSON, JSON]:
        target, checkpoint = super().prepare(**kwargs)
        return target, {**checkpoint, "declared": kwargs["spec"].to_json()}


async def test_a_node_known_to_lack_exec_still_tries_a_checkpoint_with_a_hook_to_run() -> None:
    """Skipping it would move the pod without the hook and the artifacts it declared; tried, it either runs or fails
    the move with the source untouched."""
    world = World()
    _checkpoint_with(world, _Hooked())
    world.controller.exec_support.note("node-a", works=False)
    world.request(strategy="checkpoint-restart")
    await world.drive()
    assert world.phase() == Phase.CHECKPOINTING.value
    assert world.controller.checkpoints.running(KEY), "tried, not skipped on what an earlier checkpoint saw"
    assert world.record()["status"]["checkpoint"]["declared"]["hooks"]


async def test_an_explicit_make_before_break_still_runs_the_hooks_the_pod_declares() -> None:
    world = World()
    _checkpoint_with(world, _Hooked())
    world.request(strategy="make-before-break")
    await world.drive()
    assert world.phase() == Phase.CHECKPOINTING.value, "not straight to CreatingTarget: the hook would never run"
    await _checkpoints_finish(world)
    phases = [t["phase"] for t in world.record()["status"]["phaseTransitions"]]
    assert phases == ["Validating", "Checkpointing", "CreatingTarget", "WaitingForTarget"]
    assert not _evicted(world), "make-before-break: the source stays until the target is Ready"


@pytest.mark.parametrize("name", ["m" * 64, "run.1"], ids=["too-long", "dotted"])
async def test_a_podmigration_whose_name_cannot_label_a_pod_fails_before_anything_is_touched(name: str) -> None:
    """`kubectl apply` accepts such names (a DNS subdomain, up to 253 characters); the REST API's ids are 12 hex."""
    world = World()
    world.request(migration_id=name)
    await world.drive(f"{NAMESPACE}/{name}")
    record = world.record(f"{NAMESPACE}/{name}")
    assert record["status"]["phase"] == Phase.FAILED.value
    assert record["status"]["error"]["reason"] == "invalid_migration_name"
    assert "at most 63" in record["status"]["error"]["message"]
    assert not _evicted(world)
    assert world.api.pod(f"{POD}-migrated-{name[:8]}") is None


class _NoWriter(LocationOnlyCheckpointer):
    async def save(self, job: CheckpointJob) -> JSON:
        return {"saved": False, "skipped": NO_RUNNING_WRITER, "message": "no running container mounts it"}


@pytest.mark.parametrize(
    ("checkpoint", "learned"),
    [
        (_NoWriter(), None),
        (_NoExec(), False),
        (LocationOnlyCheckpointer(), None),
    ],
    ids=["no-running-writer", "exec-refused", "no-exec-run"],
)
async def test_only_a_checkpoint_that_tried_exec_says_whether_the_node_has_it(
    checkpoint: LocationOnlyCheckpointer, learned: bool | None
) -> None:
    world = World()
    _checkpoint_with(world, checkpoint)
    world.request(strategy="checkpoint-restart")
    await world.drive()
    await _checkpoints_finish(world)
    assert world.phase() == Phase.STOPPING_SOURCE.value
    assert world.controller.exec_support.works("node-a") is learned


def test_what_was_learned_about_exec_is_forgotten_after_its_ttl() -> None:
    now = [0.0]
    support = ExecSupport(ttl_seconds=10, clock=lambda: now[0])
    assert support.works("n") is None
    support.note("n", works=False)
    assert support.works("n") is False
    now[0] = 11.0
    assert support.works("n") is None


async def test_a_target_started_beside_a_checkpoint_that_is_then_skipped_starts_again_without_it() -> None:
    world = World()
    _checkpoint_with(world, _NoExec())
    world.request(strategy="checkpoint-restart")
    await world.drive()
    target = str(world.record()["status"]["targetPod"])
    first = world.api.pod(target)
    assert first is not None, "started beside the checkpoint: exec on node-a was not known to fail"
    await _checkpoints_finish(world)
    assert world.phase() == Phase.STOPPING_SOURCE.value
    assert world.controller.exec_support.works("node-a") is False
    assert world.api.pod(target)["metadata"].get("deletionTimestamp"), "its spec expected the checkpoint"  # type: ignore[index]
    world.api.finish_termination(target)
    await world.drive()
    again = world.api.pod(target)
    assert again is not None
    assert again["metadata"]["uid"] != first["metadata"]["uid"]
    assert not _evicted(world)


async def test_the_source_is_evicted_once_while_its_deletion_is_on_its_way() -> None:
    world = World()
    target = await _checkpointed(world)
    source = world.api.pod(POD)
    assert source is not None
    marked = {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "lastTransitionTime": now_iso(),
    }
    source.setdefault("status", {}).setdefault("conditions", []).append(marked)
    world.api.put(PODS, source)  # the Eviction API's first write; its deletion is the next
    world.api.run_gate(target)
    await world.drive()
    assert not _evicted(world), "an eviction under way is not asked for again"
    assert world.phase() == Phase.STOPPING_SOURCE.value


class _Knocker:
    """Records each exec opened ahead and each knock; answers with `failure` (None: the token was written)."""

    def __init__(self, failure: str | None = None) -> None:
        self.failure = failure
        self.knocks: list[tuple[str, str, str, str]] = []
        self.prepared: list[tuple[str, str, str]] = []
        self.discarded: list[tuple[str, str]] = []
        self.closed = False

    def prepare(self, *, namespace: str, pod: str, node: str) -> None:
        self.prepared.append((namespace, pod, node))

    def discard(self, *, namespace: str, pod: str) -> None:
        self.discarded.append((namespace, pod))

    async def close(self) -> None:
        self.closed = True

    async def knock(self, *, namespace: str, pod: str, node: str, token: str) -> str | None:
        self.knocks.append((namespace, pod, node, token))
        return self.failure


async def _gate_running(knocker: _Knocker) -> tuple[World, str]:
    """A checkpoint-restart move whose pre-warmed target's gate runs and whose source was evicted; the target."""
    world = World(knocker=knocker)
    target = await _checkpointed(world)
    world.api.run_gate(target)
    await world.drive()
    return world, target


async def test_the_gate_is_knocked_on_with_the_token_when_the_hand_off_is_written_and_never_before() -> None:
    knocker = _Knocker()
    world, target = await _gate_running(knocker)
    source = world.api.pod(POD)
    assert source is not None
    assert set(knocker.prepared) == {(NAMESPACE, target, TARGET)}, "opened ahead of the hand-off"
    world.state.pods.apply("DELETED", source)  # the cache runs ahead of the API server: no hand-off yet
    await world.drive()
    assert knocker.knocks == []
    world.api.stop_containers(POD)
    await world.drive()
    assert knocker.knocks == [(NAMESPACE, target, TARGET, _token(world))]
    assert world.phase() == Phase.WAITING_FOR_TARGET.value


async def test_a_knock_that_fails_changes_nothing_the_annotation_opens_the_gate() -> None:
    knocker = _Knocker(failure="exec refused: HTTP 403")
    world, target = await _gate_running(knocker)
    world.api.finish_termination(POD)
    await world.drive()
    assert len(knocker.knocks) == 1
    assert world.api.pod(target)["metadata"]["annotations"][HANDOFF_ANNOTATION] == _token(world)  # type: ignore[index]
    assert world.phase() == Phase.WAITING_FOR_TARGET.value
    assert world.controller.exec_support.works(TARGET) is None, "a failed knock does not decide the checkpoint's exec"


async def test_a_target_node_known_to_lack_exec_gets_no_knock() -> None:
    knocker = _Knocker()
    world = World(knocker=knocker)
    world.controller.exec_support.note(TARGET, works=False)
    target = await _checkpointed(world)
    world.api.run_gate(target)
    await world.drive()
    world.api.finish_termination(POD)
    await world.drive()
    assert knocker.knocks == []
    assert knocker.prepared == []
    assert world.phase() == Phase.WAITING_FOR_TARGET.value


class _SlowKnocker(_Knocker):
    """Answers only when released: a knock still under way when the hand-off's patch fails."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = False

    async def knock(self, *, namespace: str, pod: str, node: str, token: str) -> str | None:
        self.knocks.append((namespace, pod, node, token))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return None


async def test_a_hand_off_patch_that_fails_is_the_steps_own_error_and_drops_the_knock() -> None:
    knocker = _SlowKnocker()
    world, target = await _gate_running(knocker)
    world.api.finish_termination(POD)

    async def target_gone(*args: Any, **kwargs: Any) -> JSON:
        await asyncio.sleep(0)  # the knock is under way by now
        raise KubeApiError(404, "NotFound", f"pods {target} not found")

    world.api.merge_patch = target_gone  # type: ignore[method-assign]
    with pytest.raises(KubeApiError) as failure:  # retried by the reconciler like any API error
        await world.drive()
    assert failure.value.not_found
    assert knocker.knocks == [(NAMESPACE, target, TARGET, _token(world))]
    assert knocker.cancelled


async def test_a_cancel_closes_the_exec_opened_ahead_into_the_held_target_it_removes() -> None:
    knocker = _Knocker()
    world = World(knocker=knocker)
    target = await _checkpointed(world)
    world.api.run_gate(target)
    await world.drive()
    assert knocker.prepared == [(NAMESPACE, target, TARGET)]
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"spec": {"cancelRequested": True}}, namespace=NAMESPACE)
    await world.drive()
    assert world.api.pod(target)["metadata"].get("deletionTimestamp")  # type: ignore[index]
    assert (NAMESPACE, target) in knocker.discarded
    assert knocker.knocks == []


async def test_the_held_target_of_an_active_move_is_not_moved_again() -> None:
    """A second move of the first move's target would open its own gate while the first move's source still runs."""
    world = World()
    target = await _checkpointed(world)
    world.api.run_gate(target)
    world.request(migration_id="m2", pod=target, target="node-c")
    await world.drive(f"{NAMESPACE}/m2")
    second = world.record(f"{NAMESPACE}/m2")["status"]
    assert second["phase"] == Phase.FAILED.value
    assert second["error"]["reason"] == "migration_in_progress"
    expected = f"pod {NAMESPACE}/{target} is the target of migration m1, which is still active"
    assert second["error"]["message"] == expected
    assert world.api.pod(target) is not None
    assert world.phase() == Phase.STOPPING_SOURCE.value
