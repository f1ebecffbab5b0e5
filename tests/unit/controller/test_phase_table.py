"""Whole moves through the phase table from Pending, step by step against the in-memory API: the happy paths of both
orderings, the refusals, the rollbacks and the end of a record's life."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import Any, cast

import pytest

from ai_storage_orchestrator.controller.ports import Checkpointer
from ai_storage_orchestrator.controller.reconciler import Outcome
from ai_storage_orchestrator.conventions import MIGRATION_FINALIZER
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, PODS
from ai_storage_orchestrator.models import Phase
from ai_storage_orchestrator.settings import Settings
from tests.unit.controller.fakes import NAMESPACE, POD, SOURCE, TARGET, World, node, running_pod

pytestmark = pytest.mark.unit
KEY = f"{NAMESPACE}/m1"


def _phases(world: World, key: str = KEY) -> list[str]:
    return [t["phase"] for t in world.record(key)["status"]["phaseTransitions"]]


async def test_make_before_break_from_pending_to_completed() -> None:
    world = World()
    world.request(strategy="make-before-break")
    await world.drive()
    status = world.record()["status"]
    assert world.phase() == Phase.WAITING_FOR_TARGET.value
    assert [c["name"] for c in status["containers"]] == ["trainer"]
    assert status["sourcePodUID"] == world.source["metadata"]["uid"]
    target = status["targetPod"]
    assert world.api.pod(target)["spec"]["nodeName"] == TARGET  # type: ignore[index]
    world.api.make_ready(target)
    await world.drive()
    world.api.finish_termination(POD)
    await world.drive()
    assert _phases(world) == ["Validating", "CreatingTarget", "WaitingForTarget", "RemovingSource", "Completed"]
    assert world.record()["status"]["podsAlive"] == [target]
    assert ("MigrationCompleted", f"migration m1: source pod removed; {target} is Ready") in world.events.recorded


async def test_checkpoint_restart_from_pending_to_completed_without_prewarm() -> None:
    world = World(settings=Settings(leader_election=False, prewarm=False))
    world.request(strategy="checkpoint-restart")
    result = await world.drive()
    assert world.phase() == Phase.CHECKPOINTING.value
    assert result.outcome is Outcome.REQUEUE_AFTER  # the checkpoint runs beside the workers
    finished = await _checkpoint_done(world)
    assert finished
    await world.drive()
    assert world.phase() == Phase.STOPPING_SOURCE.value
    world.api.finish_termination(POD)
    await world.drive()
    target = world.record()["status"]["targetPod"]
    world.api.make_ready(target)
    await world.drive()
    assert _phases(world) == [
        "Validating",
        "Checkpointing",
        "StoppingSource",
        "CreatingTarget",
        "WaitingForTarget",
        "Completed",
    ]
    assert world.api.pod(POD) is None


async def _checkpoint_done(world: World) -> bool:
    pool = world.controller.checkpoints
    for task in list(pool._jobs.values()):
        await task
    return pool.running(KEY) is False


async def test_a_second_migration_of_the_same_pod_fails_while_the_first_is_active() -> None:
    world = World()
    world.request(migration_id="m1")
    await world.drive(f"{NAMESPACE}/m1")
    world.request(migration_id="m2")
    await world.drive(f"{NAMESPACE}/m2")
    assert world.phase(f"{NAMESPACE}/m2") == Phase.FAILED.value
    assert world.record(f"{NAMESPACE}/m2")["status"]["error"]["reason"] == "migration_in_progress"


async def test_the_concurrency_cap_queues_a_migration_in_pending() -> None:
    world = World(settings=Settings(leader_election=False, max_active_migrations=1))
    world.api.put(PODS, running_pod("other", SOURCE))
    world.request(migration_id="m1")
    await world.drive(f"{NAMESPACE}/m1")
    assert world.phase(f"{NAMESPACE}/m1") == Phase.WAITING_FOR_TARGET.value
    world.request(migration_id="m2", pod="other")
    result = await world.controller.reconcile(f"{NAMESPACE}/m2")
    assert result.outcome is Outcome.REQUEUE_AFTER
    assert world.phase(f"{NAMESPACE}/m2") == Phase.PENDING.value
    assert world.record(f"{NAMESPACE}/m2")["status"]["message"].startswith("queued: 1 migrations in flight")


async def test_validation_refuses_an_unknown_target_node() -> None:
    world = World()
    world.request(target="no-such-node")
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "target_node_not_found"
    assert world.record()["status"]["podsAlive"] == [POD]


@pytest.mark.parametrize("phase", [Phase.PENDING, Phase.VALIDATING, Phase.CREATING_TARGET])
async def test_cancel_before_the_source_is_touched_keeps_it(phase: Phase) -> None:
    world = World()
    world.request(strategy="make-before-break")
    if phase is Phase.VALIDATING:  # a step no longer ends there; a record of an earlier version may
        patch = {"status": {"phase": phase.value}}
        await world.api.merge_patch(POD_MIGRATIONS, "m1", patch, namespace=NAMESPACE, subresource="status")
    while world.phase() != phase.value:
        assert (await world.controller.reconcile(KEY)).outcome is Outcome.REQUEUE
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"spec": {"cancelRequested": True}}, namespace=NAMESPACE)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert world.api.pod(POD) is not None
    assert world.record()["status"]["podsAlive"] == [POD]


async def test_a_target_that_cannot_pull_its_image_is_rolled_back_at_once() -> None:
    world = World()
    world.request(strategy="make-before-break")
    await world.drive()
    target = world.record()["status"]["targetPod"]
    pod = world.api.objects[(PODS.plural, NAMESPACE, target)]
    pod["status"] = {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "trainer", "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}
        ],
    }
    world.api.put(PODS, pod)
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value
    world.api.finish_termination(target)
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "target_container_error"
    assert world.api.pod(POD) is not None


async def test_a_target_name_taken_by_a_foreign_pod_rolls_back() -> None:
    world = World()
    world.request(strategy="make-before-break")
    await world.controller.reconcile(KEY)  # Pending → (Validating) → CreatingTarget
    target = world.record()["status"]["targetPod"]
    world.api.put(PODS, running_pod(target, TARGET))  # someone else's pod, without our label
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "target_name_taken"
    assert world.api.pod(target) is not None, "a pod that is not ours is never deleted"


async def test_waiting_past_the_timeout_rolls_back() -> None:
    world = World()
    world.request(strategy="make-before-break")
    await world.drive()
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"spec": {"timeoutSeconds": 0}}, namespace=NAMESPACE)
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value
    world.api.finish_termination(world.record()["status"]["targetPod"])
    await world.drive()
    assert world.record()["status"]["error"]["reason"] == "target_not_ready_timeout"


async def test_a_finished_record_loses_its_finalizer_then_expires() -> None:
    world = World(settings=Settings(leader_election=False, finished_migration_ttl_seconds=60))
    world.request(target="no-such-node")
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert MIGRATION_FINALIZER in world.record()["metadata"]["finalizers"]
    result = await world.drive()
    assert MIGRATION_FINALIZER not in (world.record()["metadata"].get("finalizers") or [])
    assert result.outcome is Outcome.REQUEUE_AFTER
    assert 0 < result.delay <= 60
    long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await world.api.merge_patch(
        POD_MIGRATIONS, "m1", {"status": {"finishedAt": long_ago}}, namespace=NAMESPACE, subresource="status"
    )
    await world.drive()
    assert world.state.migrations.get(KEY) is None


class _NeverEnds:
    """A checkpointer whose save hangs (a hook that never returns, an exec into a node that stopped answering)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False

    async def save(self, job: object) -> dict[str, object]:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("unreachable")


