"""`ai-storage.io/migrate-to` on a pod starts a migration in a namespace that opted in (label
`ai-storage.io/migrations: enabled`) while the admission policy of k8s/admission is installed; a refused one leaves an
Event and a status annotation; removing the annotation before the migration starts cancels it; no trigger fires
twice. Without the policy, triggers are refused (admission_policy_missing) unless annotations are trusted.

The orchestrator of these tests runs with the shipped policy installed, renamed for the test and bound to its
namespace only (test_admission_policy.py's helper), and looks for that binding by its test name."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.controller.triggers import (
    ADMISSION_POLICY_MISSING,
    MIGRATE_TO,
    MIGRATION_ID,
    MIGRATION_STATUS,
)
from ai_storage_orchestrator.conventions import NAMESPACE_OPT_IN_LABEL, NAMESPACE_OPT_IN_VALUE
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import NAMESPACES, KubeApi
from ai_storage_orchestrator.models import Phase
from ai_storage_orchestrator.runtime import Orchestrator
from ai_storage_orchestrator.settings import Settings
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.impersonation import impersonating, poll_until, service_account_user
from tests.cluster.workloads import CERTIFICATION_POD, certification_pod, shared_volume
from tests.integration.test_admission_policy import _policy_objects

JSON = dict[str, Any]


def _settings(cluster: ClusterHandle, namespace: str, **overrides: Any) -> Settings:
    """As the session's `orchestrator` fixture runs it (its namespace, no leader election), looking for the test's
    binding of the admission policy."""
    _policy, binding = _policy_objects(namespace)
    settings = Settings(
        kubeconfig=str(cluster.kubeconfig),
        namespace=namespace,
        leader_election=False,
        identity=f"test-{namespace}",
        admission_policy_binding=binding["metadata"]["name"],
    )
    return dataclasses.replace(settings, **overrides)


@contextlib.asynccontextmanager
async def _running(settings: Settings) -> AsyncIterator[Orchestrator]:
    running = Orchestrator(settings)
    await running.start()
    try:
        await running.state.wait_for(lambda: running.state.synced, timeout=30)
        yield running
    finally:
        await running.stop()


@contextlib.asynccontextmanager
async def _admission_policy(api: client.ApiClient, namespace: str) -> AsyncIterator[None]:
    """The shipped policy and binding, named and bound for this test's namespace."""
    admission = client.AdmissionregistrationV1Api(api)
    policy, binding = _policy_objects(namespace)
    await admission.create_validating_admission_policy(cast(client.V1ValidatingAdmissionPolicy, policy))
    try:
        await admission.create_validating_admission_policy_binding(
            cast(client.V1ValidatingAdmissionPolicyBinding, binding)
        )
        try:
            yield
        finally:
            await admission.delete_validating_admission_policy_binding(binding["metadata"]["name"])
    finally:
        await admission.delete_validating_admission_policy(policy["metadata"]["name"])


@pytest.fixture
async def orchestrator(
    api: client.ApiClient, cluster: ClusterHandle, namespace: str, crd_installed: None
) -> AsyncIterator[Orchestrator]:
    """The session fixture's orchestrator, on a cluster where the admission policy is installed."""
    async with _admission_policy(api, namespace), _running(_settings(cluster, namespace)) as running:
        yield running


def _annotations(pod: JSON | None) -> dict[str, str]:
    return dict(((pod or {}).get("metadata") or {}).get("annotations") or {})


async def _opt_in(core: client.CoreV1Api, namespace: str, value: str | None = NAMESPACE_OPT_IN_VALUE) -> None:
    """Label the namespace so that annotations may trigger migrations in it (None: remove the label)."""
    await core.patch_namespace(namespace, {"metadata": {"labels": {NAMESPACE_OPT_IN_LABEL: value}}})


