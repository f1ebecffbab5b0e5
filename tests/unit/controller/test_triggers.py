"""The annotation trigger: what a pod's annotations may and may not make the orchestrator do."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.triggers import AnnotationTrigger, answers
from ai_storage_orchestrator.conventions import (
    MIGRATE_TO_ANNOTATION,
    MIGRATION_ID_ANNOTATION,
    MIGRATION_STATUS_ANNOTATION,
    MIGRATION_TIMEOUT_ANNOTATION,
    NAMESPACE_OPT_IN_LABEL,
    NAMESPACE_OPT_IN_VALUE,
)
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import NAMESPACES, PODS
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


def _namespace(world: World, **labels: str) -> None:
    """The pods' namespace, as the API server holds it (cluster-scoped: no namespace in the key)."""
    world.api.objects[(NAMESPACES.plural, "", NAMESPACE)] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"kubernetes.io/metadata.name": NAMESPACE, **labels}},
    }


def _trigger(world: World, *, opted_in: bool = True) -> tuple[AnnotationTrigger, FakeService]:
    if opted_in:
        _namespace(world, **{NAMESPACE_OPT_IN_LABEL: NAMESPACE_OPT_IN_VALUE})
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
    other: dict[str, Any] = {
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


def _status(world: World) -> str:
    return str(world.api.pod(POD)["metadata"]["annotations"].get(MIGRATION_STATUS_ANNOTATION, ""))  # type: ignore[index]


def _namespace_reads(world: World) -> int:
    return sum(call == f"get Namespace {NAMESPACE}" for call in world.api.calls)


@pytest.mark.parametrize("labels", [{}, {NAMESPACE_OPT_IN_LABEL: "disabled"}, {NAMESPACE_OPT_IN_LABEL: "Enabled"}])
async def test_a_namespace_that_did_not_opt_in_is_refused_once(labels: dict[str, str]) -> None:
    world = World()
    trigger, service = _trigger(world, opted_in=False)
    _namespace(world, **labels)
    _annotate(world, **{MIGRATE_TO_ANNOTATION: TARGET})
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert service.submitted == []
    assert _status(world).startswith(f"Refused ({TARGET}): namespace_not_opted_in: namespace {NAMESPACE} has not")
    assert NAMESPACE_OPT_IN_LABEL in _status(world)
    assert [m for r, m in world.events.recorded if r == "MigrationRefused" and m.startswith("namespace_not_opted_in")]
    # Once: the pod remembers the refusal; the next reconcile neither reads the namespace nor refuses again.
    reads, events = _namespace_reads(world), len(world.events.recorded)
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert (_namespace_reads(world), len(world.events.recorded), service.submitted) == (reads, events, [])


async def test_opting_in_then_asking_again_starts_the_migration() -> None:
    world = World()
    trigger, service = _trigger(world, opted_in=False)
    _namespace(world)
    _annotate(world, **{MIGRATE_TO_ANNOTATION: TARGET})
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert service.submitted == []
    _namespace(world, **{NAMESPACE_OPT_IN_LABEL: NAMESPACE_OPT_IN_VALUE})
    _annotate(world, **{MIGRATE_TO_ANNOTATION: "node-c"})  # a changed annotation asks again
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert [r.target_node for r in service.submitted] == ["node-c"]
    assert [r.triggered_by for r in service.submitted] == ["annotation"]
    assert _status(world) == "Pending"


async def test_an_opted_in_namespace_is_read_with_one_get_of_that_namespace() -> None:
    world = World()
    trigger, service = _trigger(world)
    _annotate(world, **{MIGRATE_TO_ANNOTATION: TARGET})
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert len(service.submitted) == 1
    assert [c for c in world.api.calls if "Namespace" in c] == [f"get Namespace {NAMESPACE}"]


async def test_a_namespace_the_orchestrator_may_not_read_is_refused_with_the_fix() -> None:
    world = World()
    trigger, service = _trigger(world, opted_in=False)

    async def forbidden(resource: Any, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        raise KubeApiError(403, "Forbidden", f'namespaces "{name}" is forbidden')

    world.api.get = forbidden  # type: ignore[method-assign]
    _annotate(world, **{MIGRATE_TO_ANNOTATION: TARGET})
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert service.submitted == []
    assert _status(world).startswith(f"Refused ({TARGET}): namespace_not_opted_in: the orchestrator may not read")
    assert "get on namespaces" in _status(world)


async def test_an_unavailable_api_server_is_retried_not_refused() -> None:
    world = World()
    trigger, service = _trigger(world, opted_in=False)

    async def unavailable(resource: Any, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        raise KubeApiError(503, "ServiceUnavailable", "etcd is down")

    world.api.get = unavailable  # type: ignore[method-assign]
    _annotate(world, **{MIGRATE_TO_ANNOTATION: TARGET})
    with pytest.raises(KubeApiError):
        await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert service.submitted == []
    assert _status(world) == ""


def _recorded(world: World, name: str, **spec: Any) -> None:
    """A PodMigration of this pod created by the trigger (as the service would have recorded it)."""
    migration = {
        "apiVersion": "ai-storage.io/v1alpha1",
        "kind": "PodMigration",
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": "5"},
        "spec": {"podName": POD, "sourceNode": "node-a", "triggeredBy": "annotation", **spec},
        "status": {"phase": "Pending"},
    }
    world.state.migrations.apply("ADDED", migration)


async def test_migrate_to_auto_asks_the_service_to_choose_once() -> None:
    world = World()
    trigger, service = _trigger(world)
    _annotate(world, **{MIGRATE_TO_ANNOTATION: "auto"})
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert [(r.target_node, r.chooses_target) for r in service.submitted] == [("auto", True)]
    # The migration it started names the chosen node and how it was chosen: `auto` is answered, never asked again.
    _recorded(world, "new1", targetNode="node-c", targetChoice={"considered": 3})
    _annotate(world, **{MIGRATE_TO_ANNOTATION: "auto", MIGRATION_ID_ANNOTATION: "new1"})
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert len(service.submitted) == 1


def test_answers_tells_a_chosen_node_from_a_named_one() -> None:
    chosen = {"spec": {"targetNode": "node-c", "targetChoice": {"considered": 3}}}
    named = {"spec": {"targetNode": "node-c"}}
    assert answers(chosen, "auto")
    assert answers(chosen, "node-c")
    assert not answers(named, "auto")
    assert answers(named, "node-c")
    assert not answers(named, "node-b")
