"""An owned pod's move step by step against the in-memory API: the source is evicted, the owner's replacement is
captured by the webhook's decision (admission/owned.py), its gate opens only once the source's containers stopped,
and on every failure or cancel the orchestrator never creates a pod of its own (the owner does); a surge puts the
owner's count back."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from ai_storage_orchestrator.admission.owned import OwnerCapture
from ai_storage_orchestrator.controller.planning.gate import gated
from ai_storage_orchestrator.controller.planning.marking import mark_containers
from ai_storage_orchestrator.controller.records import now_iso
from ai_storage_orchestrator.controller.surge import DELETION_COST_ANNOTATION, LOWEST_DELETION_COST
from ai_storage_orchestrator.conventions import HANDOFF_ANNOTATION, MIGRATION_ID_LABEL
from ai_storage_orchestrator.kube.resources import DEPLOYMENTS, JOBS, POD_MIGRATIONS, PODS, REPLICA_SETS
from ai_storage_orchestrator.models import Phase
from ai_storage_orchestrator.settings import Settings, WebhookMode
from tests.unit.controller.fakes import NAMESPACE, POD, SOURCE, TARGET, World, merge, running_pod

pytestmark = pytest.mark.unit
JSON = dict[str, Any]
JOB = {"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "job-uid", "controller": True}
RS = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs-uid", "controller": True}


def _world(owner: JSON) -> World:
    world = World(settings=Settings(leader_election=False, webhooks=WebhookMode.SELF))
    source = copy.deepcopy(world.source)
    source["metadata"]["ownerReferences"] = [owner]
    del world.api.objects[(PODS.plural, NAMESPACE, POD)]
    world.source = world.api.put(PODS, source)
    return world


def _patched(pod: JSON, patch: list[JSON]) -> JSON:
    """The three operations the capture answers with (admission/capture.py)."""
    result = copy.deepcopy(pod)
    for op in patch:
        head, _, tail = op["path"].lstrip("/").partition("/")
        if tail:
            result[head][tail] = op["value"]
        else:
            result[head] = op["value"]
    return result


def _owner_creates(world: World, name: str, owner: JSON) -> JSON:
    """The owner's controller creates a replacement; the API server sends it through the webhook first."""
    pod = running_pod(name, SOURCE)
    del pod["status"]
    pod["metadata"]["ownerReferences"] = [owner]
    return world.api.put(PODS, _patched(pod, OwnerCapture(world.state).mutate_pod_create(pod, NAMESPACE)))


def _created_by_us(world: World) -> list[str]:
    return [call for call in world.api.calls if call.startswith("create Pod")]


async def _checkpointed(world: World) -> None:
    await world.drive()
    for task in list(world.controller.checkpoints._jobs.values()):
        await task
    await world.drive()


async def _evicted(world: World) -> None:
    world.request(strategy="auto", timeoutSeconds=600)
    await _checkpointed(world)
    assert world.phase() == Phase.STOPPING_SOURCE.value
    assert f"evict Pod {POD}" in world.api.calls
    assert world.record()["status"]["sourceStopped"] is True


async def test_a_job_pod_moves_through_its_owners_replacement_gated_until_the_source_stopped() -> None:
    world = _world(JOB)
    await _evicted(world)
    replacement = _owner_creates(world, "train-x1", JOB)
    assert replacement["spec"]["nodeName"] == TARGET
    assert gated(replacement), "the source's containers may still run"

    await world.drive()
    assert world.phase() == Phase.STOPPING_SOURCE.value, "the gate waits for the source"
    assert HANDOFF_ANNOTATION not in (world.api.pod("train-x1") or {})["metadata"].get("annotations", {})
    world.api.stop_containers(POD)
    await world.drive()
    assert world.phase() == Phase.WAITING_FOR_TARGET.value
    token = world.record()["status"]["owner"]["token"]
    assert (world.api.pod("train-x1") or {})["metadata"]["annotations"][HANDOFF_ANNOTATION] == token
    world.api.make_ready("train-x1")
    await world.drive()
    assert world.phase() == Phase.COMPLETED.value
    assert world.record()["status"]["targetPod"] == "train-x1"
    assert _created_by_us(world) == [], "the owner creates the pod, never the orchestrator"


async def test_cancel_before_the_eviction_changes_nothing() -> None:
    world = _world(JOB)
    world.request(strategy="auto")
    await world.controller.reconcile(f"{NAMESPACE}/m1")  # Pending -> Validating
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"spec": {"cancelRequested": True}}, namespace=NAMESPACE)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert not [c for c in world.api.calls if c.startswith("evict")]


