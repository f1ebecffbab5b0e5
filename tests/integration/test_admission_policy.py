"""The ValidatingAdmissionPolicy shipped in k8s/admission, enforced by the real API server with real RBAC: whoever
may only `patch` a pod cannot make the orchestrator move it or exec into it; whoever holds the rights can.

The policy is applied as shipped; only its name (and its binding's) carry the test's namespace, and the binding
selects that namespace, so that no other test of the session runs under it."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes_asyncio import client

from ai_storage_orchestrator.conventions import (
    CHECKPOINT_ARTIFACTS_PREFIX,
    CHECKPOINT_HOOK_PREFIX,
    MIGRATE_ON_EVICT_ANNOTATION,
    MIGRATE_TO_ANNOTATION,
    MIGRATION_ID_ANNOTATION,
    MIGRATION_STATUS_ANNOTATION,
)
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.impersonation import impersonating, poll_until, service_account_user

ROOT = Path(__file__).resolve().parents[2]
POLICY_FILE = ROOT / "k8s" / "admission" / "annotation-policy.yaml"
CLUSTER_ROLE_FILE = ROOT / "k8s" / "rbac" / "cluster-role.yaml"
JSON = dict[str, Any]
POD = "trainer"
HOOK = {CHECKPOINT_HOOK_PREFIX + "c": json.dumps(["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"])}
ARTIFACTS = {CHECKPOINT_ARTIFACTS_PREFIX + "c": json.dumps(["/var/run/secrets/kubernetes.io/serviceaccount"])}

# Namespace-scoped identities, each a ServiceAccount of the test namespace with exactly these rights on its pods.
RIGHTS: dict[str, list[JSON]] = {
    # may patch pods (and their status), nothing else: the attacker of issue 14
    "patcher": [{"apiGroups": [""], "resources": ["pods", "pods/status"], "verbs": ["get", "patch"]}],
    # the rights of POST /api/migrations, and no exec
    "mover": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch", "create", "delete"]}],
    # may exec too
    "operator": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch", "create", "delete"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
    ],
    # may create pods, neither delete nor exec
    "creator": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create"]}],
    # a scheduler's rights: bind pods (a Binding's annotations are merged into the pod it binds)
    "binder": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods/binding"], "verbs": ["create"]},
    ],
}


def probe_verb(identity: str) -> str:
    """The verb on pods whose grant shows the identity's RBAC is in force."""
    return next(v for v in ("patch", "create", "get") if v in RIGHTS[identity][0]["verbs"])


def _pod(name: str, node: str, annotations: dict[str, str] | None = None) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "registry.example/c:1"}]},
    }


def _annotations(body: JSON) -> JSON:
    return {"metadata": {"annotations": body}}


def _policy_objects(namespace: str) -> tuple[JSON, JSON]:
    """The shipped policy and binding, renamed for this test, the binding limited to its namespace."""
    documents = [d for d in yaml.safe_load_all(POLICY_FILE.read_text()) if d]
    [policy] = [d for d in documents if d["kind"] == "ValidatingAdmissionPolicy"]
    [binding] = [d for d in documents if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"], "shipped: every namespace"
    policy, binding = copy.deepcopy(policy), copy.deepcopy(binding)
    policy["metadata"]["name"] = binding["spec"]["policyName"] = f"{policy['metadata']['name']}-{namespace}"
    binding["metadata"]["name"] = f"{binding['metadata']['name']}-{namespace}"
    binding["spec"]["matchResources"] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    return policy, binding


async def _forbidden(call: Any) -> client.ApiException:
    with pytest.raises(client.ApiException) as denied:
        await call
    assert denied.value.status == 403, denied.value
    return denied.value


async def _can(api: client.ApiClient, user: str, namespace: str, verb: str, subresource: str = "") -> bool:
    review = {
        "spec": {
            "user": user,
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "resource": "pods",
                "subresource": subresource,
            },
        }
    }
    answer = await client.AuthorizationV1Api(api).create_subject_access_review(
        cast(client.V1SubjectAccessReview, review)
    )
    return bool(answer.status.allowed)