async def test_a_checkpoint_still_running_at_the_deadline_fails_the_move_without_spinning() -> None:
    world = World(settings=Settings(leader_election=False, prewarm=False))
    hanging = _NeverEnds()
    world.controller.checkpoints.checkpointer = cast(Checkpointer, hanging)  # only save is called
    world.request(strategy="checkpoint-restart", timeoutSeconds=60)
    await world.drive()
    assert world.phase() == Phase.CHECKPOINTING.value
    assert world.controller.checkpoints.running(KEY)
    await asyncio.wait_for(hanging.started.wait(), timeout=5)
    long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"status": {"startedAt": long_ago}}, namespace=NAMESPACE)
    result = await world.drive()
    assert result.outcome is not Outcome.REQUEUE
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "checkpoint_timeout"
    assert not world.controller.checkpoints.running(KEY)
    for _ in range(3):
        await asyncio.sleep(0)
    assert hanging.cancelled
    assert world.api.pod(POD) is not None, "the source was never touched"


async def test_two_moves_of_one_pod_arriving_together_never_both_start() -> None:
    """The second move appears while the first's plan is being written: it must not start once the first has."""
    world = World()
    world.request(migration_id="bbb", strategy="checkpoint-restart")
    stamp = world.record(f"{NAMESPACE}/bbb")["metadata"]["creationTimestamp"]
    written = asyncio.Event()
    real_patch = world.api.merge_patch

    async def slow_first_status_write(resource: Any, name: str, patch: Any, **options: Any) -> dict[str, Any]:
        if name == "bbb" and options.get("subresource") == "status" and not written.is_set():
            await written.wait()
        return await real_patch(resource, name, patch, **options)

    world.api.merge_patch = slow_first_status_write  # type: ignore[method-assign]
    first = asyncio.create_task(world.controller.reconcile(f"{NAMESPACE}/bbb"))
    for _ in range(2):
        await asyncio.sleep(0)
    world.request(migration_id="aaa", strategy="checkpoint-restart")  # same second: "aaa" sorts first
    record = world.api.objects[(POD_MIGRATIONS.plural, NAMESPACE, "aaa")]
    record["metadata"]["creationTimestamp"] = stamp
    world.api.put(POD_MIGRATIONS, record)
    second = asyncio.create_task(world.controller.reconcile(f"{NAMESPACE}/aaa"))
    for _ in range(2):
        await asyncio.sleep(0)
    written.set()
    await asyncio.gather(first, second)
    phases = {world.phase(f"{NAMESPACE}/bbb"), world.phase(f"{NAMESPACE}/aaa")}
    assert phases == {Phase.CHECKPOINTING.value, Phase.FAILED.value}
    assert world.record(f"{NAMESPACE}/aaa")["status"]["error"]["reason"] == "migration_in_progress"


