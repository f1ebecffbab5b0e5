"""The webhook configurations ``serve --webhooks self`` creates for itself, and removes on exit.

In a cluster they come from ``k8s/webhooks`` instead (the same webhooks behind the orchestrator's Service); here they
call ``https://127.0.0.1:<port>`` with the self-signed CA of ``selfsigned.py``, so a kube-apiserver on the same
machine reaches this process. Their names carry a hash of the process's identity: two orchestrators on one cluster
register two pairs and never delete each other's.

Both webhooks fail open (``failurePolicy: Ignore``): if this process is gone -- even killed before it could delete
them -- a pod is created, and an eviction goes ahead, as Kubernetes alone would do. Leftovers of a killed process carry
the label ``ai-storage.io/webhooks=self``."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog

from ai_storage_orchestrator.admission.ports import JSON
from ai_storage_orchestrator.admission.server import MUTATE_PODS_PATH, VALIDATE_EVICTION_PATH
from ai_storage_orchestrator.conventions import WEBHOOKS_LABEL
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import KubeApi, Resource

MUTATING_WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "mutatingwebhookconfigurations",
    "MutatingWebhookConfiguration",
    namespaced=False,
)
VALIDATING_WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    namespaced=False,
)
# The webhooks' own names (fully qualified, as the API requires); the same in k8s/webhooks.
MUTATE_PODS_WEBHOOK = "capture.pods.ai-storage.io"
EVICTION_WEBHOOK = "eviction.pods.ai-storage.io"
TIMEOUT_SECONDS = 5
SELF_LABEL = {"app.kubernetes.io/name": "ai-storage-orchestrator", WEBHOOKS_LABEL: "self"}
FIELD_MANAGER = "ai-storage-orchestrator"

log = structlog.get_logger(__name__)


def configuration_name(identity: str) -> str:
    """``ai-storage-orchestrator-<10 hex digits of the identity's hash>``: one name per process."""
    return f"ai-storage-orchestrator-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


def webhook_configurations(
    *, name: str, base_url: str, ca_bundle: bytes, namespaces: Sequence[str] = ()
) -> tuple[JSON, JSON]:
    """The MutatingWebhookConfiguration (pod CREATE) and the ValidatingWebhookConfiguration (pods/eviction CREATE)
    calling `base_url`, trusted through `ca_bundle` (PEM); limited to `namespaces` when some are given."""
    ca = base64.b64encode(ca_bundle).decode()
    common: JSON = {
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Ignore",
        "matchPolicy": "Equivalent",
        "timeoutSeconds": TIMEOUT_SECONDS,
    }
    if namespaces:
        common["namespaceSelector"] = {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(namespaces)}]
        }
    mutating: JSON = {
        "apiVersion": MUTATING_WEBHOOK_CONFIGURATIONS.api_version,
        "kind": MUTATING_WEBHOOK_CONFIGURATIONS.kind,
        "metadata": {"name": name, "labels": dict(SELF_LABEL)},
        "webhooks": [
            {
                "name": MUTATE_PODS_WEBHOOK,
                "clientConfig": {"url": base_url + MUTATE_PODS_PATH, "caBundle": ca},
                "rules": [_rule("pods")],
                # A patch only: nothing else changes, dry run or not.
                "sideEffects": "None",
                "reinvocationPolicy": "Never",
                **common,
            }
        ],
    }
    validating: JSON = {
        "apiVersion": VALIDATING_WEBHOOK_CONFIGURATIONS.api_version,
        "kind": VALIDATING_WEBHOOK_CONFIGURATIONS.kind,
        "metadata": {"name": name, "labels": dict(SELF_LABEL)},
        "webhooks": [
            {
                "name": EVICTION_WEBHOOK,
                "clientConfig": {"url": base_url + VALIDATE_EVICTION_PATH, "caBundle": ca},
                "rules": [_rule("pods/eviction")],
                # A refused eviction may start a migration (a PodMigration is created), never on a dry run.
                "sideEffects": "NoneOnDryRun",
                **common,
            }
        ],
    }
    return mutating, validating


def _rule(resource: str) -> JSON:
    return {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": [resource],
        "scope": "Namespaced",
    }


@asynccontextmanager
async def registered(api: KubeApi, *, mutating: JSON, validating: JSON) -> AsyncIterator[None]:
    """Both configurations exist (created, or updated if a process of the same identity left them) until the block
    ends; then they are deleted -- also when the block, or the creation of the second, fails."""
    created: list[tuple[Resource, str, str]] = []
    try:
        for resource, body in (
            (MUTATING_WEBHOOK_CONFIGURATIONS, mutating),
            (VALIDATING_WEBHOOK_CONFIGURATIONS, validating),
        ):
            stored = await api.apply(resource, body, field_manager=FIELD_MANAGER)
            created.append((resource, stored["metadata"]["name"], stored["metadata"]["uid"]))
        log.info("webhooks.registered", names=[name for _, name, _ in created])
        yield
    finally:
        for resource, name, uid in reversed(created):
            await _delete(api, resource, name, uid)


async def _delete(api: KubeApi, resource: Resource, name: str, uid: str) -> None:
    try:
        await api.delete(resource, name, uid=uid)
    except KubeApiError as error:
        if error.status not in (404, 409):  # gone already, or replaced by another writer (uid precondition)
            log.warning("webhooks.unregister_failed", kind=resource.kind, name=name, error=str(error))
            return
    log.info("webhooks.unregistered", kind=resource.kind, name=name)
