"""The eviction review at work: the service reached once started, one migration per pod however many reviews race,
refusals of the orchestrator evicting, the namespace's opt-in read once in a while."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from ai_storage_orchestrator.admission.evicting import OPT_IN_SECONDS, EvictionReview, Migrations
from ai_storage_orchestrator.admission.owned import OwnerCapture
from ai_storage_orchestrator.controller.planning import MigrationPlan
from ai_storage_orchestrator.conventions import (
    MIGRATE_ON_EVICT_ANNOTATION,
    MIGRATION_STRATEGY_ANNOTATION,
    NAMESPACE_OPT_IN_LABEL,
)
from ai_storage_orchestrator.errors import Conflict, OrchestratorError, Unprocessable
from ai_storage_orchestrator.kube.resources import KubeApi, Resource
from ai_storage_orchestrator.models import AUTO_TARGET, MigrationRequest
from ai_storage_orchestrator.watchers.state import ClusterState

JSON = dict[str, Any]


def pod(name: str = "train", *, annotated: bool = True) -> JSON:
    annotations = {MIGRATE_ON_EVICT_ANNOTATION: "true"} if annotated else {}
    return {
        "metadata": {"name": name, "namespace": "ml", "uid": f"{name}-uid", "annotations": annotations},
        "spec": {"nodeName": "node-a", "containers": [{"name": "trainer"}]},
        "status": {"phase": "Running"},
    }


class Namespaces:
    """The API server's answer to GET namespace, counted."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.reads = 0

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON:
        self.reads += 1
        return {"metadata": {"name": name, "labels": self.labels}}


class Service:
    """MigrationService as the review uses it: submit records the migration in the cache, as the real one does."""

    def __init__(self, state: ClusterState, *, labels: dict[str, str] | None = None) -> None:
        self.state = state
        self.namespaces = Namespaces(labels or {})
        self.api = cast(KubeApi, self.namespaces)
        self.submitted: list[MigrationRequest] = []
        self.refusal: OrchestratorError | None = None

    def ready(self) -> tuple[bool, str]:
        return True, "caches synced"

    def plan(self, request: MigrationRequest, migration_id: str) -> MigrationPlan:
        raise AssertionError("not planned in these tests")

    async def submit(self, request: MigrationRequest, *, request_id: str | None = None) -> JSON:
        self.submitted.append(request)
        await asyncio.sleep(0)  # a real submit awaits the API server: let a racing review run
        if self.refusal is not None:
            raise self.refusal
        migration_id = f"mig-{len(self.submitted)}"
        self.state.migrations.write_through(
            {
                "metadata": {"name": migration_id, "namespace": request.pod_namespace, "resourceVersion": "2"},
                "spec": {"podName": request.pod_name, "targetNode": "node-b"},
            }
        )
        return {"migration_id": migration_id, "target_node": "node-b"}


def setup(*pods: JSON, labels: dict[str, str] | None = None) -> tuple[ClusterState, Service, EvictionReview]:
    state = ClusterState()
    state.pods.replace(list(pods), "1")
    state.migrations.replace([], "1")
    service = Service(state, labels=labels)
    now = [0.0]
    return state, service, EvictionReview(state, lambda: cast(Migrations, service), clock=lambda: now[0])


async def test_before_the_orchestrator_has_started_every_eviction_goes_ahead() -> None:
    state = ClusterState()
    state.pods.replace([pod()], "1")
    verdict = await OwnerCapture(state).review_eviction("ml", "train", dry_run=False)
    assert verdict.allowed


async def test_an_opted_in_pod_starts_one_migration_to_a_node_the_orchestrator_chooses() -> None:
    _, service, review = setup(pod())
    first, second = await asyncio.gather(
        review.review("ml", "train", dry_run=False), review.review("ml", "train", dry_run=False)
    )
    assert [r.target_node for r in service.submitted] == [AUTO_TARGET]
    assert service.submitted[0].triggered_by == "eviction"
    assert service.submitted[0].source_node == "node-a"
    assert not first.allowed
    assert first.code == 429
    assert "migration mig-1 (phase Pending) to node node-b" in first.message
    assert not second.allowed
    assert "being migrated by migration mig-1" in second.message


