"""Attacks against the real API server (the harness's kube-apiserver, real RBAC, real TokenReview): the annotation
escalation of issue 14 under the shipped ValidatingAdmissionPolicy, in every way a patch can be spelled, and tokens
the orchestrator must refuse when the API server reviews them.

One namespace, its identities and the policy are set up once for the module (the helpers of
tests/integration/test_admission_policy.py, imported), so that each attack is one request."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from kubernetes_asyncio import client

from ai_storage_orchestrator.api.auth import DEFAULT_AUDIENCE, KubernetesAuthenticator
from ai_storage_orchestrator.conventions import MIGRATE_TO_ANNOTATION, NAMESPACE_OPT_IN_LABEL, NAMESPACE_OPT_IN_VALUE
from ai_storage_orchestrator.kube.resources import KubeApi
from tests.cluster.fixtures import ClusterHandle, _wait_default_service_account
from tests.cluster.impersonation import impersonating, poll_until, service_account_user
from tests.integration.test_admission_policy import (
    ARTIFACTS,
    HOOK,
    POD,
    RIGHTS,
    _annotations,
    _can,
    _pod,
    _policy_objects,
    probe_verb,
)
from tests.security.attacks import bearer, refusal
from tests.unit.api.fakes import FakeService

JSON = dict[str, Any]
API_SERVER_AUDIENCE = "https://kubernetes.default.svc.cluster.local"  # the harness's --service-account-issuer
HOOKED = "hooked"  # a pod created with a hook by its creator (allowed at creation)


class Arena:
    def __init__(self, namespace: str, users: dict[str, str]) -> None:
        self.namespace = namespace
        self.users = users


@pytest.fixture(scope="module")
async def arena(api: client.ApiClient, cluster: ClusterHandle, core: client.CoreV1Api) -> AsyncIterator[Arena]:
    """A namespace (opted in: the policy must hold even there) with the identities of RIGHTS, a pod `trainer`, a pod
    `hooked` created with a hook, and the shipped policy bound to this namespace and in force."""
    namespace = f"sec-{uuid.uuid4().hex[:10]}"
    labels = {"ai-storage.io/test": "true", NAMESPACE_OPT_IN_LABEL: NAMESPACE_OPT_IN_VALUE}
    await core.create_namespace(cast(client.V1Namespace, {"metadata": {"name": namespace, "labels": labels}}))
    rbac = client.RbacAuthorizationV1Api(api)
    admission = client.AdmissionregistrationV1Api(api)
    policy, binding = _policy_objects(namespace)
    try:
        await _wait_default_service_account(core, namespace)
        users: dict[str, str] = {}
        for name, rules in RIGHTS.items():
            await core.create_namespaced_service_account(
                namespace, cast(client.V1ServiceAccount, {"metadata": {"name": name}})
            )
            await rbac.create_namespaced_role(
                namespace, cast(client.V1Role, {"metadata": {"name": name}, "rules": rules})
            )
            await rbac.create_namespaced_role_binding(
                namespace,
                cast(
                    client.V1RoleBinding,
                    {
                        "metadata": {"name": name},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
                    },
                ),
            )
            users[name] = service_account_user(namespace, name)
        for name, user in users.items():
            verb = probe_verb(name)
            await poll_until(
                lambda user=user, verb=verb: _can(api, user, namespace, verb),  # type: ignore[misc]
                timeout=30,
                what=f"RBAC granting {user} {verb} pods",
            )
        await core.create_namespaced_pod(namespace, cast(client.V1Pod, _pod(POD, cluster.node_names[0])))
        await core.create_namespaced_pod(
            namespace, cast(client.V1Pod, _pod(HOOKED, cluster.node_names[0], {**HOOK, **ARTIFACTS}))
        )
        await admission.create_validating_admission_policy(cast(client.V1ValidatingAdmissionPolicy, policy))
        await admission.create_validating_admission_policy_binding(
            cast(client.V1ValidatingAdmissionPolicyBinding, binding)
        )
        async with impersonating(cluster.kubeconfig, users["patcher"]) as patcher:

            async def in_force() -> bool:
                try:
                    await client.CoreV1Api(patcher).patch_namespaced_pod(
                        POD, namespace, _annotations({MIGRATE_TO_ANNOTATION: "probe"}), dry_run="All"
                    )
                except client.ApiException as error:
                    if error.status == 403 and "ValidatingAdmissionPolicy" in str(error.body):
                        return True
                    raise
                return False

            await poll_until(in_force, timeout=30, what="the admission policy in force")
        yield Arena(namespace, users)
    finally:
        for delete, name in (
            (admission.delete_validating_admission_policy_binding, binding["metadata"]["name"]),
            (admission.delete_validating_admission_policy, policy["metadata"]["name"]),
        ):
            try:
                await delete(name)
            except client.ApiException as error:
                if error.status != 404:
                    raise
        await core.delete_namespace(namespace)


def denied_by_policy(error: client.ApiException, user: str) -> JSON:
    """The API server's refusal: 403, a Status with reason Forbidden, naming the policy and the user."""
    assert error.status == 403, error
    status: JSON = json.loads(cast(bytes, error.body))
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Forbidden", 403), status
    assert "ValidatingAdmissionPolicy" in status["message"], status
    assert user in status["message"], status
    return status