async def test_cancel_after_the_eviction_leaves_the_pod_to_its_owner() -> None:
    world = _world(JOB)
    await _evicted(world)
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"spec": {"cancelRequested": True}}, namespace=NAMESPACE)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert "Job 'train' keeps or recreates its pod" in world.record()["status"]["message"]
    assert _created_by_us(world) == []
    assert _owner_creates(world, "train-x2", JOB)["spec"]["nodeName"] == SOURCE, "no longer captured"


async def _cancelled_with_a_held_capture() -> World:
    """A Job's move cancelled while its captured pod is held by its gate and the source still runs."""
    world = _world(JOB)
    await _evicted(world)
    _owner_creates(world, "train-x1", JOB)
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"spec": {"cancelRequested": True}}, namespace=NAMESPACE)
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value, "the source still runs: the captured pod stays held"
    return world


async def test_a_cancel_with_a_gated_capture_opens_the_gate_once_the_source_stopped() -> None:
    world = await _cancelled_with_a_held_capture()
    world.api.stop_containers(POD)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    captured = world.api.pod("train-x1")
    assert captured is not None, "the only copy now: kept"
    assert HANDOFF_ANNOTATION in captured["metadata"]["annotations"]


async def test_a_captured_pod_that_cannot_start_is_removed_for_the_owner_to_recreate() -> None:
    world = _world(JOB)
    await _evicted(world)
    world.api.finish_termination(POD)
    _owner_creates(world, "train-x1", JOB)
    await world.drive()
    assert world.phase() == Phase.WAITING_FOR_TARGET.value
    broken = world.api.pod("train-x1")
    assert broken is not None
    waiting = {"name": "trainer", "state": {"waiting": {"reason": "ErrImagePull", "message": "no such image"}}}
    world.api.put(PODS, merge(broken, {"status": {"phase": "Pending", "containerStatuses": [waiting]}}))
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "target_container_error"
    assert (world.api.pod("train-x1") or {})["metadata"].get("deletionTimestamp")
    assert _created_by_us(world) == []


async def test_no_replacement_within_the_timeout_fails_without_a_pod_of_ours() -> None:
    world = _world(JOB)
    world.request(strategy="auto", timeoutSeconds=1)
    await _checkpointed(world)
    world.api.finish_termination(POD)
    record = world.record()
    record["status"]["startedAt"] = "2026-01-01T00:00:00Z"  # long ago: the timeout has passed
    world.state.migrations.apply("MODIFIED", record)
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "owner_did_not_recreate"
    assert _created_by_us(world) == []


def _deployment_world() -> World:
    world = _world(RS)
    stateless = world.source
    world.api.put(
        REPLICA_SETS,
        {
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-1",
                "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}],
            },
            "spec": {"replicas": 2},
        },
    )
    world.api.put(DEPLOYMENTS, {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}})
    assert not stateless["spec"].get("volumes"), "nothing persistent: make-before-break"
    return world


def _replicas(world: World) -> int:
    return int(world.api.objects[(DEPLOYMENTS.plural, NAMESPACE, "web")]["spec"]["replicas"])


async def test_a_deployment_pod_surges_and_the_count_comes_back_with_the_source_first_to_go() -> None:
    world = _deployment_world()
    world.request(strategy="auto")
    await world.drive()
    assert world.phase() == Phase.WAITING_FOR_TARGET.value
    assert _replicas(world) == 3
    assert world.record()["status"]["owner"]["scaled"] == {"kind": "Deployment", "name": "web", "from": 2}
    new = _owner_creates(world, "web-1-new", RS)
    assert not gated(new), "both run a while, by design"
    world.api.make_ready("web-1-new")
    await world.drive()
    assert world.phase() == Phase.REMOVING_SOURCE.value
    assert _replicas(world) == 2
    source = world.api.pod(POD) or {}
    assert source["metadata"]["annotations"][DELETION_COST_ANNOTATION] == LOWEST_DELETION_COST
    assert not [c for c in world.api.calls if c.startswith(("evict", "delete"))], "the ReplicaSet removes it"
    await world.api.delete(PODS, POD, namespace=NAMESPACE)  # what the ReplicaSet does
    world.api.finish_termination(POD)
    await world.drive()
    assert world.phase() == Phase.COMPLETED.value


async def test_a_cancelled_surge_puts_the_count_back_with_the_new_pod_first_to_go() -> None:
    world = _deployment_world()
    world.request(strategy="auto")
    await world.drive()
    _owner_creates(world, "web-1-new", RS)
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"spec": {"cancelRequested": True}}, namespace=NAMESPACE)
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert _replicas(world) == 2
    new = world.api.pod("web-1-new") or {}
    assert new["metadata"]["annotations"][DELETION_COST_ANNOTATION] == LOWEST_DELETION_COST
    source = world.api.pod(POD) or {}
    assert DELETION_COST_ANNOTATION not in source["metadata"].get("annotations", {})
    assert _created_by_us(world) == []


