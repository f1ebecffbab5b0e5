"""The admission webhooks as `serve --webhooks self` runs them, called by the real kube-apiserver: the HTTPS server of
admission/server.py with the self-signed pair of admission/selfsigned.py, registered by admission/registration.py.

A tiny PodAdmission stands in for the orchestrator's decisions: it labels pods that carry an annotation and refuses
the eviction of one pod with 429. The configurations are limited to the test's namespace, so that no other test of the
session is ever sent to them. The second test runs the same through runtime.admission_webhooks, as `serve` does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, cast

import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.admission import selfsigned
from ai_storage_orchestrator.admission.ports import ALLOW_EVICTION, JSON, EvictionVerdict
from ai_storage_orchestrator.admission.registration import (
    MUTATING_WEBHOOK_CONFIGURATIONS,
    VALIDATING_WEBHOOK_CONFIGURATIONS,
    configuration_name,
    registered,
    webhook_configurations,
)
from ai_storage_orchestrator.admission.server import create_webhook_app, serving
from ai_storage_orchestrator.api.tls import server_context
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import PODS, KubeApi
from ai_storage_orchestrator.kube.retrying import NO_RETRIES
from ai_storage_orchestrator.runtime import Orchestrator, admission_webhooks
from ai_storage_orchestrator.settings import WebhookMode
from tests.cluster.impersonation import poll_until

ANNOTATION = "webhook-test.ai-storage.io/capture"
LABEL = "captured"
REFUSED = "refused"
MESSAGE = "refused is moving to sim-node-1: migration 455f2b4c6538"
WAIT = 30.0


class LabelAndRefuse:
    """PodAdmission: labels the pods annotated ANNOTATION=true, refuses the eviction of the pod REFUSED."""

    def __init__(self) -> None:
        self.mutations: list[str] = []
        self.evictions: list[tuple[str, str, bool]] = []

    def mutate_pod_create(self, pod: JSON, namespace: str) -> list[JSON]:
        metadata = pod.get("metadata") or {}
        self.mutations.append(metadata.get("name", ""))
        if (metadata.get("annotations") or {}).get(ANNOTATION) != "true":
            return []
        if not metadata.get("labels"):
            return [{"op": "add", "path": "/metadata/labels", "value": {LABEL: "yes"}}]
        return [{"op": "add", "path": f"/metadata/labels/{LABEL}", "value": "yes"}]

    async def review_eviction(self, namespace: str, name: str, *, dry_run: bool) -> EvictionVerdict:
        self.evictions.append((namespace, name, dry_run))
        return EvictionVerdict(allowed=False, message=MESSAGE) if name == REFUSED else ALLOW_EVICTION


def _pod(name: str, *, captured: bool = False) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {ANNOTATION: "true"} if captured else {}},
        "spec": {"containers": [{"name": "c", "image": "registry.example/c:1"}]},
    }


async def _captures(kube: KubeApi, namespace: str) -> bool:
    """Whether a pod created now (a dry run: nothing is stored) would go through the mutating webhook."""
    probe = _pod("probe", captured=True)
    probe["metadata"]["namespace"] = namespace
    created = await kube.apply(PODS, probe, field_manager="webhook-test", dry_run=True)
    return (created["metadata"].get("labels") or {}).get(LABEL) == "yes"


async def _released(kube: KubeApi, namespace: str) -> bool:
    return not await _captures(kube, namespace)


@pytest.fixture
async def webhook_server() -> AsyncIterator[tuple[LabelAndRefuse, int, bytes, AsyncExitStack]]:
    """The webhooks served on 127.0.0.1 over HTTPS (a free port); the stack stops the server (the test may stop it
    earlier)."""
    admission = LabelAndRefuse()
    pair = selfsigned.issue("127.0.0.1")
    with selfsigned.written(pair) as files:
        context = server_context(files.cert_file, files.key_file)
    async with AsyncExitStack() as stack:
        port = await stack.enter_async_context(
            serving(create_webhook_app(admission), host="127.0.0.1", port=0, ssl_context=context)
        )
        yield admission, port, pair.ca_pem, stack


async def test_the_api_server_calls_the_self_registered_webhooks_and_ignores_them_when_down(
    api: client.ApiClient, namespace: str, webhook_server: tuple[LabelAndRefuse, int, bytes, AsyncExitStack]
) -> None:
    admission, port, ca, server = webhook_server
    kube = KubeApi(api, retry_policy=NO_RETRIES)  # a refused eviction's 429 is the answer, not throttling
    name = configuration_name(f"test-{namespace}")
    mutating, validating = webhook_configurations(
        name=name, base_url=f"https://127.0.0.1:{port}", ca_bundle=ca, namespaces=(namespace,)
    )

    async with registered(kube, mutating=mutating, validating=validating):
        await poll_until(lambda: _captures(kube, namespace), timeout=WAIT, what="the mutating webhook in force")

        # Pod CREATE: the patch is applied, only where the PodAdmission says so.
        captured = await kube.create(PODS, _pod("captured", captured=True), namespace=namespace)
        assert captured["metadata"]["labels"] == {LABEL: "yes"}
        plain = await kube.create(PODS, _pod("plain"), namespace=namespace)
        assert not plain["metadata"].get("labels")
        assert {"captured", "plain"} <= set(admission.mutations)

        # Eviction: refused with 429 TooManyRequests and the message (kubectl drain retries), the pod stays.
        await kube.create(PODS, _pod(REFUSED), namespace=namespace)
        with pytest.raises(KubeApiError) as refused:
            await kube.evict(REFUSED, namespace=namespace)
        assert (refused.value.status, refused.value.reason) == (429, "TooManyRequests")
        assert MESSAGE in refused.value.message
        assert admission.evictions == [(namespace, REFUSED, False)]
        await kube.get(PODS, REFUSED, namespace=namespace)

        # A dry-run eviction reaches the webhook as one.
        eviction: dict[str, Any] = {"metadata": {"name": REFUSED, "namespace": namespace}}
        with pytest.raises(client.ApiException) as dry:
            await client.CoreV1Api(api).create_namespaced_pod_eviction(
                REFUSED, namespace, cast(client.V1Eviction, eviction), dry_run="All"
            )
        assert dry.value.status == 429
        assert admission.evictions[-1] == (namespace, REFUSED, True)

        # Any other eviction goes ahead.
        await kube.evict("plain", namespace=namespace)
        assert admission.evictions[-1] == (namespace, "plain", False)

    # Unregistered: both configurations are gone and the API server stops calling the webhooks.
    for resource in (MUTATING_WEBHOOK_CONFIGURATIONS, VALIDATING_WEBHOOK_CONFIGURATIONS):
        with pytest.raises(KubeApiError) as gone:
            await kube.get(resource, name)
        assert gone.value.not_found
    await poll_until(lambda: _released(kube, namespace), timeout=WAIT, what="the mutating webhook removed")
    mutations, evictions = len(admission.mutations), len(admission.evictions)
    after = await kube.create(PODS, _pod("after", captured=True), namespace=namespace)
    assert not after["metadata"].get("labels")
    await kube.evict(REFUSED, namespace=namespace)
    assert (len(admission.mutations), len(admission.evictions)) == (mutations, evictions)

    # Registered again, then the server stops: failurePolicy Ignore creates the pod (and evicts) as Kubernetes would.
    async with registered(kube, mutating=mutating, validating=validating):
        await poll_until(lambda: _captures(kube, namespace), timeout=WAIT, what="the mutating webhook in force")
        await server.aclose()
        down = await kube.create(PODS, _pod("while-down", captured=True), namespace=namespace)
        assert not down["metadata"].get("labels")
        await kube.evict("while-down", namespace=namespace)


@pytest.mark.parametrize("orchestrator_overrides", [{"webhooks": WebhookMode.SELF, "webhook_port": 0}])
async def test_serve_webhooks_self_registers_for_its_namespace_and_removes_them_on_exit(
    api: client.ApiClient, namespace: str, orchestrator: Orchestrator
) -> None:
    kube = KubeApi(api, retry_policy=NO_RETRIES)
    name = configuration_name(orchestrator.settings.identity)
    async with admission_webhooks(orchestrator):
        for resource in (MUTATING_WEBHOOK_CONFIGURATIONS, VALIDATING_WEBHOOK_CONFIGURATIONS):
            [webhook] = (await kube.get(resource, name))["webhooks"]
            assert webhook["clientConfig"]["url"].startswith("https://127.0.0.1:")
            assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == [namespace]
        # Orchestrator.pod_admission() leaves a pod no migration waits for as it was sent.
        pod = await kube.create(PODS, _pod("unchanged", captured=True), namespace=namespace)
        assert not pod["metadata"].get("labels")
    for resource in (MUTATING_WEBHOOK_CONFIGURATIONS, VALIDATING_WEBHOOK_CONFIGURATIONS):
        with pytest.raises(KubeApiError) as gone:
            await kube.get(resource, name)
        assert gone.value.not_found
