"""Namespace-scoped mode against the real API server with real RBAC: an orchestrator limited to namespaces a and b,
authenticated as a ServiceAccount (a TokenRequest token) that holds exactly the rules of k8s/namespaced -- the Role of
namespace-role/ in a and b, the ClusterRole of cluster-read.yaml, the Lease Role of k8s/rbac -- migrates a pod in a,
while a pod in c is neither watched nor migratable (403 namespace_not_managed), and its rights stop at a and b.

The rules are read from the manifests as shipped; only the ServiceAccount (in a), the names and the Lease's namespace
(a, instead of kube-system) are the test's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from kubernetes_asyncio import client

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import NODES, PODS, KubeApi
from ai_storage_orchestrator.models import Phase
from ai_storage_orchestrator.runtime import NAMESPACE_NOT_MANAGED, Orchestrator, build_app
from ai_storage_orchestrator.settings import Settings
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.impersonation import poll_until, service_account_user
from tests.cluster.moves import deploy_certification_pod, wait_data_processor_completed, wait_phase
from tests.cluster.workloads import CERTIFICATION_POD

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "k8s" / "namespaced"
JSON = dict[str, Any]
ACCOUNT = "orchestrator"


def _documents(path: Path, kind: str) -> list[JSON]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind]


def _rules(path: Path, kind: str) -> list[JSON]:
    [role] = _documents(path, kind)
    rules: list[JSON] = role["rules"]
    return rules


def _binding(kind: str, name: str, role_kind: str, subject_namespace: str) -> JSON:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": subject_namespace}],
    }


@pytest.fixture
async def namespaces(core: client.CoreV1Api, namespace: str) -> AsyncIterator[tuple[str, str, str]]:
    """a (the session's test namespace), b and c."""
    others = [f"{namespace}-b", f"{namespace}-c"]
    for name in others:
        await core.create_namespace(
            cast(client.V1Namespace, {"metadata": {"name": name, "labels": {"ai-storage.io/test": "true"}}})
        )
    try:
        yield namespace, others[0], others[1]
    finally:
        for name in others:
            await core.delete_namespace(name)


async def _can(api: client.ApiClient, user: str, namespace: str, verb: str, resource: str) -> bool:
    group, _, plural = resource.rpartition("/")
    attributes = {"namespace": namespace, "verb": verb, "group": group, "resource": plural}
    review = {"spec": {"user": user, "resourceAttributes": attributes}}
    answer = await client.AuthorizationV1Api(api).create_subject_access_review(
        cast(client.V1SubjectAccessReview, review)
    )
    return bool(answer.status.allowed)


@pytest.fixture
async def overlay_rights(
    api: client.ApiClient, core: client.CoreV1Api, namespaces: tuple[str, str, str]
) -> AsyncIterator[str]:
    """ServiceAccount `orchestrator` in a, bound to exactly the overlay's rules; yields its user name."""
    a, b, _c = namespaces
    rbac = client.RbacAuthorizationV1Api(api)
    await core.create_namespaced_service_account(a, cast(client.V1ServiceAccount, {"metadata": {"name": ACCOUNT}}))
    namespaced = _rules(OVERLAY / "namespace-role" / "role.yaml", "Role")
    for managed in (a, b):
        await rbac.create_namespaced_role(
            managed, cast(client.V1Role, {"metadata": {"name": ACCOUNT}, "rules": namespaced})
        )
        await rbac.create_namespaced_role_binding(
            managed, cast(client.V1RoleBinding, _binding("RoleBinding", ACCOUNT, "Role", a))
        )
    lease_rules = _rules(ROOT / "k8s" / "rbac" / "leader-election.yaml", "Role")
    await rbac.create_namespaced_role(a, cast(client.V1Role, {"metadata": {"name": "leases"}, "rules": lease_rules}))
    await rbac.create_namespaced_role_binding(
        a, cast(client.V1RoleBinding, _binding("RoleBinding", "leases", "Role", a))
    )
    cluster_read = f"{a}-cluster-read"
    rules = _rules(OVERLAY / "cluster-read.yaml", "ClusterRole")
    await rbac.create_cluster_role(cast(client.V1ClusterRole, {"metadata": {"name": cluster_read}, "rules": rules}))
    await rbac.create_cluster_role_binding(
        cast(client.V1ClusterRoleBinding, _binding("ClusterRoleBinding", cluster_read, "ClusterRole", a))
    )
    user = service_account_user(a, ACCOUNT)
    try:
        probes = ((b, "watch", "pods"), (a, "create", "coordination.k8s.io/leases"), ("", "watch", "nodes"))
        for namespace, verb, resource in probes:
            await poll_until(
                lambda n=namespace, v=verb, r=resource: _can(api, user, n, v, r),  # type: ignore[misc]
                timeout=30,
                what=f"RBAC granting {user} {verb} {resource}",
            )
        yield user
    finally:
        await rbac.delete_cluster_role_binding(cluster_read)
        await rbac.delete_cluster_role(cluster_read)


async def _token_kubeconfig(core: client.CoreV1Api, cluster: ClusterHandle, namespace: str, path: Path) -> Path:
    """A kubeconfig for the admin's API server that authenticates with a TokenRequest token of the account."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    server = dict(next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"])
    if "certificate-authority" in server:  # a relative path is relative to the admin kubeconfig
        server["certificate-authority"] = str(cluster.kubeconfig.parent / server["certificate-authority"])
    requested = await core.create_namespaced_service_account_token(
        ACCOUNT, namespace, cast(client.AuthenticationV1TokenRequest, {"spec": {"expirationSeconds": 3600}})
    )
    _write_kubeconfig(path, server, str(requested.status.token))
    return path


def _write_kubeconfig(path: Path, server: JSON, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": server}],
        "users": [{"name": ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": ACCOUNT, "context": {"cluster": "cluster", "user": ACCOUNT}}],
        "current-context": ACCOUNT,
    }
    path.write_text(yaml.safe_dump(config))


def _pod(name: str, node: str) -> JSON:
    return {"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}}


async def test_an_orchestrator_limited_to_a_and_b_migrates_in_a_and_never_touches_c(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespaces: tuple[str, str, str],
    overlay_rights: str,
    crd_installed: None,
    tmp_path: Path,
) -> None:
    a, b, c = namespaces
    source, target = cluster.node_names[0], cluster.node_names[1]
    await core.create_namespaced_pod(c, cast(client.V1Pod, _pod("elsewhere", source)))
    await core.create_namespaced_pod(b, cast(client.V1Pod, _pod("neighbour", source)))
    await deploy_certification_pod(core, a, source, complete_after="1s")
    kubeconfig = await _token_kubeconfig(core, cluster, a, tmp_path / "kubeconfig")

    settings = Settings(
        kubeconfig=str(kubeconfig),
        namespaces=(a, b),
        lease_namespace=a,  # the overlay's Lease Role, in the test's namespace instead of kube-system
        identity=f"test-{a}",
    )
    settings.validate()
    orchestrator = Orchestrator(settings)
    http = TestClient(TestServer(build_app(orchestrator), host="127.0.0.1"))
    await http.start_server()
    try:
        await orchestrator.state.wait_for(lambda: orchestrator.state.synced, timeout=30)
        assert orchestrator.ready()[0], orchestrator.ready()
        assert orchestrator.state.pod(b, "neighbour") is not None
        assert orchestrator.state.pod(c, "elsewhere") is None, "c is not watched"
        cached = orchestrator.state.pods.keys()
        assert not [key for key in cached if not key.startswith((f"{a}/", f"{b}/"))]
        assert orchestrator.state.node(target) is not None, "nodes are read cluster-wide"

        # c: refused before anything is looked up, whether or not the pod exists.
        for pod in ("elsewhere", "no-such-pod"):
            body = {"pod_name": pod, "pod_namespace": c, "source_node": source, "target_node": target}
            for dry_run in (True, False):
                response = await http.post("/api/migrations", json={**body, "dry_run": dry_run})
                assert response.status == 403, await response.text()
                assert (await response.json())["error"] == NAMESPACE_NOT_MANAGED
        response = await http.get("/api/migrations", params={"namespace": c})
        assert response.status == 403

        # a: the certification migration, every step under the overlay's rights.
        await wait_data_processor_completed(orchestrator, a)
        body = {"pod_name": CERTIFICATION_POD, "pod_namespace": a, "source_node": source, "target_node": target}
        response = await http.post("/api/migrations", json={**body, "preserve_pv": True})
        assert response.status == 202, await response.text()
        migration_id = (await response.json())["migration_id"]
        done = await wait_phase(orchestrator, a, migration_id, Phase.COMPLETED, Phase.FAILED)
        assert done["status"]["phase"] == Phase.COMPLETED.value, done["status"]
        response = await http.get("/api/migrations", params={"namespace": a})
        assert [m["migration_id"] for m in (await response.json())["migrations"]] == [migration_id]
        assert orchestrator.ready()[0], "no watch failed on the way"
    finally:
        await http.close()

    untouched = await core.read_namespaced_pod("elsewhere", c)
    assert untouched.spec.node_name == source
    assert cast(dict[str, str] | None, untouched.metadata.annotations) is None, "no trigger, no status"

    # Its rights themselves stop at a and b (and nodes are read-only).
    restricted = await _restricted(kubeconfig)
    try:
        with pytest.raises(KubeApiError) as listing:
            await restricted.list(PODS, namespace=c)
        assert listing.value.status == 403
        with pytest.raises(KubeApiError) as everywhere:
            await restricted.list(PODS)
        assert everywhere.value.status == 403
        with pytest.raises(KubeApiError) as node_write:
            await restricted.merge_patch(NODES, target, {"metadata": {"labels": {"x": "y"}}})
        assert node_write.value.status == 403
    finally:
        await restricted.api_client.close()


async def _restricted(kubeconfig: Path) -> KubeApi:
    from ai_storage_orchestrator.kube.client import create_api_client
    from ai_storage_orchestrator.kube.retrying import NO_RETRIES

    return KubeApi(await create_api_client(str(kubeconfig)), retry_policy=NO_RETRIES)


def test_the_overlay_grants_nothing_cluster_wide_on_namespaced_objects() -> None:
    """The overlay's ClusterRole reads nodes and volumes and asks reviews; every namespaced right is in the Role."""
    rules = _rules(OVERLAY / "cluster-read.yaml", "ClusterRole")
    granted = {(resource, verb) for rule in rules for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted == {
        ("nodes", "get"),
        ("nodes", "list"),
        ("nodes", "watch"),
        ("persistentvolumes", "get"),
        ("persistentvolumes", "list"),
        ("persistentvolumes", "watch"),
        ("tokenreviews", "create"),
        ("subjectaccessreviews", "create"),
        ("validatingadmissionpolicybindings", "get"),
        ("validatingadmissionpolicies", "get"),
    }
    [admission] = [rule for rule in rules if "validatingadmissionpolicybindings" in rule["resources"]]
    assert admission["resourceNames"] == ["ai-storage-orchestrator-annotations"]