async def attempt(call: Any) -> client.ApiException:
    with pytest.raises(client.ApiException) as refused:
        await call
    return refused.value


# --- the annotation escalation ------------------------------------------------------------------------------------

ESCALATIONS = {"migrate-to": {MIGRATE_TO_ANNOTATION: "kwok-node-1"}, "hook": HOOK, "artifacts": ARTIFACTS}


@pytest.mark.parametrize("subresource", ["", "status"])
@pytest.mark.parametrize("what", list(ESCALATIONS))
async def test_a_patch_only_user_cannot_set_the_trigger_or_checkpoint_annotations(
    cluster: ClusterHandle, core: client.CoreV1Api, arena: Arena, what: str, subresource: str
) -> None:
    user = arena.users["patcher"]
    async with impersonating(cluster.kubeconfig, user) as patcher:
        pods = client.CoreV1Api(patcher)
        patch = pods.patch_namespaced_pod_status if subresource else pods.patch_namespaced_pod
        denied_by_policy(await attempt(patch(POD, arena.namespace, _annotations(ESCALATIONS[what]))), user)
    stored = (await core.read_namespaced_pod(POD, arena.namespace)).metadata.annotations or {}
    assert not set(stored) & set(ESCALATIONS[what])


@pytest.mark.parametrize("spelling", ["json-patch", "merge-patch", "server-side-apply"])
async def test_every_patch_format_meets_the_policy(cluster: ClusterHandle, arena: Arena, spelling: str) -> None:
    """The policy judges the object after the patch: the format of the patch changes nothing."""
    user = arena.users["patcher"]
    async with impersonating(cluster.kubeconfig, user) as patcher:
        pods = client.CoreV1Api(patcher)
        if spelling == "json-patch":
            key = MIGRATE_TO_ANNOTATION.replace("/", "~1")
            body: Any = [
                {"op": "add", "path": "/metadata/annotations", "value": {}},
                {"op": "add", "path": f"/metadata/annotations/{key}", "value": "kwok-node-1"},
            ]
            call = pods.patch_namespaced_pod(POD, arena.namespace, body)
        elif spelling == "merge-patch":
            body = _annotations({MIGRATE_TO_ANNOTATION: "kwok-node-1"})
            call = pods.patch_namespaced_pod(  # type: ignore[call-arg]  # the client takes it; its stubs leave it out
                POD, arena.namespace, body, _content_type="application/merge-patch+json"
            )
        else:
            body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD, **_annotations(HOOK)["metadata"]}}
            call = pods.patch_namespaced_pod(  # type: ignore[call-arg]  # the client takes it; its stubs leave it out
                POD, arena.namespace, body, field_manager="mallory", _content_type="application/apply-patch+yaml"
            )
        denied_by_policy(await attempt(call), user)


async def test_a_patch_only_user_cannot_change_a_hook_declared_at_creation(
    cluster: ClusterHandle, core: client.CoreV1Api, arena: Arena
) -> None:
    user = arena.users["patcher"]
    rewritten = {key: json.dumps(["sh", "-c", "cat /var/run/secrets/*/*/token"]) for key in HOOK}
    async with impersonating(cluster.kubeconfig, user) as patcher:
        call = client.CoreV1Api(patcher).patch_namespaced_pod(HOOKED, arena.namespace, _annotations(rewritten))
        denied_by_policy(await attempt(call), user)
    stored = (await core.read_namespaced_pod(HOOKED, arena.namespace)).metadata.annotations or {}
    assert {k: stored[k] for k in HOOK} == HOOK


@pytest.mark.parametrize("what", ["hook", "artifacts"])
async def test_the_rights_to_move_do_not_include_exec(cluster: ClusterHandle, arena: Arena, what: str) -> None:
    """create + delete pods (what POST /api/migrations needs) is not enough to add a hook to a running pod."""
    user = arena.users["mover"]
    async with impersonating(cluster.kubeconfig, user) as mover:
        call = client.CoreV1Api(mover).patch_namespaced_pod(POD, arena.namespace, _annotations(ESCALATIONS[what]))
        denied_by_policy(await attempt(call), user)


