"""k8s/webhooks: the orchestrator of k8s/ plus its admission webhooks passes a server-side dry-run apply against the
real API server, and its webhooks are the ones `serve --webhooks self` registers, behind the Service instead of a
URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from ai_storage_orchestrator.admission.registration import (
    MUTATING_WEBHOOK_CONFIGURATIONS,
    VALIDATING_WEBHOOK_CONFIGURATIONS,
    webhook_configurations,
)
from ai_storage_orchestrator.kube.resources import KubeApi
from tests.integration.test_manifests import KINDS, _kustomize

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "k8s" / "webhooks"
WEBHOOK_KINDS = {
    **KINDS,
    "MutatingWebhookConfiguration": MUTATING_WEBHOOK_CONFIGURATIONS,
    "ValidatingWebhookConfiguration": VALIDATING_WEBHOOK_CONFIGURATIONS,
}


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


async def test_the_webhook_overlay_passes_server_side_dry_run(api: client.ApiClient) -> None:
    kube = KubeApi(api)
    for obj in _kustomize(OVERLAY):
        applied = await kube.apply(WEBHOOK_KINDS[obj["kind"]], obj, field_manager="manifest-test", dry_run=True)
        assert applied["metadata"]["name"] == obj["metadata"]["name"]


def test_the_overlay_adds_the_webhooks_to_the_default_deploy_and_nothing_else() -> None:
    default, overlay = _kustomize(ROOT / "k8s"), _kustomize(OVERLAY)
    added = {(o["kind"], o["metadata"]["name"]) for o in overlay} - {
        (o["kind"], o["metadata"]["name"]) for o in default
    }
    assert added == {
        ("MutatingWebhookConfiguration", "ai-storage-orchestrator"),
        ("ValidatingWebhookConfiguration", "ai-storage-orchestrator"),
    }
    [container] = _one(overlay, "Deployment")["spec"]["template"]["spec"]["containers"]
    [default_container] = _one(default, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [
        *default_container["args"],
        "--webhooks=external",
        "--webhook-port=8443",
        "--webhook-tls-cert-file=/webhook-tls/tls.crt",
        "--webhook-tls-key-file=/webhook-tls/tls.key",
    ]
    assert {"name": "webhook", "containerPort": 8443} in container["ports"]
    service_ports = _one(overlay, "Service")["spec"]["ports"]
    assert {"name": "webhook", "port": 443, "targetPort": "webhook"} in service_ports
    [ingress] = _one(overlay, "NetworkPolicy")["spec"]["ingress"]
    assert {"protocol": "TCP", "port": 8443} in ingress["ports"]


def test_the_shipped_webhooks_are_those_serve_registers_itself() -> None:
    overlay = _kustomize(OVERLAY)
    service = _one(overlay, "Service")["metadata"]
    registered = webhook_configurations(name="x", base_url="https://127.0.0.1:8443", ca_bundle=b"ca")
    for shipped, own in zip(
        (_one(overlay, "MutatingWebhookConfiguration"), _one(overlay, "ValidatingWebhookConfiguration")),
        registered,
        strict=True,
    ):
        [webhook] = shipped["webhooks"]
        [own_webhook] = own["webhooks"]
        assert webhook["clientConfig"]["service"] == {
            "name": service["name"],
            "namespace": service["namespace"],
            "port": 443,
            "path": own_webhook["clientConfig"]["url"].removeprefix("https://127.0.0.1:8443"),
        }
        assert {k: v for k, v in webhook.items() if k != "clientConfig"} == {
            k: v for k, v in own_webhook.items() if k != "clientConfig"
        }
        assert shipped["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "kube-system/" + (
            "ai-storage-orchestrator-webhook"
        )
