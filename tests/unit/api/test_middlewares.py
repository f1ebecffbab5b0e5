"""Request ids, the JSON shape of aiohttp's own errors, metrics and the access log."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import MigrationRequest
from tests.unit.api.conftest import Client
from tests.unit.api.fakes import SEED_BODY, FakeService

pytestmark = pytest.mark.unit


async def test_unknown_route_is_json_404(client: Client) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status == 404
    assert await response.json() == {
        "error": "route_not_found",
        "message": "no route for GET /api/nothing-here",
        "details": {},
    }


async def test_wrong_method_is_json_405_with_allow(client: Client) -> None:
    response = await client.put("/api/migrations", json=SEED_BODY)
    assert response.status == 405
    body = await response.json()
    assert body["error"] == "method_not_allowed"
    assert body["details"] == {"allowed_methods": ["GET", "POST"]}
    assert set(response.headers["Allow"].split(",")) == {"GET", "POST"}
    response = await client.post("/healthz")
    assert (response.status, (await response.json())["error"]) == (405, "method_not_allowed")


@pytest.mark.parametrize("given", ["abc-123", "A.b_C-9", "x" * 128])
async def test_sane_request_id_is_echoed(client: Client, given: str) -> None:
    for path in ("/healthz", "/nowhere"):
        response = await client.get(path, headers={"X-Request-ID": given})
        assert response.headers["X-Request-ID"] == given


@pytest.mark.parametrize("given", [None, "", "x" * 129, "has space", "semi;colon", "ünï"])
async def test_other_request_ids_are_replaced(client: Client, given: str | None) -> None:
    headers = {"X-Request-ID": given} if given is not None else {}
    first = await client.get("/healthz", headers=headers)
    second = await client.get("/healthz", headers=headers)
    ids = {first.headers["X-Request-ID"], second.headers["X-Request-ID"]}
    assert len(ids) == 2
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


async def test_request_id_is_bound_to_the_log_context(
    client: Client, service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []
    original = service.submit

    async def submit(request: MigrationRequest, *, request_id: str | None = None) -> dict[str, Any]:
        seen.append(structlog.contextvars.get_contextvars())
        return await original(request, request_id=request_id)

    monkeypatch.setattr(service, "submit", submit)
    response = await client.post("/api/migrations", json=SEED_BODY, headers={"X-Request-ID": "trace-42"})
    assert response.status == 202
    assert seen[0]["request_id"] == "trace-42"
    assert "request_id" not in structlog.contextvars.get_contextvars()


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                result[tuple(sorted(sample.labels.items()))] = sample.value
    return result


async def test_metrics_endpoint_counts_requests(client: Client, service: FakeService, metrics: Metrics) -> None:
    created = service.add(MigrationRequest("p", "ns", "a", "b"))
    await client.get(f"/api/migrations/{created['migration_id']}")
    await client.get("/api/migrations/doesnotexist")
    await client.get("/no/such/route")
    await client.delete("/healthz")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    counts = samples(await response.text(), "ai_storage_http_requests_total")
    item = "/api/migrations/{migration_id}"
    assert counts[(("code", "200"), ("method", "GET"), ("route", item))] == 1
    assert counts[(("code", "404"), ("method", "GET"), ("route", item))] == 1
    assert counts[(("code", "404"), ("method", "GET"), ("route", "unmatched"))] == 1
    assert counts[(("code", "405"), ("method", "DELETE"), ("route", "unmatched"))] == 1
    again = samples(await (await client.get("/metrics")).text(), "ai_storage_http_requests_total")
    assert again[(("code", "200"), ("method", "GET"), ("route", "/metrics"))] == 1
    durations = samples(await (await client.get("/metrics")).text(), "ai_storage_http_request_duration_seconds_count")
    assert durations[(("method", "GET"), ("route", item))] == 2


async def test_unknown_methods_do_not_grow_label_sets(client: Client, metrics: Metrics) -> None:
    response = await client.request("PROPFIND", "/healthz")
    assert response.status == 405
    value = metrics.registry.get_sample_value(
        "ai_storage_http_requests_total", {"route": "unmatched", "method": "other", "code": "405"}
    )
    assert value == 1


async def test_access_log_line(client: Client) -> None:
    with structlog.testing.capture_logs() as logs:
        await client.get("/api/migrations/unknown1")
    (line,) = [entry for entry in logs if entry["event"] == "http.request"]
    assert line["method"] == "GET"
    assert line["route"] == "/api/migrations/{migration_id}"
    assert line["status"] == 404
    assert isinstance(line["duration_ms"], float)
    assert line["user"] == "anonymous"


async def test_internal_error_is_logged_with_its_traceback(client: Client, service: FakeService) -> None:
    service.error = ZeroDivisionError("boom")
    with structlog.testing.capture_logs() as logs:
        response = await client.post("/api/migrations", json=SEED_BODY)
    assert response.status == 500
    (entry,) = [e for e in logs if e["event"] == "http.internal_error"]
    assert entry["log_level"] == "error"
    assert entry["exc_info"] is True
