"""The phase table step by step against an in-memory API: the paths that could end with no pod at all."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from ai_storage_orchestrator.checkpoint import CheckpointJob
from ai_storage_orchestrator.controller.controller import LocationOnlyCheckpointer
from ai_storage_orchestrator.controller.fencing import NotLeader
from ai_storage_orchestrator.controller.invariant import InvariantViolation
from ai_storage_orchestrator.controller.planning.marking import move_of, unmark_containers
from ai_storage_orchestrator.controller.reconciler import Outcome
from ai_storage_orchestrator.controller.records import now_iso
from ai_storage_orchestrator.conventions import MIGRATION_FINALIZER, RESTORED_BY_ANNOTATION
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, PODS
from ai_storage_orchestrator.models import Phase
from tests.unit.controller.fakes import NAMESPACE, POD, SOURCE, World, node

pytestmark = pytest.mark.unit

CHECKPOINT_RESTART = "checkpoint-restart"
MAKE_BEFORE_BREAK = "make-before-break"
KEY = f"{NAMESPACE}/m1"
JSON = dict[str, Any]


async def _cancel(world: World) -> None:
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"spec": {"cancelRequested": True}}, namespace=NAMESPACE)


def _terminating(world: World, name: str) -> bool:
    pod = world.state.pod(NAMESPACE, name)
    return pod is not None and bool(pod["metadata"].get("deletionTimestamp"))


async def test_cancel_while_the_source_is_stopping_recreates_it_once_gone() -> None:
    world = World()
    world.migration(phase=Phase.STOPPING_SOURCE.value, strategy=CHECKPOINT_RESTART)
    result = await world.drive()
    assert result.outcome is Outcome.REQUEUE_AFTER
    assert _terminating(world, POD)

    await _cancel(world)
    result = await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value
    assert result.outcome is Outcome.REQUEUE_AFTER, "waits for the terminating source instead of ending"

    world.api.finish_termination(POD)
    await world.drive()
    restored = world.api.pod(POD)
    assert restored is not None
    assert restored["spec"]["nodeName"] == SOURCE
    assert restored["metadata"]["annotations"][RESTORED_BY_ANNOTATION] == "m1"
    assert world.phase() == Phase.ROLLING_BACK.value, "not ended before its node's kubelet has taken it"
    world.api.admit(POD)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert world.record()["status"]["message"] == f"cancelled; rolled back; pod recreated on {SOURCE}"
    assert world.record()["status"]["podsAlive"] == [POD]


async def _cancelled_while_the_source_stops(world: World) -> None:
    world.migration(phase=Phase.STOPPING_SOURCE.value, strategy=CHECKPOINT_RESTART)
    await world.drive()
    await _cancel(world)
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value


async def test_a_recreated_source_its_node_refuses_is_created_again_for_the_scheduler() -> None:
    """Bound by nodeName it skips the scheduler's fit checks, and the node's room may be gone since the source
    stopped: recording the end before the kubelet's answer would leave no pod at all."""
    world = World()
    await _cancelled_while_the_source_stops(world)
    world.api.finish_termination(POD)
    await world.drive()  # recreated on its node
    world.api.refuse(POD, "OutOfcpu")
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value
    assert world.record()["status"]["restore"] == {"refused": "OutOfcpu: Pod was rejected: OutOfcpu"}
    assert _terminating(world, POD)
    world.api.finish_termination(POD)
    await world.drive()
    again = world.api.pod(POD)
    assert again is not None
    assert "nodeName" not in again["spec"], "left to the scheduler"
    assert world.phase() == Phase.CANCELLED.value
    refusal = f"node {SOURCE} refused it: OutOfcpu: Pod was rejected: OutOfcpu"
    assert world.record()["status"]["message"].endswith(f"pod recreated for the scheduler to place ({refusal})")
    assert world.record()["status"]["podsAlive"] == [POD]


