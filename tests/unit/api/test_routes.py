"""Every route and the status codes it answers, through a real HTTP server on 127.0.0.1 and the fake service."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ai_storage_orchestrator.errors import Conflict, NotFound, Unprocessable
from ai_storage_orchestrator.models import MigrationRequest, Phase
from tests.unit.api.conftest import Client
from tests.unit.api.fakes import SEED_BODY, FakeService, finished_status

pytestmark = pytest.mark.unit

ERROR_KEYS = {"error", "message", "details"}


async def error_of(response: Any, status: int, reason: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    assert set(body) == ERROR_KEYS
    assert body["error"] == reason
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def request(**overrides: Any) -> MigrationRequest:
    values: dict[str, Any] = {"pod_name": "trainer", "pod_namespace": "ml", "source_node": "a", "target_node": "b"}
    return MigrationRequest(**{**values, **overrides})


@pytest.mark.parametrize("path", ["/api/migrations", "/api/v1/migrations"])
async def test_seed_request_is_accepted(client: Client, service: FakeService, path: str) -> None:
    response = await client.post(path, json=SEED_BODY, headers={"X-Request-ID": "req-1"})
    assert response.status == 202, await response.text()
    body = await response.json()
    assert response.headers["Location"] == f"/api/migrations/{body['migration_id']}"
    assert body["status"] == "pending"
    assert body["phase"] == "Pending"
    assert {k: body[k] for k in SEED_BODY} == SEED_BODY
    assert body["timeout_seconds"] == 600
    assert body["strategy"] == "auto"
    (submitted, request_id), *_ = service.submitted
    assert submitted.preserve_pv is True
    assert submitted.triggered_by == "api"
    assert request_id == "req-1"


async def test_ignore_pdb_reaches_the_service_and_the_migration_object(client: Client, service: FakeService) -> None:
    response = await client.post("/api/migrations", json={**SEED_BODY, "ignore_pdb": True})
    assert response.status == 202, await response.text()
    assert (await response.json())["ignore_pdb"] is True
    assert service.submitted[-1][0].ignore_pdb is True
    default = await (await client.post("/api/migrations", json={**SEED_BODY, "pod_name": "other"})).json()
    assert default["ignore_pdb"] is False
    assert service.submitted[-1][0].ignore_pdb is False


async def test_ignore_pdb_must_be_a_boolean(client: Client, service: FakeService) -> None:
    response = await client.post("/api/migrations", json={**SEED_BODY, "ignore_pdb": "yes"})
    body = await error_of(response, 400, "invalid_request")
    assert set(body["details"]["fields"]) == {"ignore_pdb"}
    assert service.submitted == []


async def test_timeout_alias(client: Client, service: FakeService) -> None:
    response = await client.post("/api/migrations", json={**SEED_BODY, "timeout": 1200})
    assert response.status == 202
    assert (await response.json())["timeout_seconds"] == 1200
    assert service.submitted[0][0].timeout_seconds == 1200


async def test_conflicting_timeout_alias(client: Client) -> None:
    response = await client.post("/api/migrations", json={**SEED_BODY, "timeout": 5, "timeout_seconds": 6})
    body = await error_of(response, 400, "invalid_request")
    assert set(body["details"]["fields"]) == {"timeout"}


async def test_invalid_fields_are_all_listed(client: Client, service: FakeService) -> None:
    body = {**SEED_BODY, "pod_name": "Bad_Name", "preserve_pv": "true", "timeout_seconds": True, "colour": "red"}
    problem = await error_of(await client.post("/api/migrations", json=body), 400, "invalid_request")
    assert set(problem["details"]["fields"]) == {"pod_name", "preserve_pv", "timeout_seconds", "colour"}
    assert service.submitted == []


@pytest.mark.parametrize("data", [b"{not json", b"[1]", b"", b'{"a": Infinity}', b"\xc3\x28"])
async def test_malformed_json(client: Client, data: bytes) -> None:
    response = await client.post("/api/migrations", data=data, headers={"Content-Type": "application/json"})
    await error_of(response, 400, "invalid_json")


async def test_charset_parameter_is_accepted(client: Client) -> None:
    response = await client.post(
        "/api/migrations",
        data=b'{"pod_name": "p", "pod_namespace": "ns", "source_node": "a", "target_node": "b"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status == 202


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", None])
async def test_wrong_content_type(client: Client, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/api/migrations", data=b'{"pod_name": "p"}', headers=headers)
    await error_of(response, 415, "unsupported_media_type")


async def test_declared_body_over_the_limit(serve: Any) -> None:
    client = await serve(max_body_bytes=1024)
    response = await client.post("/api/migrations", json={**SEED_BODY, "pad": "x" * 2000})
    body = await error_of(response, 413, "payload_too_large")
    assert body["details"] == {"max_body_bytes": 1024}
    assert "X-Request-ID" in response.headers


async def test_chunked_body_over_the_limit(serve: Any) -> None:
    async def chunks() -> Any:
        for _ in range(4):
            yield b" " * 512

    client = await serve(max_body_bytes=1024)
    response = await client.post("/api/migrations", data=chunks(), headers={"Content-Type": "application/json"})
    assert "Content-Length" not in response.request_info.headers
    body = await error_of(response, 413, "payload_too_large")
    assert body["details"]["max_body_bytes"] == 1024


async def test_dry_run_returns_the_plan(client: Client, service: FakeService) -> None:
    response = await client.post("/api/migrations", json={**SEED_BODY, "dry_run": True})
    assert response.status == 200
    assert "Location" not in response.headers
    plan = await response.json()
    assert plan["dry_run"] is True
    assert plan["request"]["pod_name"] == "tensorflow-ai-workload"
    assert plan["request"]["ignore_pdb"] is False
    assert {c["name"]: c["action"] for c in plan["containers"]}["data-processor"] == "skip"
    assert service.submitted == []


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("pod default/x not found", reason="pod_not_found"), 404),
        (Conflict("pod is on node c", reason="pod_not_on_source_node"), 409),
        (Conflict("migration 1 is active", reason="migration_in_progress", details={"migration_id": "1"}), 409),
        (Unprocessable("target node b is cordoned", reason="target_node_cordoned"), 422),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True])
async def test_service_refusals(
    client: Client, service: FakeService, error: Exception, status: int, dry_run: bool
) -> None:
    service.error = error
    response = await client.post("/api/migrations", json={**SEED_BODY, "dry_run": dry_run})
    body = await error_of(response, status, getattr(error, "reason", ""))
    assert body["details"] == getattr(error, "details", None)


async def test_submit_while_not_ready(client: Client, service: FakeService) -> None:
    service.is_ready, service.why = False, "caches not synced yet: Pod"
    await error_of(await client.post("/api/migrations", json=SEED_BODY), 503, "not_ready")


async def test_unexpected_failure_is_a_generic_500(client: Client, service: FakeService) -> None:
    service.error = RuntimeError("secret internals")
    response = await client.post("/api/migrations", json=SEED_BODY)
    body = await error_of(response, 500, "internal_error")
    assert "secret" not in body["message"]
    assert response.headers["X-Request-ID"] in body["message"]


@pytest.mark.parametrize("prefix", ["/api/migrations", "/api/v1/migrations"])
async def test_get_one(client: Client, service: FakeService, prefix: str) -> None:
    created = service.add(request())
    response = await client.get(f"{prefix}/{created['migration_id']}")
    assert response.status == 200
    assert await response.json() == created


@pytest.mark.parametrize("migration_id", ["abcdef012345", "ABC", "a_b", "x" * 64, "%C3%A9"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_unknown_or_impossible_migration_id(client: Client, migration_id: str, method: str) -> None:
    response = await client.request(method, f"/api/migrations/{migration_id}")
    await error_of(response, 404, "migration_not_found")


@pytest.mark.parametrize("prefix", ["/api/migrations", "/api/v1/migrations"])
async def test_list(client: Client, service: FakeService, prefix: str) -> None:
    running = service.add(request(), status={"phase": Phase.WAITING_FOR_TARGET.value})
    service.add(request(pod_name="other", pod_namespace="team"), status=finished_status())
    response = await client.get(prefix)
    assert response.status == 200
    assert (await response.json())["count"] == 2
    response = await client.get(prefix, params={"status": "running", "namespace": "ml", "pod": "trainer"})
    assert await response.json() == {"migrations": [running], "count": 1}
    assert service.listed[-1]["namespace"] == "ml"
    response = await client.get(f"{prefix}?status=&namespace=&pod=")
    assert (await response.json())["count"] == 2


@pytest.mark.parametrize("query", ["status=done", "namespace=Not_Valid", "colour=red", "status=failed&status=running"])
async def test_list_with_invalid_query(client: Client, query: str) -> None:
    await error_of(await client.get(f"/api/migrations?{query}"), 400, "invalid_request")


@pytest.mark.parametrize("prefix", ["/api/migrations", "/api/v1/migrations"])
async def test_cancel(client: Client, service: FakeService, prefix: str) -> None:
    created = service.add(request(), status={"phase": Phase.CREATING_TARGET.value})
    response = await client.delete(f"{prefix}/{created['migration_id']}")
    assert response.status == 202
    body = await response.json()
    assert body["cancel_requested"] is True
    assert body["migration_id"] == created["migration_id"]


async def test_cancel_of_a_finished_migration(client: Client, service: FakeService) -> None:
    created = service.add(request(), status=finished_status())
    await error_of(await client.delete(f"/api/migrations/{created['migration_id']}"), 409, "migration_finished")


async def test_healthz(client: Client, service: FakeService) -> None:
    service.is_ready = False
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_follows_the_service(client: Client, service: FakeService) -> None:
    service.is_ready, service.why = False, "caches not synced yet: Node"
    body = await error_of(await client.get("/readyz"), 503, "not_ready")
    assert body == {"error": "not_ready", "message": "caches not synced yet: Node", "details": {}}
    service.is_ready, service.why = True, "caches synced"
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "message": "caches synced"}


async def test_openapi_document_is_served(client: Client) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    assert (await response.json())["openapi"] == "3.0.3"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"pod_name": None},
        {**SEED_BODY, "pod_name": {"$gt": ""}},
        {**SEED_BODY, "timeout_seconds": 10**100},
        {**SEED_BODY, "timeout_seconds": -(10**100)},
        {**SEED_BODY, "strategy": ["auto"]},
        {**SEED_BODY, "pod_namespace": "\u0000"},
        {**SEED_BODY, "pod_name": "a" * 10_000},
        {"": ""},
        [SEED_BODY],
        "string",
        None,
        1.5,
    ],
)
async def test_client_mistakes_are_never_a_500(client: Client, body: Any) -> None:
    data = json.dumps(body).encode()
    response = await client.post("/api/migrations", data=data, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert set(await response.json()) == ERROR_KEYS