def _assert_source_untouched(world: World) -> None:
    source = world.api.pod(POD)
    assert source is not None
    assert not source["metadata"].get("deletionTimestamp"), "the source runs on, untouched"


def _node_lost(world: World, name: str) -> None:
    lost = node(name)
    lost["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    world.state.nodes.apply("MODIFIED", lost)


async def test_a_target_on_a_lost_node_ends_the_rollback_while_the_source_was_never_touched() -> None:
    world = World()
    world.request(strategy="make-before-break")
    await world.drive()
    assert world.phase() == Phase.WAITING_FOR_TARGET.value
    target = world.record()["status"]["targetPod"]
    _node_lost(world, TARGET)
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "target_node_lost"
    assert (world.api.pod(target) or {})["metadata"].get("deletionTimestamp"), "its removal was asked for"
    _assert_source_untouched(world)


async def test_a_target_on_a_lost_node_holds_the_rollback_once_the_source_was_stopped_and_says_why() -> None:
    world = World(settings=Settings(leader_election=False, prewarm=False))
    world.request(strategy="checkpoint-restart")
    await world.drive()
    assert await _checkpoint_done(world)
    await world.drive()
    world.api.finish_termination(POD)
    await world.drive()
    assert world.phase() == Phase.WAITING_FOR_TARGET.value
    target = world.record()["status"]["targetPod"]
    _node_lost(world, TARGET)
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value
    assert "its node node-b is not Ready" in world.record()["status"]["message"]
    assert world.api.pod(POD) is None, "no second copy while the target may still run on the lost node"
    world.api.finish_termination(target)  # the node came back, or it was deleted: the removal is confirmed
    await world.drive()
    assert world.api.pod(POD) is not None, "then the source is recreated"


def _cordon(world: World, name: str) -> None:
    cordoned = node(name)
    cordoned["spec"] = {"unschedulable": True}
    world.state.nodes.apply("MODIFIED", cordoned)


async def test_a_target_cordoned_after_planning_stops_a_make_before_break_move_before_anything_is_made() -> None:
    world = World()
    world.request(strategy="make-before-break")
    await world.controller.reconcile(KEY)  # planned: CreatingTarget
    assert world.phase() == Phase.CREATING_TARGET.value
    _cordon(world, TARGET)  # a drain of the target node began meanwhile
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "target_node_cordoned"
    assert not [call for call in world.api.calls if call.startswith("create Pod")]


async def test_a_target_cordoned_before_the_source_is_stopped_rolls_the_prewarmed_target_back() -> None:
    world = World()
    world.request(strategy="checkpoint-restart")
    await world.drive()
    assert await _checkpoint_done(world)
    target = world.record()["status"]["targetPod"]
    _cordon(world, TARGET)
    world.api.run_gate(target)
    await world.drive()
    assert world.phase() in (Phase.ROLLING_BACK.value, Phase.FAILED.value)
    assert world.record()["status"]["error"]["reason"] == "target_node_cordoned"
    assert not [call for call in world.api.calls if call.startswith(("evict", "delete Pod trainer "))]
    _assert_source_untouched(world)


async def test_a_stale_checkpointing_record_never_starts_a_second_checkpoint() -> None:
    """The cache went back to the Checkpointing record after the step recorded StoppingSource (a relist, a lost
    write response): a checkpoint started from it would reset the saved one. Its first write fails instead."""
    world = World(settings=Settings(leader_election=False, prewarm=False))
    world.request(strategy="checkpoint-restart")
    await world.drive()
    assert await _checkpoint_done(world)
    stale = copy.deepcopy(world.record())
    assert stale["status"]["phase"] == Phase.CHECKPOINTING.value
    await world.drive()
    assert world.phase() == Phase.STOPPING_SOURCE.value
    world.state.migrations.upsert(stale)  # the cache is behind the API server
    with pytest.raises(KubeApiError) as refused:
        await world.controller.reconcile(KEY)  # retried by the worker once the cache has caught up
    assert refused.value.conflict
    assert not world.controller.checkpoints.running(KEY)
    assert world.api.objects[(POD_MIGRATIONS.plural, NAMESPACE, "m1")]["status"]["phase"] == "StoppingSource"


async def test_a_lost_target_ends_the_rollback_when_the_source_was_only_written_ahead_as_stopped() -> None:
    """`sourceStopped` is recorded before the eviction: a pre-warmed target lost before its gate ran rolls back
    without the source ever being touched, and the rollback must end, not wait for the lost node."""
    world = World()
    world.request(strategy="checkpoint-restart")
    await world.drive()
    assert await _checkpoint_done(world)
    await world.drive()
    assert world.phase() == Phase.STOPPING_SOURCE.value
    assert world.record()["status"]["sourceStopped"] is True, "written ahead"
    _node_lost(world, TARGET)
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "target_node_lost"
    _assert_source_untouched(world)
    assert not [call for call in world.api.calls if call.startswith("evict")]


async def test_a_move_queued_past_its_deadline_fails_without_touching_anything() -> None:
    world = World(settings=Settings(leader_election=False, max_active_migrations=1))
    world.api.put(PODS, running_pod("other", SOURCE))
    world.request(migration_id="m1")
    await world.drive(f"{NAMESPACE}/m1")
    world.request(migration_id="m2", pod="other")
    await world.controller.reconcile(f"{NAMESPACE}/m2")
    assert world.phase(f"{NAMESPACE}/m2") == Phase.PENDING.value
    long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = world.api.objects[(POD_MIGRATIONS.plural, NAMESPACE, "m2")]
    record["metadata"]["creationTimestamp"] = long_ago
    world.api.put(POD_MIGRATIONS, record)
    await world.controller.reconcile(f"{NAMESPACE}/m2")
    assert world.phase(f"{NAMESPACE}/m2") == Phase.FAILED.value
    error = world.record(f"{NAMESPACE}/m2")["status"]["error"]
    assert error["reason"] == "queue_timeout"
    assert "queued: 1 migrations in flight" in error["message"]
