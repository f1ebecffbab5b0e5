"""Requests whose body or query a careless handler would misread: a corrupt compressed body is a 400, not a 500; a
query on POST is refused, not ignored (`?dry_run=true` would otherwise move the pod for real)."""

from __future__ import annotations

import json
import zlib

import pytest

from tests.unit.api.conftest import Client
from tests.unit.api.fakes import SEED_BODY, FakeService
from tests.unit.api.test_routes import error_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_corrupt_compressed_body_is_a_400(client: Client, service: FakeService, encoding: str) -> None:
    response = await client.post(
        "/api/migrations",
        data=b"{}",
        headers={"Content-Type": "application/json", "Content-Encoding": encoding},
    )
    body = await error_of(response, 400, "malformed_http_request")
    assert "could not be read" in body["message"]
    assert service.submitted == []


async def test_a_valid_compressed_body_is_read(client: Client, service: FakeService) -> None:
    compressed = zlib.compress(json.dumps(SEED_BODY).encode())
    response = await client.post(
        "/api/migrations",
        data=compressed,
        headers={"Content-Type": "application/json", "Content-Encoding": "deflate"},
    )
    assert response.status == 202, await response.text()
    assert len(service.submitted) == 1


@pytest.mark.parametrize("query", ["dry_run=true", "dryRun=All", "pretty=1&dry_run=1"])
@pytest.mark.parametrize("path", ["/api/migrations", "/api/v1/migrations"])
async def test_a_query_on_post_is_refused_not_ignored(
    client: Client, service: FakeService, path: str, query: str
) -> None:
    response = await client.post(f"{path}?{query}", json=SEED_BODY)
    body = await error_of(response, 400, "invalid_request")
    assert set(body["details"]["fields"]) == {pair.split("=")[0] for pair in query.split("&")}
    assert "dry_run" in body["message"]
    assert service.submitted == []


async def test_the_pods_own_node_as_target_is_an_invalid_request(client: Client, service: FakeService) -> None:
    response = await client.post("/api/migrations", json={**SEED_BODY, "target_node": SEED_BODY["source_node"]})
    body = await error_of(response, 400, "invalid_request")
    assert set(body["details"]["fields"]) == {"target_node"}
    assert "is the source_node" in body["details"]["fields"]["target_node"]
    assert service.submitted == []


async def test_auto_is_never_the_same_node(client: Client, service: FakeService) -> None:
    response = await client.post("/api/migrations", json={**SEED_BODY, "source_node": "auto", "target_node": "auto"})
    assert response.status == 202, await response.text()