@pytest.fixture
async def identities(api: client.ApiClient, core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    """name → user name of each ServiceAccount of RIGHTS, once the authorizer grants what RIGHTS says."""
    rbac = client.RbacAuthorizationV1Api(api)
    users = {}
    for name, rules in RIGHTS.items():
        await core.create_namespaced_service_account(
            namespace, cast(client.V1ServiceAccount, {"metadata": {"name": name}})
        )
        await rbac.create_namespaced_role(namespace, cast(client.V1Role, {"metadata": {"name": name}, "rules": rules}))
        subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
        binding = {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [subject],
        }
        await rbac.create_namespaced_role_binding(namespace, cast(client.V1RoleBinding, binding))
        users[name] = service_account_user(namespace, name)
    for name, user in users.items():
        verb = probe_verb(name)
        await poll_until(
            lambda user=user, verb=verb: _can(api, user, namespace, verb),  # type: ignore[misc]
            timeout=30,
            what=f"RBAC granting {user} {verb} pods",
        )
    return users


@pytest.fixture
async def policy(
    api: client.ApiClient,
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    identities: dict[str, str],
) -> AsyncIterator[None]:
    """The shipped policy in force in the test's namespace (and a pod `trainer` there to patch)."""
    admission = client.AdmissionregistrationV1Api(api)
    policy, binding = _policy_objects(namespace)
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, _pod(POD, cluster.node_names[0])))
    await admission.create_validating_admission_policy(cast(client.V1ValidatingAdmissionPolicy, policy))
    await admission.create_validating_admission_policy_binding(cast(client.V1ValidatingAdmissionPolicyBinding, binding))
    try:
        # In force once a request only the policy refuses is refused (dry run: nothing is stored).
        async with impersonating(cluster.kubeconfig, identities["patcher"]) as patcher:

            async def denied() -> bool:
                try:
                    await client.CoreV1Api(patcher).patch_namespaced_pod(
                        POD, namespace, _annotations({MIGRATE_TO_ANNOTATION: "probe"}), dry_run="All"
                    )
                except client.ApiException as error:
                    if error.status == 403 and "ValidatingAdmissionPolicy" in str(error.body):
                        return True
                    raise
                return False

            await poll_until(denied, timeout=30, what="the admission policy in force")

        # The API server type-checked every expression against the Pod schema and found nothing to warn about.
        checked: list[Any] = []

        async def type_checked() -> bool:
            checked[:] = [await admission.read_validating_admission_policy(policy["metadata"]["name"])]
            status = checked[0].status
            return bool(status and status.observed_generation == checked[0].metadata.generation)

        await poll_until(type_checked, timeout=30, what="the policy's type checking")
        type_checking = checked[0].status.type_checking
        warnings = (type_checking.expression_warnings if type_checking else None) or []
        assert warnings == [], checked[0].status
        yield
    finally:
        await admission.delete_validating_admission_policy_binding(binding["metadata"]["name"])
        await admission.delete_validating_admission_policy(policy["metadata"]["name"])