async def test_a_source_whose_node_is_not_ready_is_recreated_for_the_scheduler() -> None:
    world = World()
    await _cancelled_while_the_source_stops(world)
    gone = node(SOURCE)
    gone["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    world.state.nodes.apply("MODIFIED", gone)
    world.api.finish_termination(POD)
    await world.drive()
    again = world.api.pod(POD)
    assert again is not None
    assert "nodeName" not in again["spec"]
    assert world.phase() == Phase.CANCELLED.value
    assert world.record()["status"]["restore"] == {"refused": f"node {SOURCE} is gone or not Ready"}


async def test_cancel_with_a_lagging_cache_still_knows_the_source_may_be_stopping() -> None:
    world = World()
    world.migration(phase=Phase.STOPPING_SOURCE.value, strategy=CHECKPOINT_RESTART)
    world.api.reflect = False  # the eviction is accepted; the cache has not heard of it when the cancel comes
    await world.controller.reconcile(KEY)
    world.api.reflect = True
    assert not _terminating(world, POD)
    await _cancel(world)
    with pytest.raises(InvariantViolation):  # the cache says alive; the live read says terminating
        await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value, "sourceStopped was recorded before the eviction"
    world.api.catch_up()
    assert (await world.drive()).outcome is Outcome.REQUEUE_AFTER
    world.api.finish_termination(POD)
    await world.drive()
    world.api.admit(POD)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert world.record()["status"]["podsAlive"] == [POD]


async def test_cancel_before_the_source_was_touched_changes_nothing() -> None:
    world = World()
    world.migration(phase=Phase.STOPPING_SOURCE.value, strategy=CHECKPOINT_RESTART)
    await _cancel(world)
    before = len(world.api.writes())
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert world.api.writes()[before:] == ["patch PodMigration m1/status"]


async def _make_before_break_at_removing_source(world: World) -> str:
    world.migration(phase=Phase.CREATING_TARGET.value, strategy=MAKE_BEFORE_BREAK)
    await world.drive()
    target = str(world.record()["status"]["targetPod"])
    world.api.make_ready(target)
    assert (await world.controller.reconcile(KEY)).outcome is Outcome.REQUEUE
    assert world.phase() == Phase.REMOVING_SOURCE.value
    return target


async def test_removing_source_reads_the_target_live_and_keeps_the_source_when_it_was_evicted() -> None:
    world = World()
    target = await _make_before_break_at_removing_source(world)
    world.api.reflect = False  # the target is evicted; the cache still shows it Ready
    await world.api.delete(PODS, target, namespace=NAMESPACE)
    world.api.reflect = True
    await world.controller.reconcile(KEY)
    assert world.phase() == Phase.WAITING_FOR_TARGET.value
    assert "being removed; the source pod stays" in world.record()["status"]["message"]
    source = world.api.pod(POD)
    assert source is not None
    assert not source["metadata"].get("deletionTimestamp"), "the source stays"


async def test_target_lost_after_the_source_was_removed_is_created_again() -> None:
    world = World()
    target = await _make_before_break_at_removing_source(world)
    await world.drive()  # evicts the source
    assert _terminating(world, POD)
    await world.api.delete(PODS, target, namespace=NAMESPACE)
    world.api.finish_termination(target)
    await world.drive()
    assert world.phase() == Phase.WAITING_FOR_TARGET.value, "a new target was created"
    assert world.record()["status"]["sourceStopped"] is True
    world.api.make_ready(target)
    world.api.finish_termination(POD)
    await world.drive()
    assert world.phase() == Phase.COMPLETED.value
    assert world.record()["status"]["podsAlive"] == [target]


async def test_make_before_break_completes_with_the_target_alive() -> None:
    world = World()
    target = await _make_before_break_at_removing_source(world)
    await world.drive()
    world.api.finish_termination(POD)
    await world.drive()
    assert world.phase() == Phase.COMPLETED.value
    assert world.record()["status"]["podsAlive"] == [target]
    assert any(c == f"evict Pod {POD}" for c in world.api.calls), "removed through the Eviction API"


async def test_a_disruption_budget_blocks_the_removal_and_the_move_rolls_back_at_the_timeout() -> None:
    world = World()
    target = await _make_before_break_at_removing_source(world)
    world.api.disruption_budget_blocks = True
    result = await world.drive()
    assert result.outcome is Outcome.REQUEUE_AFTER
    assert world.record()["status"]["message"].startswith("blocked_by_disruption_budget")
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"spec": {"timeoutSeconds": 0}}, namespace=NAMESPACE)
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value
    world.api.finish_termination(target)
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "blocked_by_disruption_budget"
    assert world.api.pod(POD) is not None
    assert not _terminating(world, POD)


async def test_deleting_the_record_mid_move_rolls_back_and_then_lets_it_go() -> None:
    world = World()
    world.migration(phase=Phase.STOPPING_SOURCE.value, strategy=CHECKPOINT_RESTART)
    await world.drive()  # the source is stopping
    await world.api.delete(POD_MIGRATIONS, "m1", namespace=NAMESPACE)
    assert world.state.migrations.get(KEY) is not None, "the finalizer keeps the record"
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value
    world.api.finish_termination(POD)
    await world.drive()
    world.api.admit(POD)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    await world.drive()  # the terminal record's own event brings it back: its finalizer goes
    assert world.api.pod(POD) is not None, "the pod was recreated from the record"
    assert world.state.migrations.get(KEY) is None, "the finalizer went after the rollback"