async def test_a_replicaset_without_a_deployment_is_scaled_itself() -> None:
    world = _world(RS)
    world.api.put(REPLICA_SETS, {"kind": "ReplicaSet", "metadata": {"name": "web-1"}, "spec": {"replicas": 1}})
    world.request(strategy="auto")
    await world.drive()
    assert world.record()["status"]["owner"]["scaled"] == {"kind": "ReplicaSet", "name": "web-1", "from": 1}
    assert world.api.objects[(REPLICA_SETS.plural, NAMESPACE, "web-1")]["spec"]["replicas"] == 2
    assert "patch ReplicaSet web-1/scale" in world.api.calls


async def test_an_owner_pod_the_webhook_did_not_capture_fails_the_move_at_once() -> None:
    world = _world(JOB)
    await _evicted(world)
    world.api.finish_termination(POD)
    uncaptured = running_pod("train-x9", SOURCE)
    uncaptured["metadata"]["ownerReferences"] = [JOB]
    uncaptured["metadata"]["creationTimestamp"] = now_iso()
    world.api.put(PODS, uncaptured)  # created while the webhook was down: failurePolicy Ignore
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "replacement_not_captured"
    assert "train-x9" in world.record()["status"]["message"]
    assert world.api.pod("train-x9") is not None, "the owner's pod is left alone"
    assert _created_by_us(world) == []


async def test_pods_of_the_owner_from_before_the_move_are_not_mistaken_for_its_replacement() -> None:
    world = _world(JOB)
    older = running_pod("train-old", SOURCE)
    older["metadata"]["ownerReferences"] = [JOB]
    older["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    world.api.put(PODS, older)
    await _evicted(world)
    await world.drive()
    assert world.phase() == Phase.STOPPING_SOURCE.value, "still waiting for the owner's new pod"


async def test_another_moves_capture_of_the_same_owner_is_not_an_uncaptured_replacement() -> None:
    world = _world(JOB)
    await _evicted(world)
    other = running_pod("train-x8", TARGET, **{MIGRATION_ID_LABEL: "m0"})
    mark_containers(other["spec"]["containers"], "m0")
    other["metadata"]["ownerReferences"] = [JOB]
    other["metadata"]["creationTimestamp"] = now_iso()
    world.api.put(PODS, other)
    await world.drive()
    assert world.phase() == Phase.STOPPING_SOURCE.value


async def test_an_uncaptured_surge_pod_fails_the_move_and_goes_first_when_the_count_comes_back() -> None:
    world = _deployment_world()
    world.request(strategy="auto")
    await world.drive()
    assert _replicas(world) == 3
    uncaptured = running_pod("web-1-x", SOURCE)
    uncaptured["metadata"]["ownerReferences"] = [RS]
    uncaptured["metadata"]["creationTimestamp"] = now_iso()
    world.api.put(PODS, uncaptured)
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "replacement_not_captured"
    assert _replicas(world) == 2
    assert (world.api.pod("web-1-x") or {})["metadata"]["annotations"][DELETION_COST_ANNOTATION] == LOWEST_DELETION_COST


def _job(*, failed: int = 0, **spec: Any) -> JSON:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": NAMESPACE, "uid": "job-uid"},
        "spec": spec,
        "status": {"failed": failed},
    }


async def test_a_job_pod_whose_eviction_would_fail_its_job_is_not_moved() -> None:
    """The eviction counts as one failure: past the backoffLimit the Job fails and its pod never comes back."""
    world = _world(JOB)
    world.api.put(JOBS, _job(backoffLimit=1, failed=1))
    world.request(strategy="auto", timeoutSeconds=600)
    await world.drive()
    status = world.record()["status"]
    assert status["phase"] == Phase.FAILED.value
    assert status["error"]["reason"] == "job_would_fail"
    assert "has 1 of its backoffLimit 1" in status["error"]["message"]
    assert not any(call.startswith("evict ") for call in world.api.calls)