async def test_a_user_who_may_only_patch_cannot_trigger_or_hook(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, identities: dict[str, str], policy: None
) -> None:
    user = identities["patcher"]
    async with impersonating(cluster.kubeconfig, user) as patcher:
        pods = client.CoreV1Api(patcher)
        denied = await _forbidden(pods.patch_namespaced_pod(POD, namespace, _annotations({MIGRATE_TO_ANNOTATION: "n"})))
        message = json.loads(cast(bytes, denied.body))["message"]
        assert "ai-storage.io/migrate-to" in message
        assert f"create and delete on pods in namespace {namespace}" in message
        assert user in message
        # Opting in to migrate on eviction moves the pod too (with tolerations a patch may have added).
        denied = await _forbidden(
            pods.patch_namespaced_pod(POD, namespace, _annotations({MIGRATE_ON_EVICT_ANNOTATION: "true"}))
        )
        assert "ai-storage.io/migrate-on-evict" in json.loads(cast(bytes, denied.body))["message"]

        for annotations in (HOOK, ARTIFACTS):
            denied = await _forbidden(pods.patch_namespaced_pod(POD, namespace, _annotations(annotations)))
            message = json.loads(cast(bytes, denied.body))["message"]
            assert f"needs create on pods/exec in namespace {namespace}" in message
            assert user in message

        # Through the status subresource, whose updates may change metadata too.
        await _forbidden(pods.patch_namespaced_pod_status(POD, namespace, _annotations({MIGRATE_TO_ANNOTATION: "n"})))
        await _forbidden(pods.patch_namespaced_pod_status(POD, namespace, _annotations(HOOK)))

        # Everything else stays theirs: other annotations, and the orchestrator's own.
        await pods.patch_namespaced_pod(POD, namespace, _annotations({"team.example/owner": "ml"}))
        await pods.patch_namespaced_pod(POD, namespace, _annotations({MIGRATION_STATUS_ANNOTATION: "x"}))

    stored = (await core.read_namespaced_pod(POD, namespace)).metadata.annotations or {}
    assert MIGRATE_TO_ANNOTATION not in stored
    assert not [k for k in stored if k.startswith((CHECKPOINT_HOOK_PREFIX, CHECKPOINT_ARTIFACTS_PREFIX))]
    assert stored["team.example/owner"] == "ml"


async def test_a_user_with_the_rights_succeeds(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, identities: dict[str, str], policy: None
) -> None:
    # create + delete pods: may ask for the move (what POST /api/migrations allows), not add hooks.
    async with impersonating(cluster.kubeconfig, identities["mover"]) as mover:
        pods = client.CoreV1Api(mover)
        await pods.patch_namespaced_pod(POD, namespace, _annotations({MIGRATE_TO_ANNOTATION: cluster.node_names[1]}))
        await _forbidden(pods.patch_namespaced_pod(POD, namespace, _annotations(HOOK)))
    # ... and exec: hooks and artifacts too, and changing the target.
    async with impersonating(cluster.kubeconfig, identities["operator"]) as operator:
        pods = client.CoreV1Api(operator)
        await pods.patch_namespaced_pod(POD, namespace, _annotations({**HOOK, **ARTIFACTS}))
        await pods.patch_namespaced_pod(POD, namespace, _annotations({MIGRATE_TO_ANNOTATION: cluster.node_names[0]}))

    stored = (await core.read_namespaced_pod(POD, namespace)).metadata.annotations or {}
    assert stored[MIGRATE_TO_ANNOTATION] == cluster.node_names[0]
    assert {k: stored[k] for k in (*HOOK, *ARTIFACTS)} == {**HOOK, **ARTIFACTS}


async def test_at_creation_hooks_need_create_and_the_trigger_needs_delete_too(
    cluster: ClusterHandle, namespace: str, identities: dict[str, str], policy: None
) -> None:
    node = cluster.node_names[0]
    async with impersonating(cluster.kubeconfig, identities["creator"]) as creator:
        pods = client.CoreV1Api(creator)
        # The creator chooses the containers' image and command already: a hook in them gives no more.
        created = await pods.create_namespaced_pod(
            namespace, cast(client.V1Pod, _pod("with-hooks", node, {**HOOK, **ARTIFACTS}))
        )
        assert created.metadata.annotations == {**HOOK, **ARTIFACTS}
        # A trigger at creation asks for the pod to be deleted and recreated: the rights of the REST call.
        denied = await _forbidden(
            pods.create_namespaced_pod(
                namespace, cast(client.V1Pod, _pod("with-trigger", node, {MIGRATE_TO_ANNOTATION: "n"}))
            )
        )
        assert "create and delete on pods" in json.loads(cast(bytes, denied.body))["message"]