async def test_a_replica_that_cannot_prove_its_lease_writes_nothing() -> None:
    world = World()
    world.migration(phase=Phase.STOPPING_SOURCE.value, strategy=CHECKPOINT_RESTART)
    world.leading = False
    before = list(world.api.writes())
    with pytest.raises(NotLeader):
        await world.controller.reconcile(KEY)
    assert world.api.writes() == before
    assert not _terminating(world, POD)


class SlowCheckpointer(LocationOnlyCheckpointer):
    """A checkpoint that takes as long as the test wants."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    async def save(self, job: CheckpointJob) -> JSON:
        self.started += 1
        await self.release.wait()
        return {"saved": True, "directory": f"/ckpt/{job.migration_id}"}


async def test_a_slow_checkpoint_does_not_hold_a_worker_and_wakes_its_migration_when_done() -> None:
    world = World()
    slow = SlowCheckpointer()
    world.controller.checkpointer = slow
    world.controller.checkpoints.checkpointer = slow
    woken: list[str] = []
    woke = asyncio.Event()

    def wake(key: str) -> None:
        woken.append(key)
        woke.set()

    world.controller.checkpoints.wake = wake
    world.migration(phase=Phase.CHECKPOINTING.value, strategy=CHECKPOINT_RESTART)
    result = await world.controller.reconcile(KEY)
    assert result.outcome is Outcome.REQUEUE_AFTER, "the step returned while the checkpoint runs"
    assert world.record()["status"]["message"].startswith("checkpoint running since")
    assert world.record()["status"]["checkpoint"]["running"] is True
    assert (await world.controller.reconcile(KEY)).outcome is Outcome.REQUEUE_AFTER
    assert world.controller.checkpoints.running(KEY)
    slow.release.set()
    async with asyncio.timeout(5):
        await woke.wait()
    assert slow.started == 1, "a second step did not start it again"
    assert woken == [KEY]
    await world.drive()
    assert world.phase() != Phase.CHECKPOINTING.value
    assert world.record()["status"]["checkpoint"]["directory"] == "/ckpt/m1"
    assert "running" not in world.record()["status"]["checkpoint"]


async def test_cancel_during_a_checkpoint_stops_it() -> None:
    world = World()
    slow = SlowCheckpointer()
    world.controller.checkpoints.checkpointer = slow
    world.migration(phase=Phase.CHECKPOINTING.value, strategy=CHECKPOINT_RESTART)
    await world.controller.reconcile(KEY)
    assert world.controller.checkpoints.running(KEY)
    await _cancel(world)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert not world.controller.checkpoints.running(KEY)
    await world.controller.checkpoints.stop()


async def test_a_recreated_source_whose_node_stops_answering_is_waited_for_not_given_up() -> None:
    """Removing it could not be confirmed, and a copy made elsewhere could run beside it on a node only cut off."""
    world = World()
    await _cancelled_while_the_source_stops(world)
    world.api.finish_termination(POD)
    await world.drive()  # recreated on its node
    cut_off = node(SOURCE)
    cut_off["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    world.state.nodes.apply("MODIFIED", cut_off)
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value
    assert "not Ready: waiting for its kubelet to take it" in world.record()["status"]["message"]
    assert not _terminating(world, POD)
    world.state.nodes.apply("MODIFIED", node(SOURCE))
    world.api.admit(POD)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value


async def test_a_rollback_ends_when_the_untouched_source_failed_by_itself() -> None:
    """`sourceStopped` is written ahead of the eviction: a source that failed on its own (restartPolicy Never)
    before anything was evicted is the pod, not a pod this move lost."""
    world = World()
    world.migration(phase=Phase.STOPPING_SOURCE.value, strategy=CHECKPOINT_RESTART, sourceStopped=True)
    await world.api.merge_patch(PODS, POD, {"status": {"phase": "Failed"}}, namespace=NAMESPACE)
    await _cancel(world)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    source = world.api.pod(POD)
    assert source is not None
    assert not source["metadata"].get("deletionTimestamp")


async def test_a_rollback_removes_a_target_the_cache_has_not_seen() -> None:
    """A create whose answer was lost, or a new leader whose watch is behind: the target exists, the cache does
    not know it, and a cancel must still remove it (one running copy)."""
    world = World()
    world.migration(phase=Phase.CREATING_TARGET.value, strategy=MAKE_BEFORE_BREAK)
    target = str(world.record()["status"]["targetPod"])
    world.api.reflect = False
    world.api.put(PODS, world.record()["status"]["targetPodManifest"])
    world.api.reflect = True
    assert world.state.pod(NAMESPACE, target) is None
    await _cancel(world)
    await world.drive()
    assert _terminating(world, target), "the target is removed although the cache had not seen it"
    assert world.phase() == Phase.ROLLING_BACK.value
    world.api.finish_termination(target)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert world.record()["status"]["podsAlive"] == [POD]


async def test_a_record_made_without_the_finalizer_gets_it_before_any_step() -> None:
    world = World()
    key = world.request()
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"metadata": {"finalizers": None}}, namespace=NAMESPACE)
    assert not world.record(key)["metadata"].get("finalizers")
    await world.controller.reconcile(key)
    assert world.record(key)["metadata"]["finalizers"] == [MIGRATION_FINALIZER]
    assert world.phase(key) == "Pending", "protected first; the plan comes in the next step"


def _kill_time(world: World, when: str) -> None:
    """The terminating source's deletionTimestamp: when its grace period ends (the kubelet kills it then)."""
    pod = world.api.objects[(PODS.plural, NAMESPACE, POD)]
    pod["metadata"]["deletionTimestamp"] = when
    world.api.put(PODS, pod)