async def test_a_job_that_ignores_disruptions_lets_its_pod_move_whatever_its_backoff_limit() -> None:
    world = _world(JOB)
    ignore = {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    world.api.put(JOBS, _job(backoffLimit=0, podFailurePolicy={"rules": [ignore]}))
    await _evicted(world)


def _second_pod_of(world: World, owner: JSON, name: str) -> None:
    pod = running_pod(name, SOURCE)
    pod["metadata"]["ownerReferences"] = [owner]
    pod["spec"] = copy.deepcopy(world.source["spec"])
    world.api.put(PODS, pod)


async def test_two_pods_of_one_deployment_surge_one_after_the_other_and_the_count_ends_where_it_was() -> None:
    world = _deployment_world()
    _second_pod_of(world, RS, "web-1-b")
    world.request(strategy="auto")
    await world.drive()
    assert _replicas(world) == 3
    world.request(strategy="auto", migration_id="m2", pod="web-1-b")
    await world.drive(f"{NAMESPACE}/m2")
    assert world.phase(f"{NAMESPACE}/m2") == Phase.PENDING.value, "the count is m1's to put back first"
    message = world.record(f"{NAMESPACE}/m2")["status"]["message"]
    assert message.startswith("queued: ReplicaSet 'web-1' has a move in flight (m1)")
    assert _replicas(world) == 3
    _owner_creates(world, "web-1-new", RS)
    world.api.make_ready("web-1-new")
    await world.drive()
    await world.api.delete(PODS, POD, namespace=NAMESPACE)
    world.api.finish_termination(POD)
    await world.drive()
    assert world.phase() == Phase.COMPLETED.value
    assert _replicas(world) == 2
    await world.drive(f"{NAMESPACE}/m2")
    assert world.phase(f"{NAMESPACE}/m2") == Phase.WAITING_FOR_TARGET.value
    assert world.record(f"{NAMESPACE}/m2")["status"]["owner"]["scaled"]["from"] == 2
    assert _replicas(world) == 3


async def test_two_pods_of_one_job_move_one_at_a_time() -> None:
    world = _world(JOB)
    _second_pod_of(world, JOB, "train-b")
    await _evicted(world)
    world.request(strategy="auto", migration_id="m2", pod="train-b")
    await world.drive(f"{NAMESPACE}/m2")
    assert world.phase(f"{NAMESPACE}/m2") == Phase.PENDING.value
    assert "Job 'train' has a move in flight (m1)" in world.record(f"{NAMESPACE}/m2")["status"]["message"]
    assert "evict Pod train-b" not in world.api.calls


async def test_a_source_still_running_at_the_deadline_ends_the_move_and_leaves_the_capture_to_its_own_gate() -> None:
    """The source's node stopped answering after the eviction: the move does not wait for it forever."""
    world = _world(JOB)
    await _evicted(world)
    _owner_creates(world, "train-x1", JOB)
    await world.drive()
    assert world.phase() == Phase.STOPPING_SOURCE.value, "held while the source may still run"
    long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"status": {"startedAt": long_ago}}, namespace=NAMESPACE)
    await world.drive()
    assert world.phase() == Phase.FAILED.value
    assert world.record()["status"]["error"]["reason"] == "source_not_stopped"
    captured = world.api.pod("train-x1")
    assert captured is not None
    assert HANDOFF_ANNOTATION not in captured["metadata"]["annotations"], "never opened while the source may run"
    assert _created_by_us(world) == []


async def test_a_pod_merely_labelled_with_the_move_is_not_taken_as_its_capture() -> None:
    """Anyone who may patch pods can set the label: a pod so labelled must not become the move's target (it would
    end the move Completed with the checkpoint never restored, or be deleted by a rollback)."""
    world = _world(JOB)
    await _evicted(world)
    decoy = running_pod("decoy", TARGET, **{MIGRATION_ID_LABEL: "m1"})
    decoy["metadata"]["creationTimestamp"] = now_iso()
    world.api.put(PODS, decoy)
    world.api.make_ready("decoy")
    await world.drive()
    assert world.phase() == Phase.STOPPING_SOURCE.value
    assert world.record()["status"].get("targetPod") != "decoy"


async def test_a_rollback_does_not_wait_on_a_silent_source_once_the_captured_gate_opened_by_itself() -> None:
    """The captured pod's gate opens at its own deadline (grace + 60 s) when the source's node stops answering;
    from then on the rollback has nothing left to hold and must end, not wait for that node for ever."""
    world = await _cancelled_with_a_held_capture()
    world.api.run_gate("train-x1", {"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    await world.drive()
    assert world.phase() == Phase.ROLLING_BACK.value, "a gate that failed opened nothing: its restart waits again"
    assert HANDOFF_ANNOTATION not in (world.api.pod("train-x1") or {})["metadata"].get("annotations", {})
    world.api.run_gate("train-x1", {"terminated": {"exitCode": 0, "reason": "Completed"}})
    await world.drive()
    assert world.phase() == Phase.CANCELLED.value
    assert world.api.pod("train-x1") is not None, "the only copy that will run: kept"