async def test_the_orchestrator_writes_its_annotations_and_target_pods_with_its_shipped_rights(
    api: client.ApiClient, cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, policy: None
) -> None:
    """The orchestrator's ServiceAccount with the rules of k8s/rbac/cluster-role.yaml (bound here to a
    ServiceAccount of the test namespace under a test name)."""
    rbac = client.RbacAuthorizationV1Api(api)
    [role] = [d for d in yaml.safe_load_all(CLUSTER_ROLE_FILE.read_text()) if d and d["kind"] == "ClusterRole"]
    name = f"{namespace}-orchestrator"
    await core.create_namespaced_service_account(
        namespace, cast(client.V1ServiceAccount, {"metadata": {"name": "orchestrator"}})
    )
    await rbac.create_cluster_role(cast(client.V1ClusterRole, {"metadata": {"name": name}, "rules": role["rules"]}))
    await rbac.create_cluster_role_binding(
        cast(
            client.V1ClusterRoleBinding,
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": "orchestrator", "namespace": namespace}],
            },
        )
    )
    user = service_account_user(namespace, "orchestrator")
    try:
        await poll_until(
            lambda: _can(api, user, namespace, "create", "exec"), timeout=30, what=f"RBAC granting {user} pods/exec"
        )
        async with impersonating(cluster.kubeconfig, user) as orchestrator:
            pods = client.CoreV1Api(orchestrator)
            await pods.patch_namespaced_pod(
                POD,
                namespace,
                _annotations({MIGRATION_ID_ANNOTATION: "455f2b4c6538", MIGRATION_STATUS_ANNOTATION: "Pending"}),
            )
            # A target pod carries the source's checkpoint annotations (and a rewritten artifacts list).
            target = _pod(f"{POD}-migrated-455f2b4c", cluster.node_names[1], {**HOOK, **ARTIFACTS})
            await pods.create_namespaced_pod(namespace, cast(client.V1Pod, target))
            # Its rights pass the update checks too (it holds create/delete pods and pods/exec everywhere).
            changed = {CHECKPOINT_ARTIFACTS_PREFIX + "c": json.dumps(["/scratch"]), MIGRATE_TO_ANNOTATION: "n"}
            await pods.patch_namespaced_pod(target["metadata"]["name"], namespace, _annotations(changed))
    finally:
        await rbac.delete_cluster_role_binding(name)
        await rbac.delete_cluster_role(name)
    stored = (await core.read_namespaced_pod(POD, namespace)).metadata.annotations or {}
    assert stored[MIGRATION_STATUS_ANNOTATION] == "Pending"


async def test_a_binding_cannot_carry_the_annotations_either(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, identities: dict[str, str], policy: None
) -> None:
    """A Binding's annotations land on the pod it binds: a scheduler that may bind pods is held to the same rules."""
    unscheduled = _pod("unscheduled", cluster.node_names[0])
    del unscheduled["spec"]["nodeName"]
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, unscheduled))

    def binding(annotations: dict[str, str]) -> client.V1Binding:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "unscheduled", "annotations": annotations},
            "target": {"apiVersion": "v1", "kind": "Node", "name": cluster.node_names[0]},
        }
        return cast(client.V1Binding, body)

    async with impersonating(cluster.kubeconfig, identities["binder"]) as binder:
        pods = client.CoreV1Api(binder)
        for annotations in ({MIGRATE_TO_ANNOTATION: "n"}, HOOK, ARTIFACTS):
            await _forbidden(pods.create_namespaced_pod_binding("unscheduled", namespace, binding(annotations)))
        # The answer is a Status, which the client cannot read as the V1Binding its stubs promise: not decoded.
        await pods.create_namespaced_pod_binding(
            "unscheduled", namespace, binding({"team.example/owner": "ml"}), _preload_content=False
        )

    bound = await core.read_namespaced_pod("unscheduled", namespace)
    assert bound.spec.node_name == cluster.node_names[0]
    assert (bound.metadata.annotations or {}) == {"team.example/owner": "ml"}