async def test_a_creator_without_delete_cannot_create_a_pod_with_the_trigger(
    cluster: ClusterHandle, arena: Arena
) -> None:
    user = arena.users["creator"]
    pod = _pod("born-moving", cluster.node_names[0], {MIGRATE_TO_ANNOTATION: cluster.node_names[1]})
    async with impersonating(cluster.kubeconfig, user) as creator:
        status = denied_by_policy(
            await attempt(client.CoreV1Api(creator).create_namespaced_pod(arena.namespace, cast(client.V1Pod, pod))),
            user,
        )
    assert "create and delete on pods" in status["message"]


async def test_a_patch_only_user_cannot_opt_its_namespace_in_or_out(cluster: ClusterHandle, arena: Arena) -> None:
    """The opt-in is a label on the Namespace: RBAC, not the pod's author, decides who sets it."""
    async with impersonating(cluster.kubeconfig, arena.users["patcher"]) as patcher:
        patch = {"metadata": {"labels": {NAMESPACE_OPT_IN_LABEL: "disabled"}}}
        error = await attempt(client.CoreV1Api(patcher).patch_namespace(arena.namespace, patch))
    assert error.status == 403
    assert json.loads(cast(bytes, error.body))["reason"] == "Forbidden"


async def test_annotations_beyond_the_api_servers_size_limit_are_refused(core: client.CoreV1Api, arena: Arena) -> None:
    """The hook argv or artifacts list cannot grow past 256 KiB of annotations: the API server refuses the pod."""
    huge = {key: json.dumps(["sh", "-c", "x" * (256 * 1024)]) for key in HOOK}
    error = await attempt(core.patch_namespaced_pod(POD, arena.namespace, _annotations(huge)))
    status = json.loads(cast(bytes, error.body))
    assert (error.status, status["reason"]) == (422, "Invalid"), status
    assert "may not be more than 262144 bytes" in status["message"]


# --- tokens the real TokenReview refuses -------------------------------------------------------------------------


@pytest.fixture
async def guarded(api: client.ApiClient, serve: Any) -> Any:
    """The REST API with --auth=kubernetes against the real API server (the migration service is a fake)."""
    return await serve(authenticator=KubernetesAuthenticator(KubeApi(api)))


async def _token(core: client.CoreV1Api, namespace: str, account: str, audience: str) -> str:
    spec = {"expirationSeconds": 600, "audiences": [audience]}
    return str(
        (
            await core.create_namespaced_service_account_token(
                account, namespace, cast(client.AuthenticationV1TokenRequest, {"spec": spec})
            )
        ).status.token
    )


async def test_an_api_server_token_is_not_accepted_here(
    core: client.CoreV1Api, arena: Arena, guarded: Any, service: FakeService
) -> None:
    """The relay attack: a pod's ordinary token (audience: the API server) replayed to the orchestrator."""
    theirs = await _token(core, arena.namespace, "operator", API_SERVER_AUDIENCE)
    response = await guarded.get(f"/api/migrations?namespace={arena.namespace}", headers=bearer(theirs))
    body = await refusal(response, 401, "unauthorized")
    assert f"--audience {DEFAULT_AUDIENCE}" in body["message"]


async def test_a_token_signed_by_someone_else_is_refused(arena: Arena, guarded: Any) -> None:
    """A JWT with every claim of a service-account token for our audience, signed with the attacker's own key."""
    now = int(time.time())
    claims = {
        "iss": API_SERVER_AUDIENCE,
        "aud": [DEFAULT_AUDIENCE],
        "sub": f"system:serviceaccount:{arena.namespace}:operator",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "kubernetes.io": {"namespace": arena.namespace, "serviceaccount": {"name": "operator", "uid": "x"}},
    }
    forged = _signed_jwt(claims)
    response = await guarded.get(f"/api/migrations?namespace={arena.namespace}", headers=bearer(forged))
    await refusal(response, 401, "unauthorized")


def _signed_jwt(claims: JSON) -> str:
    """An RS256 JWT signed with a key of the attacker's own."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "RS256", "kid": "forged"}).encode()) + "." + part(json.dumps(claims).encode())
    return head + "." + part(key.sign(head.encode(), padding.PKCS1v15(), hashes.SHA256()))


@pytest.mark.parametrize("audience", ["vault", "https://attacker.example", f"{DEFAULT_AUDIENCE}.attacker.example"])
async def test_a_token_minted_for_another_service_is_refused(
    core: client.CoreV1Api, arena: Arena, guarded: Any, audience: str
) -> None:
    """A token the caller gave a third service (or one whose audience only starts like ours) is not accepted here."""
    token = await _token(core, arena.namespace, "operator", audience)
    response = await guarded.get(f"/api/migrations?namespace={arena.namespace}", headers=bearer(token))
    await refusal(response, 401, "unauthorized")
