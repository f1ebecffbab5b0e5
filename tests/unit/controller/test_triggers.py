"""The annotation trigger: what a pod's annotations may and may not make the orchestrator do."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.triggers import AnnotationTrigger
from ai_storage_orchestrator.conventions import (
    MIGRATE_TO_ANNOTATION,
    MIGRATION_ID_ANNOTATION,
    MIGRATION_STATUS_ANNOTATION,
    MIGRATION_TIMEOUT_ANNOTATION,
)
from ai_storage_orchestrator.kube.resources import PODS
from ai_storage_orchestrator.models import MigrationRequest
from tests.unit.controller.fakes import NAMESPACE, POD, TARGET, World, running_pod

pytestmark = pytest.mark.unit


class FakeService:
    def __init__(self) -> None:
        self.submitted: list[MigrationRequest] = []
        self.cancelled: list[tuple[str, str | None]] = []

    async def submit(self, request: MigrationRequest) -> dict[str, Any]:
        self.submitted.append(request)
        return {"migration_id": "new1", "status": "pending"}

    async def cancel(self, migration_id: str, *, namespace: str | None = None) -> dict[str, Any]:
        self.cancelled.append((migration_id, namespace))
        return {}


def _trigger(world: World) -> tuple[AnnotationTrigger, FakeService]:
    service = FakeService()
    trigger = AnnotationTrigger(api=world.api, state=world.state, service=service, recorder=world.events)  # type: ignore[arg-type]
    return trigger, service


def _annotate(world: World, **annotations: str) -> None:
    pod = running_pod(POD, "node-a")
    pod["metadata"]["annotations"] = annotations
    pod["metadata"]["uid"] = world.source["metadata"]["uid"]
    world.api.put(PODS, pod)


@pytest.mark.parametrize("timeout", ["-5", "0", "86401", "soon"])
async def test_an_out_of_range_timeout_is_refused_once_not_retried(timeout: str) -> None:
    world = World()
    trigger, service = _trigger(world)
    _annotate(world, **{MIGRATE_TO_ANNOTATION: TARGET, MIGRATION_TIMEOUT_ANNOTATION: timeout})
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert service.submitted == []
    status = world.api.pod(POD)["metadata"]["annotations"][MIGRATION_STATUS_ANNOTATION]  # type: ignore[index]
    assert status.startswith(f"Refused ({TARGET}): invalid_annotation")


async def test_a_migration_id_annotation_never_reaches_another_namespace() -> None:
    world = World()
    trigger, service = _trigger(world)
    other = {
        "apiVersion": "ai-storage.io/v1alpha1",
        "kind": "PodMigration",
        "metadata": {"name": "victim", "namespace": "other-team"},
        "spec": {"podName": "their-pod", "sourceNode": "node-a", "targetNode": TARGET, "triggeredBy": "annotation"},
        "status": {"phase": "Pending"},
    }
    world.state.migrations.apply("ADDED", {**other, "metadata": {**other["metadata"], "resourceVersion": "5"}})
    # migrate-to removed while the pod names a migration: the trigger would cancel that one if it were this pod's.
    _annotate(world, **{MIGRATION_ID_ANNOTATION: "victim"})
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert service.cancelled == []