async def test_a_refused_start_falls_back_to_eviction() -> None:
    _, service, review = setup(pod())
    service.refusal = Unprocessable("no node fits", reason="no_target_node")
    assert (await review.review("ml", "train", dry_run=False)).allowed


async def test_a_migration_started_meanwhile_refuses_naming_it() -> None:
    state, service, review = setup(pod())
    state.migrations.write_through({"metadata": {"name": "other", "namespace": "ml"}, "spec": {"podName": "x"}})
    service.refusal = Conflict("already", reason="migration_in_progress", details={"migration_id": "other"})
    verdict = await review.review("ml", "train", dry_run=False)
    assert not verdict.allowed
    assert "being migrated by migration other" in verdict.message


async def test_invalid_migration_annotations_fall_back_to_eviction() -> None:
    subject = pod()
    subject["metadata"]["annotations"][MIGRATION_STRATEGY_ANNOTATION] = "teleport"
    _, service, review = setup(subject)
    assert (await review.review("ml", "train", dry_run=False)).allowed
    assert service.submitted == []


async def test_the_namespace_label_opts_in_and_is_read_once_in_a_while() -> None:
    _, service, review = setup(pod(annotated=False), pod("other", annotated=False), labels={})
    assert (await review.review("ml", "train", dry_run=False)).allowed
    assert (await review.review("ml", "other", dry_run=False)).allowed
    assert service.namespaces.reads == 1
    assert service.submitted == []

    _, service, review = setup(pod(annotated=False), labels={NAMESPACE_OPT_IN_LABEL: "enabled"})
    assert not (await review.review("ml", "train", dry_run=False)).allowed
    assert len(service.submitted) == 1


async def test_an_unknown_pod_reads_nothing() -> None:
    _, service, review = setup()
    assert (await review.review("ml", "ghost", dry_run=False)).allowed
    assert service.namespaces.reads == 0
    assert OPT_IN_SECONDS > 0


def _prewarming_move(phase: str) -> JSON:
    """A move of `train` that has recorded its source's removal ahead and pre-warms its target."""
    return {
        "metadata": {"name": "mig-1", "namespace": "ml", "resourceVersion": "3"},
        "spec": {"podName": "train", "targetNode": "node-b"},
        "status": {
            "phase": phase,
            "sourceStopped": True,
            "prewarm": {"token": "mig-1.abc"},
            "targetPod": "train-migrated-mig-1",
        },
    }


async def test_a_retry_waits_for_the_prewarmed_target_to_run_its_gate_then_goes_ahead() -> None:
    state, _, review = setup(pod())
    state.migrations.write_through(_prewarming_move("StoppingSource"))
    target: JSON = {
        "metadata": {"name": "train-migrated-mig-1", "namespace": "ml", "resourceVersion": "4"},
        "spec": {"nodeName": "node-b", "initContainers": [{"name": "ai-storage-gate"}], "containers": []},
        "status": {"initContainerStatuses": [{"name": "ai-storage-gate", "state": {"waiting": {}}}]},
    }
    state.pods.write_through(target)
    refused = await review.review("ml", "train", dry_run=False)
    assert not refused.allowed
    assert "once its new pod has proven it can start on node-b" in refused.message
    target["metadata"]["resourceVersion"] = "5"
    target["status"]["initContainerStatuses"][0]["state"] = {"running": {"startedAt": "2026-12-03T10:00:00Z"}}
    state.pods.write_through(target)
    assert (await review.review("ml", "train", dry_run=False)).allowed


async def test_a_move_that_rolls_back_no_longer_holds_a_drains_eviction() -> None:
    state, _, review = setup(pod())
    state.migrations.write_through(_prewarming_move("RollingBack"))
    assert (await review.review("ml", "train", dry_run=False)).allowed
