"""The annotation trigger fails closed: it acts only while the admission policy of k8s/admission (which decides who
may write the annotations) is installed, unless the operator trusts annotations explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_storage_orchestrator.cli.serve import settings_from
from ai_storage_orchestrator.controller.triggers import ADMISSION_POLICY_MISSING, AnnotationTrigger
from ai_storage_orchestrator.conventions import (
    MIGRATE_TO_ANNOTATION,
    MIGRATION_STATUS_ANNOTATION,
    NAMESPACE_OPT_IN_LABEL,
    NAMESPACE_OPT_IN_VALUE,
)
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import (
    NAMESPACES,
    PODS,
    VALIDATING_ADMISSION_POLICIES,
    VALIDATING_ADMISSION_POLICY_BINDINGS,
    Resource,
)
from ai_storage_orchestrator.models import MigrationRequest
from ai_storage_orchestrator.settings import ADMISSION_POLICY_BINDING, Settings
from tests.unit.cli.conftest import parse
from tests.unit.controller.fakes import NAMESPACE, POD, TARGET, World, running_pod

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
BINDING = "the-binding"
POLICY = "the-policy"


class FakeService:
    def __init__(self) -> None:
        self.submitted: list[MigrationRequest] = []

    async def submit(self, request: MigrationRequest) -> dict[str, Any]:
        self.submitted.append(request)
        return {"migration_id": "new1", "status": "pending"}


def _cluster_object(world: World, resource: Resource, name: str, **fields: Any) -> None:
    world.api.objects[(resource.plural, "", name)] = {"kind": resource.kind, "metadata": {"name": name}, **fields}


def _installed(world: World, *, actions: list[str] | None = None, policy: bool = True) -> None:
    spec = {"policyName": POLICY, "validationActions": ["Deny"] if actions is None else actions}
    _cluster_object(world, VALIDATING_ADMISSION_POLICY_BINDINGS, BINDING, spec=spec)
    if policy:
        _cluster_object(world, VALIDATING_ADMISSION_POLICIES, POLICY, spec={})


def _trigger(world: World, *, binding: str | None = BINDING) -> tuple[AnnotationTrigger, FakeService]:
    labels = {NAMESPACE_OPT_IN_LABEL: NAMESPACE_OPT_IN_VALUE}
    _cluster_object(world, NAMESPACES, NAMESPACE, metadata={"name": NAMESPACE, "labels": labels})
    service = FakeService()
    trigger = AnnotationTrigger(
        api=world.api,  # type: ignore[arg-type]
        state=world.state,
        service=service,  # type: ignore[arg-type]
        recorder=world.events,  # type: ignore[arg-type]
        admission_binding=binding,
    )
    pod = running_pod(POD, "node-a")
    pod["metadata"]["annotations"] = {MIGRATE_TO_ANNOTATION: TARGET}
    pod["metadata"]["uid"] = world.source["metadata"]["uid"]
    world.api.put(PODS, pod)
    return trigger, service


def _status(world: World) -> str:
    return str(world.api.pod(POD)["metadata"]["annotations"].get(MIGRATION_STATUS_ANNOTATION, ""))  # type: ignore[index]


def _refusals(world: World) -> list[str]:
    return [m for r, m in world.events.recorded if r == "MigrationRefused"]


async def test_without_the_binding_a_trigger_is_refused_once() -> None:
    world = World()
    trigger, service = _trigger(world)
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert service.submitted == []
    status = _status(world)
    assert status.startswith(f"Refused ({TARGET}): {ADMISSION_POLICY_MISSING}: ValidatingAdmissionPolicyBinding")
    assert f"{BINDING} is not installed" in status
    assert "--trust-annotations" in status
    assert [m.split(":")[0] for m in _refusals(world)] == [ADMISSION_POLICY_MISSING]
    # Once: the pod remembers the refusal; the next reconcile reads nothing and refuses nothing.
    calls = list(world.api.calls)
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert (world.api.calls, len(_refusals(world)), service.submitted) == (calls, 1, [])


async def test_with_the_binding_and_its_policy_the_trigger_acts() -> None:
    world = World()
    trigger, service = _trigger(world)
    _installed(world)
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert [r.target_node for r in service.submitted] == [TARGET]
    assert _refusals(world) == []
    reads = [c for c in world.api.calls if c.startswith("get ValidatingAdmission")]
    assert reads == [f"get ValidatingAdmissionPolicyBinding {BINDING}", f"get ValidatingAdmissionPolicy {POLICY}"]


@pytest.mark.parametrize(
    ("actions", "policy", "why"),
    [
        (["Warn", "Audit"], True, f"Binding {BINDING} does not deny"),
        ([], True, f"Binding {BINDING} does not deny"),
        (["Deny"], False, f"ValidatingAdmissionPolicy {POLICY} is not installed (named by binding {BINDING})"),
    ],
)
async def test_a_binding_that_does_not_enforce_is_refused(actions: list[str], policy: bool, why: str) -> None:
    world = World()
    trigger, service = _trigger(world)
    _installed(world, actions=actions, policy=policy)
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert service.submitted == []
    assert _status(world).startswith(f"Refused ({TARGET}): {ADMISSION_POLICY_MISSING}: ")
    assert why in _status(world)


async def test_trusted_annotations_skip_the_check() -> None:
    world = World()
    trigger, service = _trigger(world, binding=None)
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert len(service.submitted) == 1
    assert not [c for c in world.api.calls if "ValidatingAdmission" in c]


async def test_a_binding_the_orchestrator_may_not_read_is_refused_with_the_fix() -> None:
    world = World()
    trigger, service = _trigger(world)

    async def forbidden(resource: Resource, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        raise KubeApiError(403, "Forbidden", f'{resource.plural} "{name}" is forbidden')

    world.api.get = forbidden  # type: ignore[method-assign]
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert service.submitted == []
    assert _status(world).startswith(f"Refused ({TARGET}): {ADMISSION_POLICY_MISSING}: the orchestrator may not read")
    assert f"validatingadmissionpolicybindings with resourceNames [{BINDING}]" in _status(world)


async def test_an_unavailable_api_server_is_retried_not_refused() -> None:
    world = World()
    trigger, service = _trigger(world)

    async def unavailable(resource: Resource, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        raise KubeApiError(503, "ServiceUnavailable", "etcd is down")

    world.api.get = unavailable  # type: ignore[method-assign]
    with pytest.raises(KubeApiError):
        await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert (service.submitted, _status(world)) == ([], "")


def test_the_default_looks_for_the_shipped_binding_and_the_flag_opts_out() -> None:
    documents = [d for d in yaml.safe_load_all((ROOT / "k8s/admission/annotation-policy.yaml").read_text()) if d]
    [binding] = [d for d in documents if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert Settings().admission_policy_binding == ADMISSION_POLICY_BINDING == binding["metadata"]["name"]
    assert Settings().trust_annotations is False
    assert settings_from(parse(["serve"])).trust_annotations is False
    assert settings_from(parse(["serve", "--trust-annotations"])).trust_annotations is True
