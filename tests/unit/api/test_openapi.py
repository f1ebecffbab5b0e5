"""The OpenAPI document matches the routes, and real responses match the document."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from ai_storage_orchestrator.api.app import create_app
from ai_storage_orchestrator.api.auth import AllowAll, FailureLimiter, KubernetesAuthenticator
from ai_storage_orchestrator.api.openapi import build_openapi
from ai_storage_orchestrator.api.schemas import (
    LIMIT_MAX,
    LIMIT_MIN,
    LIST_PARAMETERS,
    REQUEST_FIELDS,
    parse_migration_request,
)
from ai_storage_orchestrator.errors import Conflict, InvalidRequest, Unprocessable
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import MigrationRequest, Phase
from tests.unit.api.conftest import Client, Serve
from tests.unit.api.fakes import SEED_BODY, FakeReviewApi, FakeService, finished_status
from tests.unit.api.schema_check import errors, resolve, response_schema, unsupported_keywords

pytestmark = pytest.mark.unit

DOCUMENT = build_openapi()
ITEM = "/api/migrations/{migration_id}"
COLLECTION = "/api/migrations"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, item in document["paths"].items() for m in item if m in METHODS}


def app_routes(app: web.Application) -> set[tuple[str, str]]:
    return {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource is not None}


def assert_valid(body: Any, *, method: str, path: str, status: int) -> None:
    schema = response_schema(DOCUMENT, method=method, path=path, status=status)
    assert errors(body, schema, DOCUMENT) == []


def walk(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [*([node["$ref"]] if "$ref" in node else []), *(r for v in node.values() for r in walk(v))]
    if isinstance(node, list):
        return [r for v in node for r in walk(v)]
    return []


def test_every_route_is_documented_and_nothing_else() -> None:
    """Nothing else but the migrations routes with a trailing slash: the document says they answer alike."""
    app = create_app(service=FakeService(), metrics=Metrics(), authenticator=AllowAll())
    documented = operations(DOCUMENT)
    migrations = ("/api/migrations", "/api/v1/migrations")
    slashed = {(method, f"{path}/") for method, path in documented if path.startswith(migrations)}
    assert len(slashed) == 10
    assert app_routes(app) == documented | slashed
    assert len(documented) == 16
    assert "trailing slash" in DOCUMENT["info"]["description"]


def test_document_is_plain_json_with_resolvable_references() -> None:
    assert json.loads(json.dumps(DOCUMENT)) == DOCUMENT
    assert DOCUMENT["openapi"] == "3.0.3"
    for ref in walk(DOCUMENT):
        resolve(DOCUMENT, ref)
    ids = [op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_every_schema_uses_only_supported_keywords() -> None:
    schemas = [
        *DOCUMENT["components"]["schemas"].values(),
        *(p["schema"] for p in DOCUMENT["components"]["parameters"].values()),
    ]
    for schema in schemas:
        assert unsupported_keywords(schema) == []


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("POST", COLLECTION, {200, 202, 400, 401, 403, 404, 409, 413, 415, 422, 429, 503}),
        ("GET", COLLECTION, {200, 400, 401, 403, 429, 503}),
        ("GET", ITEM, {200, 401, 404, 429, 503}),  # no 403: a hidden migration is answered 404, like an unknown one
        ("DELETE", ITEM, {202, 401, 403, 404, 409, 429, 503}),
        ("GET", f"{ITEM}/status", {200, 401, 404, 429, 503}),  # the seed's path: the same as GET of the migration
        ("GET", "/healthz", {200}),
        ("GET", "/health", {200}),
        ("GET", "/api/v1/metrics", {200, 400, 401, 403, 429, 503}),
        ("GET", "/readyz", {200, 503}),
        ("GET", "/metrics", {200}),
        ("GET", "/api/openapi.json", {200}),
    ],
)
@pytest.mark.parametrize("version", ["", "/v1"])
def test_status_codes_of_each_operation(method: str, path: str, codes: set[int], version: str) -> None:
    if path.startswith(COLLECTION):
        path = path.replace("/api", f"/api{version}", 1)
    elif version:
        return
    operation = DOCUMENT["paths"][path][method.lower()]
    assert {int(code) for code in operation["responses"]} == codes
    public = path in ("/healthz", "/health", "/readyz", "/metrics", "/api/openapi.json")
    assert operation["security"] == ([] if public else [{"bearer": []}])


def test_location_header_is_documented() -> None:
    accepted = DOCUMENT["paths"][COLLECTION]["post"]["responses"]["202"]
    assert "Location" in accepted["headers"]


def test_request_schema_matches_the_fields_the_parser_accepts() -> None:
    schema = DOCUMENT["components"]["schemas"]["MigrationRequest"]
    assert schema["additionalProperties"] is False
    # target_node is optional: omitted, null or "auto", the orchestrator chooses the node.
    assert set(schema["required"]) == {"pod_name", "pod_namespace", "source_node"}
    target = schema["properties"]["target_node"]
    assert (target["nullable"], target["default"]) == (True, "auto")
    assert "target_choice" in target["description"]
    full = {
        **SEED_BODY,
        "timeout_seconds": 30,
        "timeout": 30,
        "strategy": "make-before-break",
        "dry_run": True,
        "ignore_pdb": True,
        "force_restart": True,
    }
    assert set(schema["properties"]) == set(full) == set(REQUEST_FIELDS)


def test_list_parameters_are_the_ones_the_parser_knows() -> None:
    for path in (COLLECTION, "/api/v1/migrations"):
        parameters = [resolve(DOCUMENT, p["$ref"]) for p in DOCUMENT["paths"][path]["get"]["parameters"]]
        assert {p["name"] for p in parameters if p["in"] == "query"} == set(LIST_PARAMETERS)
    limit = DOCUMENT["components"]["parameters"]["Limit"]["schema"]
    assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", LIMIT_MIN, LIMIT_MAX)
    listing = DOCUMENT["components"]["schemas"]["MigrationList"]
    assert set(listing["required"]) == {"migrations", "count"}
    assert errors({"migrations": [], "count": 0, "continue": 5}, listing, DOCUMENT) != []


@pytest.mark.parametrize(
    "body",
    [
        SEED_BODY,
        {**SEED_BODY, "timeout": 1, "strategy": "checkpoint-restart", "dry_run": False},
        {**SEED_BODY, "pod_name": "a.b-c", "source_node": "x" * 253, "timeout_seconds": 86400},
        {**SEED_BODY, "ignore_pdb": True},
        {**SEED_BODY, "ignore_pdb": False},
        {**SEED_BODY, "force_restart": True, "timeout": 0},
        {**SEED_BODY, "timeout_seconds": 0},
        {key: value for key, value in SEED_BODY.items() if key != "target_node"},  # the orchestrator chooses
        {**SEED_BODY, "target_node": None},
        {**SEED_BODY, "target_node": "auto"},
    ],
)
def test_valid_bodies_pass_both(body: dict[str, Any]) -> None:
    assert errors(body, resolve(DOCUMENT, "#/components/schemas/MigrationRequest"), DOCUMENT) == []
    parse_migration_request(body)


@pytest.mark.parametrize(
    "body",
    [
        {**SEED_BODY, "pod_name": "UPPER"},
        {**SEED_BODY, "pod_namespace": "a.b"},
        {**SEED_BODY, "pod_namespace": "n" * 64},
        {**SEED_BODY, "target_node": "x" * 254},
        {**SEED_BODY, "preserve_pv": "true"},
        {**SEED_BODY, "preserve_pv": 1},
        {**SEED_BODY, "timeout_seconds": True},
        {**SEED_BODY, "timeout_seconds": -1},
        {**SEED_BODY, "timeout": 86401},
        {**SEED_BODY, "strategy": "fast"},
        {**SEED_BODY, "dry_run": None},
        {**SEED_BODY, "ignore_pdb": "true"},
        {**SEED_BODY, "ignore_pdb": 0},
        {**SEED_BODY, "ignorePDB": True},
        {**SEED_BODY, "extra": 1},
        {key: value for key, value in SEED_BODY.items() if key != "source_node"},
        {**SEED_BODY, "target_node": ""},
        {**SEED_BODY, "target_node": 7},
    ],
)
def test_invalid_bodies_fail_both(body: dict[str, Any]) -> None:
    assert errors(body, resolve(DOCUMENT, "#/components/schemas/MigrationRequest"), DOCUMENT) != []
    with pytest.raises(InvalidRequest):
        parse_migration_request(body)


async def test_real_responses_match_the_document(serve: Serve, service: FakeService) -> None:
    client: Client = await serve(max_body_bytes=2048)
    migration: MigrationRequest = MigrationRequest("trainer", "ml", "a", "b")
    completed = service.add(migration, status=finished_status())
    failed = service.add(migration, status=finished_status(Phase.FAILED))
    running = service.add(migration, status={"phase": Phase.WAITING_FOR_TARGET.value, "message": "waiting"})

    async def check(method: str, url: str, path: str, status: int, **kwargs: Any) -> Any:
        response = await client.request(method, url, **kwargs)
        assert response.status == status, await response.text()
        body = await response.json()
        assert_valid(body, method=method, path=path, status=status)
        return body

    await check("POST", COLLECTION, COLLECTION, 202, json=SEED_BODY)
    await check("POST", "/api/v1/migrations", "/api/v1/migrations", 202, json={**SEED_BODY, "timeout": 60})
    plan = await check("POST", COLLECTION, COLLECTION, 200, json={**SEED_BODY, "dry_run": True})
    assert plan["checkpoint_volume"] is not None
    plan = await check("POST", COLLECTION, COLLECTION, 200, json={**SEED_BODY, "dry_run": True, "ignore_pdb": True})
    assert plan["request"]["ignore_pdb"] is True
    unbudgeted = await check("POST", COLLECTION, COLLECTION, 202, json={**SEED_BODY, "ignore_pdb": True})
    assert unbudgeted["ignore_pdb"] is True
    await check("POST", COLLECTION, COLLECTION, 400, json={**SEED_BODY, "pod_name": 1})
    await check("POST", COLLECTION, COLLECTION, 400, data=b"{", headers={"Content-Type": "application/json"})
    await check("POST", COLLECTION, COLLECTION, 413, json={**SEED_BODY, "pad": "x" * 4096})
    await check("POST", COLLECTION, COLLECTION, 415, data=b"{}")
    for item in (completed, failed, running):
        await check("GET", f"{COLLECTION}/{item['migration_id']}", ITEM, 200)
        await check("GET", f"/api/v1/migrations/{item['migration_id']}/status", f"/api/v1{ITEM[4:]}/status", 200)
    assert (await check("GET", f"{COLLECTION}/{failed['migration_id']}", ITEM, 200))["error"] is not None
    listing = await check("GET", f"{COLLECTION}?status=completed", COLLECTION, 200)
    assert listing["count"] == 1
    paged = await check("GET", f"{COLLECTION}?limit=1", COLLECTION, 200)
    assert paged["count"] == 1
    last = await check("GET", f"{COLLECTION}?limit=1000&continue={paged['continue']}", COLLECTION, 200)
    assert "continue" not in last
    bad_token = await check("GET", f"{COLLECTION}?limit=1&continue=nope", COLLECTION, 400)
    assert bad_token["error"] == "invalid_continue"
    await check("GET", f"{COLLECTION}?status=nope", COLLECTION, 400)
    await check("GET", f"{COLLECTION}/000000000fff", ITEM, 404)
    await check("DELETE", f"{COLLECTION}/{running['migration_id']}", ITEM, 202)
    await check("DELETE", f"{COLLECTION}/{completed['migration_id']}", ITEM, 409)
    await check("GET", "/healthz", "/healthz", 200)
    health = await check("GET", "/health", "/health", 200)
    assert health["status"] == "healthy"
    await check("GET", "/api/v1/metrics", "/api/v1/metrics", 200)
    await check("GET", "/api/v1/metrics?x=1", "/api/v1/metrics", 400)
    await check("GET", "/readyz", "/readyz", 200)
    await check("GET", "/api/openapi.json", "/api/openapi.json", 200)
    service.error = Conflict("migration 1 is active", reason="migration_in_progress", details={"migration_id": "1"})
    await check("POST", COLLECTION, COLLECTION, 409, json=SEED_BODY)
    service.error = Unprocessable("node b is cordoned", reason="target_node_cordoned")
    await check("POST", COLLECTION, COLLECTION, 422, json=SEED_BODY)
    service.is_ready = False
    await check("GET", "/readyz", "/readyz", 503)
    await check("POST", COLLECTION, COLLECTION, 503, json=SEED_BODY)


async def test_a_real_429_matches_the_document(serve: Serve) -> None:
    limiter = FailureLimiter(burst=1)
    client: Client = await serve(
        authenticator=KubernetesAuthenticator(FakeReviewApi(users={}, grants=set()), limiter=limiter)
    )
    assert (await client.get(COLLECTION)).status == 401
    for method, url, path in (("GET", COLLECTION, COLLECTION), ("DELETE", f"{COLLECTION}/000000000fff", ITEM)):
        response = await client.request(method, url)
        assert response.status == 429
        assert_valid(await response.json(), method=method, path=path, status=429)
        assert int(response.headers["Retry-After"]) >= 1
    assert "Retry-After" in DOCUMENT["components"]["responses"]["Error429"]["headers"]


def test_validator_catches_mismatches() -> None:
    migration = FakeService().add(MigrationRequest("p", "ns", "a", "b"))
    schema = resolve(DOCUMENT, "#/components/schemas/Migration")
    assert errors(migration, schema, DOCUMENT) == []
    assert errors({**migration, "status": "done"}, schema, DOCUMENT) != []
    assert errors({**migration, "preserve_pv": "no"}, schema, DOCUMENT) != []
    assert errors({k: v for k, v in migration.items() if k != "ignore_pdb"}, schema, DOCUMENT) != []
    assert errors({k: v for k, v in migration.items() if k != "phase"}, schema, DOCUMENT) != []
    assert errors({**migration, "new_pod_name": None}, schema, DOCUMENT) == []
    assert errors({**migration, "migration_id": None}, schema, DOCUMENT) != []