async def test_annotation_starts_a_migration_once(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _opt_in(core, namespace)
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, certification_pod(node=source, complete_after="0s")))

    def completed_data_processor() -> bool:
        statuses = ((orchestrator.state.pod(namespace, CERTIFICATION_POD) or {}).get("status") or {}).get(
            "containerStatuses"
        ) or []
        return any(s["name"] == "data-processor" and "terminated" in s["state"] for s in statuses)

    await orchestrator.state.wait_for(completed_data_processor, timeout=30)
    patch = {"metadata": {"annotations": {MIGRATE_TO: target, "ai-storage.io/preserve-pv": "true"}}}
    await core.patch_namespaced_pod(CERTIFICATION_POD, namespace, patch)

    def finished() -> JSON | None:
        found = orchestrator.state.migrations_of_pod(namespace, CERTIFICATION_POD)
        done = [m for m in found if (m.get("status") or {}).get("phase") == Phase.COMPLETED.value]
        return done[0] if done else None

    migration = await orchestrator.state.wait_for(finished, timeout=60)
    assert migration["spec"]["triggeredBy"] == "annotation"
    assert migration["spec"]["preservePV"] is True
    assert len(orchestrator.state.migrations_of_pod(namespace, CERTIFICATION_POD)) == 1, "fired exactly once"
    pods = (await core.list_namespaced_pod(namespace)).items
    assert [p.metadata.name for p in pods] == [migration["status"]["targetPod"]]
    assert MIGRATE_TO not in (pods[0].metadata.annotations or {}), "the moved pod must not trigger again"


