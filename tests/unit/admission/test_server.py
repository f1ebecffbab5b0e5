"""server.py over HTTP on 127.0.0.1 (TLS is the caller's: runtime.py, and the integration test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ai_storage_orchestrator.admission.ports import ALLOW_EVICTION, JSON, EvictionVerdict
from ai_storage_orchestrator.admission.server import create_webhook_app

Client = TestClient[web.Request, web.Application]
REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {"uid": "u-1", "namespace": "ml", "name": "trainer-0", "object": {"kind": "Pod"}},
}


class PassThroughAdmission:
    """A PodAdmission that admits everything unchanged."""

    def mutate_pod_create(self, pod: JSON, namespace: str) -> list[JSON]:
        return []

    async def review_eviction(self, namespace: str, name: str, *, dry_run: bool) -> EvictionVerdict:
        return ALLOW_EVICTION


@pytest.fixture
async def webhooks() -> AsyncIterator[Client]:
    app = create_webhook_app(PassThroughAdmission(), max_body_bytes=1024)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.mark.parametrize("path", ["/mutate-pods", "/validate-eviction"])
async def test_each_webhook_answers_a_review(webhooks: Client, path: str) -> None:
    answer = await webhooks.post(path, json=REVIEW)
    assert answer.status == 200
    body = await answer.json()
    assert body["response"] == {"uid": "u-1", "allowed": True}
    assert (body["apiVersion"], body["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[]", b'{"apiVersion": "v1"}'])
@pytest.mark.parametrize("path", ["/mutate-pods", "/validate-eviction"])
async def test_a_malformed_body_is_a_400_json_error(webhooks: Client, path: str, body: bytes) -> None:
    answer = await webhooks.post(path, data=body, headers={"Content-Type": "application/json"})
    assert answer.status == 400
    assert (await answer.json())["error"] == "malformed_admission_review"


async def test_a_body_over_the_limit_is_a_413(webhooks: Client) -> None:
    answer = await webhooks.post("/mutate-pods", data=b" " * 2048, headers={"Content-Type": "application/json"})
    assert answer.status == 413
    assert (await answer.json())["error"] == "payload_too_large"


async def test_healthz(webhooks: Client) -> None:
    answer = await webhooks.get("/healthz")
    assert answer.status == 200


async def test_a_corrupt_compressed_review_is_a_400(webhooks: Client) -> None:
    """(A corrupt deflate stream this short is refused by aiohttp's parser before the handler: also a 400.)"""
    answer = await webhooks.post(
        "/mutate-pods", data=b"{}", headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert answer.status == 400
    assert (await answer.json())["error"] == "malformed_admission_review"