async def test_make_before_break_ends_at_its_deadline_when_the_source_never_confirms_its_removal() -> None:
    world = World()
    target = await _make_before_break_at_removing_source(world)
    await world.drive()
    assert _terminating(world, POD), "evicted; its node never confirms it"
    long_ago = "2020-01-01T00:00:00Z"
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"status": {"startedAt": long_ago}}, namespace=NAMESPACE)
    # Its grace period has just ended: the kubelet's kill and clean-up still get their time.
    _kill_time(world, now_iso())
    await world.drive()
    assert world.phase() == Phase.REMOVING_SOURCE.value
    _kill_time(world, long_ago)
    await world.drive()
    assert world.phase() == Phase.COMPLETED.value
    message = world.record()["status"]["message"]
    assert f"{target} is Ready; source pod {POD} was removed but is still terminating" in message


async def test_a_cancel_that_lands_as_the_source_removal_begins_still_rolls_back() -> None:
    """The service accepted it in WaitingForTarget; the move entered RemovingSource before it read it."""
    world = World()
    target = await _make_before_break_at_removing_source(world)
    await _cancel(world)
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value
    assert not _terminating(world, POD), "the source was never touched"
    assert _terminating(world, target)
    world.api.finish_termination(target)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert world.record()["status"]["podsAlive"] == [POD]


async def test_a_target_made_before_the_proof_existed_is_still_the_moves_own() -> None:
    """A move in flight across an upgrade: its target has the label and the name the move recorded, not the variable
    (planning/marking.py). A cancel must still remove it, not leave it beside the source."""
    world = World()
    world.migration(phase=Phase.CREATING_TARGET.value, strategy=MAKE_BEFORE_BREAK)
    manifest = copy.deepcopy(world.record()["status"]["targetPodManifest"])
    unmark_containers(manifest["spec"]["containers"])
    target = world.api.put(PODS, manifest)["metadata"]["name"]
    await _cancel(world)
    await world.drive()
    assert _terminating(world, target)


async def test_a_target_created_from_a_plan_recorded_before_the_proof_carries_it() -> None:
    world = World()
    world.migration(phase=Phase.CREATING_TARGET.value, strategy=MAKE_BEFORE_BREAK)
    record = world.api.objects[(POD_MIGRATIONS.plural, NAMESPACE, "m1")]
    unmark_containers(record["status"]["targetPodManifest"]["spec"]["containers"])
    world.state.migrations.apply("MODIFIED", copy.deepcopy(record))
    await world.drive()
    target = world.api.pod(str(world.record()["status"]["targetPod"]))
    assert target is not None
    assert move_of(target) == "m1"


async def test_a_move_that_restores_nothing_drops_an_earlier_moves_restore_container() -> None:
    """A pod moved before with a checkpoint carries that move's restore init container (and its checkpoint's path):
    kept, it would copy the earlier checkpoint over the pod's current data in its new pod."""
    world = World()
    source = copy.deepcopy(world.source)
    mount = [{"name": "scratch", "mountPath": "/scratch"}]  # the artifact's volume, which it writes
    restore = {"name": "ai-storage-restore-trainer", "image": "trainer:1", "volumeMounts": mount}
    source["spec"]["initContainers"] = [restore]
    source["spec"]["containers"][0]["volumeMounts"] = mount
    source["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    done = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    source["status"]["initContainerStatuses"] = [{"name": restore["name"], "ready": True, "state": done}]
    del world.api.objects[(PODS.plural, NAMESPACE, POD)]
    world.source = world.api.put(PODS, source)
    world.request(strategy=MAKE_BEFORE_BREAK)
    await world.drive()
    manifest = world.record()["status"]["targetPodManifest"]
    assert "initContainers" not in manifest["spec"]
    decisions = {c["name"]: c["action"] for c in world.record()["status"]["containers"]}
    assert decisions.get("ai-storage-restore-trainer", "skip") == "skip"