async def test_migrate_to_auto_moves_the_pod_to_a_chosen_node_once(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator
) -> None:
    """`ai-storage.io/migrate-to: auto`: the orchestrator chooses the node, records why, and the pod moves there."""
    source = cluster.node_names[0]
    await _opt_in(core, namespace)
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))
    pod = certification_pod(node=source, complete_after="0s")
    term = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": cluster.node_names}]}
    pod["spec"]["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    }
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
    patch = {"metadata": {"annotations": {MIGRATE_TO: "auto", "ai-storage.io/preserve-pv": "true"}}}
    await core.patch_namespaced_pod(CERTIFICATION_POD, namespace, patch)

    def finished() -> JSON | None:
        found = orchestrator.state.migrations_of_pod(namespace, CERTIFICATION_POD)
        done = [m for m in found if Phase(m.get("status", {}).get("phase", "Pending")).is_terminal]
        return done[0] if done else None

    migration = await orchestrator.state.wait_for(finished, timeout=60)
    assert migration["status"]["phase"] == Phase.COMPLETED.value, migration["status"]
    spec = migration["spec"]
    assert spec["triggeredBy"] == "annotation"
    chosen = spec["targetChoice"]["chosen"]["node"]
    assert spec["targetNode"] == chosen
    assert chosen in cluster.node_names
    assert chosen != source
    assert {r["node"]: r["reason"] for r in spec["targetChoice"]["refused"]}[source] == "source_equals_target"
    assert len(orchestrator.state.migrations_of_pod(namespace, CERTIFICATION_POD)) == 1, "fired exactly once"
    pods = (await core.list_namespaced_pod(namespace)).items
    assert [(p.metadata.name, p.spec.node_name) for p in pods] == [(migration["status"]["targetPod"], chosen)]
    assert MIGRATE_TO not in (pods[0].metadata.annotations or {}), "the moved pod must not trigger again"


async def test_refused_annotation_reports_event_and_status_and_cancel_by_removal(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator
) -> None:
    source = cluster.node_names[0]
    await _opt_in(core, namespace)
    pod = {"metadata": {"name": "lonely"}, "spec": {"nodeName": source, "containers": [{"name": "c", "image": "x"}]}}
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
    await core.patch_namespaced_pod("lonely", namespace, {"metadata": {"annotations": {MIGRATE_TO: "no-such-node"}}})

    def refused() -> str | None:
        status = _annotations(orchestrator.state.pod(namespace, "lonely")).get(MIGRATION_STATUS, "")
        return status if status.startswith("Refused") else None

    status = await orchestrator.state.wait_for(refused, timeout=30)
    assert "target_node_not_found" in status
    assert orchestrator.recorder is not None
    await orchestrator.recorder.flush()
    events = (await core.list_namespaced_event(namespace, field_selector="involvedObject.name=lonely")).items
    assert any(e.reason == "MigrationRefused" and e.type == "Warning" for e in events)
    assert orchestrator.state.migrations_of_pod(namespace, "lonely") == []

    # Cancel by removal: a migration queued behind a full per-node cap has not touched any pod yet.
    assert orchestrator.service is not None
    await core.patch_namespaced_pod(
        "lonely", namespace, {"metadata": {"annotations": {MIGRATE_TO: cluster.node_names[1]}}}
    )

    def started() -> str | None:
        return _annotations(orchestrator.state.pod(namespace, "lonely")).get(MIGRATION_ID)

    migration_id = await orchestrator.state.wait_for(started, timeout=30)
    migration = orchestrator.state.migration(namespace, migration_id)
    assert migration is not None
    assert migration["spec"]["targetNode"] == cluster.node_names[1]


async def test_a_namespace_that_did_not_opt_in_is_refused_until_it_does(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _opt_in(core, namespace, "disabled")
    pod = {"metadata": {"name": "guarded"}, "spec": {"nodeName": source, "containers": [{"name": "c", "image": "x"}]}}
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
    await core.patch_namespaced_pod("guarded", namespace, {"metadata": {"annotations": {MIGRATE_TO: target}}})

    def refused() -> str | None:
        status = _annotations(orchestrator.state.pod(namespace, "guarded")).get(MIGRATION_STATUS, "")
        return status if status.startswith("Refused") else None

    status = await orchestrator.state.wait_for(refused, timeout=30)
    assert status.startswith(f"Refused ({target}): namespace_not_opted_in: namespace {namespace} has not opted in")
    assert f"{NAMESPACE_OPT_IN_LABEL}={NAMESPACE_OPT_IN_VALUE}" in status
    assert orchestrator.recorder is not None
    await orchestrator.recorder.flush()
    events = (await core.list_namespaced_event(namespace, field_selector="involvedObject.name=guarded")).items
    assert [e.message for e in events if e.reason == "MigrationRefused"] == [status.split(": ", 1)[1]], "once"
    assert orchestrator.state.migrations_of_pod(namespace, "guarded") == []

    # Opted in, the same request asked again (a changed annotation asks again) starts a migration.
    await _opt_in(core, namespace)
    await core.patch_namespaced_pod(
        "guarded", namespace, {"metadata": {"annotations": {MIGRATE_TO: cluster.node_names[2]}}}
    )

    def started() -> str | None:
        return _annotations(orchestrator.state.pod(namespace, "guarded")).get(MIGRATION_ID)

    migration_id = await orchestrator.state.wait_for(started, timeout=30)
    migration = orchestrator.state.migration(namespace, migration_id)
    assert migration is not None
    assert migration["spec"]["triggeredBy"] == "annotation"


async def test_single_namespace_mode_reads_the_label_with_get_on_its_own_namespace_only(
    api: client.ApiClient, cluster: ClusterHandle, core: client.CoreV1Api, namespace: str
) -> None:
    """An orchestrator limited to one namespace (--namespace, Roles instead of the ClusterRole) may be granted
    `get namespaces` by a Role in that namespace: enough to read its own namespace's label, nothing else."""
    rbac = client.RbacAuthorizationV1Api(api)
    await core.create_namespaced_service_account(
        namespace, cast(client.V1ServiceAccount, {"metadata": {"name": "orchestrator"}})
    )
    rule = {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}
    await rbac.create_namespaced_role(
        namespace, cast(client.V1Role, {"metadata": {"name": "read-own-namespace"}, "rules": [rule]})
    )
    await rbac.create_namespaced_role_binding(
        namespace,
        cast(
            client.V1RoleBinding,
            {
                "metadata": {"name": "read-own-namespace"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-own-namespace"},
                "subjects": [{"kind": "ServiceAccount", "name": "orchestrator", "namespace": namespace}],
            },
        ),
    )
    await _opt_in(core, namespace)
    async with impersonating(cluster.kubeconfig, service_account_user(namespace, "orchestrator")) as restricted:
        kube = KubeApi(restricted)
        found: list[JSON] = []

        async def readable() -> bool:
            try:
                found.append(await kube.get(NAMESPACES, namespace))
            except KubeApiError as error:
                if error.status != 403:
                    raise
                return False
            return True

        await poll_until(readable, timeout=30, what="RBAC granting get on its own namespace")
        assert found[-1]["metadata"]["labels"][NAMESPACE_OPT_IN_LABEL] == NAMESPACE_OPT_IN_VALUE
        with pytest.raises(KubeApiError) as other:
            await kube.get(NAMESPACES, "default")
        assert other.value.status == 403, "the Role grants its own namespace only"
        with pytest.raises(KubeApiError) as listing:
            await kube.list(NAMESPACES)
        assert listing.value.status == 403, "no list of namespaces"


async def _refusal_of(orchestrator: Orchestrator, namespace: str, pod: str) -> str:
    def refused() -> str | None:
        status = _annotations(orchestrator.state.pod(namespace, pod)).get(MIGRATION_STATUS, "")
        return status if status.startswith("Refused") else None

    return await orchestrator.state.wait_for(refused, timeout=30)


async def test_without_the_admission_policy_a_trigger_is_refused_once_until_it_is_installed(
    api: client.ApiClient, cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, crd_installed: None
) -> None:
    """Fail closed: on a cluster without the policy, whoever may patch a pod could trigger with the orchestrator's
    rights; the orchestrator refuses, once, and acts again on a changed annotation once the policy is there."""
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _opt_in(core, namespace)
    pod: JSON = {
        "metadata": {"name": "unguarded"},
        "spec": {"nodeName": source, "containers": [{"name": "c", "image": "x"}]},
    }
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
    async with _running(_settings(cluster, namespace)) as orchestrator:
        await core.patch_namespaced_pod("unguarded", namespace, {"metadata": {"annotations": {MIGRATE_TO: target}}})
        status = await _refusal_of(orchestrator, namespace, "unguarded")
        binding = _policy_objects(namespace)[1]["metadata"]["name"]
        assert status.startswith(
            f"Refused ({target}): {ADMISSION_POLICY_MISSING}: ValidatingAdmissionPolicyBinding {binding} is not"
            " installed"
        )
        assert "--trust-annotations" in status
        assert orchestrator.recorder is not None
        await orchestrator.recorder.flush()
        events = (await core.list_namespaced_event(namespace, field_selector="involvedObject.name=unguarded")).items
        assert [e.message for e in events if e.reason == "MigrationRefused"] == [status.split(": ", 1)[1]], "once"
        assert orchestrator.state.migrations_of_pod(namespace, "unguarded") == []

        # Installed, the request asked again (a changed annotation asks again) starts a migration: checked per
        # trigger, not once at start-up.
        async with _admission_policy(api, namespace):
            await core.patch_namespaced_pod(
                "unguarded", namespace, {"metadata": {"annotations": {MIGRATE_TO: cluster.node_names[2]}}}
            )

            def started() -> str | None:
                return _annotations(orchestrator.state.pod(namespace, "unguarded")).get(MIGRATION_ID)

            migration_id = await orchestrator.state.wait_for(started, timeout=30)
            migration = orchestrator.state.migration(namespace, migration_id)
            assert migration is not None
            assert migration["spec"]["targetNode"] == cluster.node_names[2]


async def test_trusted_annotations_act_without_the_admission_policy(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, crd_installed: None
) -> None:
    """--trust-annotations: for clusters that enforce the same rule by other means. The namespace opt-in stays."""
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _opt_in(core, namespace)
    pod: JSON = {
        "metadata": {"name": "trusted"},
        "spec": {"nodeName": source, "containers": [{"name": "c", "image": "x"}]},
    }
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
    async with _running(_settings(cluster, namespace, trust_annotations=True)) as orchestrator:
        await core.patch_namespaced_pod("trusted", namespace, {"metadata": {"annotations": {MIGRATE_TO: target}}})

        def started() -> str | None:
            return _annotations(orchestrator.state.pod(namespace, "trusted")).get(MIGRATION_ID)

        migration_id = await orchestrator.state.wait_for(started, timeout=30)
        migration = orchestrator.state.migration(namespace, migration_id)
        assert migration is not None
        assert migration["spec"]["triggeredBy"] == "annotation"
        assert (
            not _annotations(orchestrator.state.pod(namespace, "trusted"))
            .get(MIGRATION_STATUS, "")
            .startswith("Refused")
        )
