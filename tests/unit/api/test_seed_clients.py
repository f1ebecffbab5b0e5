"""The seed's original clients work unchanged (DESIGN.md §3, "Compatibility with the seed's original clients"): they
find fields with ``grep '"migration_id":"<id>"'``, poll ``/api/v1/migrations/<id>`` and ``.../status`` (with or
without a trailing slash), read a ``details`` block and ``/api/v1/metrics``, call ``/health``, and send
``force_restart`` and ``timeout: 0``."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from ai_storage_orchestrator import __version__
from ai_storage_orchestrator.api.app import create_app
from ai_storage_orchestrator.api.auth import AllowAll, KubernetesAuthenticator
from ai_storage_orchestrator.api.middlewares import compact_dumps
from ai_storage_orchestrator.api.schemas import parse_migration_request
from ai_storage_orchestrator.checkpoint import parse_checkpoint_annotations
from ai_storage_orchestrator.controller.planner import Planner
from ai_storage_orchestrator.controller.records import (
    FORCE_RESTART,
    FORCE_RESTART_ANNOTATION,
    WARNINGS_ANNOTATION,
    migration_resource,
    request_of,
    to_api,
)
from ai_storage_orchestrator.controller.service import MigrationService
from ai_storage_orchestrator.errors import Unprocessable
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import DEFAULT_TIMEOUT, MigrationRequest, Phase
from tests.unit.api.conftest import Client, Serve
from tests.unit.api.fakes import SEED_BODY, FakeReviewApi, FakeService, finished_status
from tests.unit.api.schema_check import errors
from tests.unit.api.test_real_service import RecordingApi, seed_cluster

pytestmark = pytest.mark.unit

# What `grep '"key":'` needs: no whitespace anywhere outside strings.
SPACE_OUTSIDE_STRINGS = re.compile(r'^(?:[^"\s]|"(?:[^"\\]|\\.)*")*\s')


def is_compact(text: str) -> bool:
    return SPACE_OUTSIDE_STRINGS.match(text) is None


def test_the_space_detector_sees_spaces_only_outside_strings() -> None:
    assert is_compact('{"a":"x y","b":[1,2]}')
    assert not is_compact('{"a": 1}')
    assert not is_compact('{"a":1, "b":2}')
    assert not is_compact('{"a":"\\"", "b":2}')


def test_compact_dumps_has_no_separating_spaces() -> None:
    assert compact_dumps({"migration_id": "abc", "n": [1, 2], "o": {"k": None}}) == (
        '{"migration_id":"abc","n":[1,2],"o":{"k":null}}'
    )


async def _text(response: Any, status: int) -> str:
    text: str = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json"
    assert is_compact(text), text
    return text


async def test_every_json_answer_is_compact(client: Client, service: FakeService) -> None:
    created = await _text(await client.post("/api/v1/migrations", json=SEED_BODY), 202)
    found = re.search(r'"migration_id":"([a-z0-9-]+)"', created)
    assert found is not None, "the seed's grep finds the id"
    migration_id = found.group(1)
    assert json.loads(created)["migration_id"] == migration_id
    await _text(await client.post("/api/migrations", json={**SEED_BODY, "dry_run": True}), 200)
    for path in (
        f"/api/v1/migrations/{migration_id}",
        f"/api/migrations/{migration_id}",
        "/api/migrations",
        "/api/migrations?limit=1",
        f"/api/v1/migrations/{migration_id}/status",
        "/healthz",
        "/health",
        "/readyz",
        "/api/openapi.json",
    ):
        await _text(await client.get(path), 200)
    await _text(await client.delete(f"/api/migrations/{migration_id}"), 202)
    # Error answers of every origin: the validators, the service, aiohttp's own, and the readiness probe.
    await _text(await client.post("/api/migrations", json={**SEED_BODY, "pod_name": "X"}), 400)
    await _text(await client.get("/api/migrations/0123456789ab"), 404)
    await _text(await client.get("/no/such/route"), 404)
    await _text(await client.put("/api/migrations"), 405)
    service.error = Unprocessable("target node b is cordoned", reason="target_node_cordoned")
    await _text(await client.post("/api/migrations", json=SEED_BODY), 422)
    service.is_ready = False
    await _text(await client.get("/readyz"), 503)


def request(**overrides: Any) -> MigrationRequest:
    values: dict[str, Any] = {"pod_name": "trainer", "pod_namespace": "ml", "source_node": "a", "target_node": "b"}
    return MigrationRequest(**{**values, **overrides})


async def test_health_answers_the_seeds_body_and_healthz_stays(client: Client, service: FakeService) -> None:
    service.is_ready = False  # liveness, both of them: not readiness
    health, healthz = await client.get("/health"), await client.get("/healthz")
    assert (health.status, await health.json()) == (
        200,
        {"status": "healthy", "service": "ai-storage-orchestrator", "version": __version__},
    )
    assert (healthz.status, await healthz.read()) == (200, b'{"status":"ok"}')


@pytest.mark.parametrize("prefix", ["/api/v1/migrations", "/api/migrations"])
async def test_status_path_answers_the_migration_object(client: Client, service: FakeService, prefix: str) -> None:
    created = service.add(request(), status=finished_status())
    migration_id = created["migration_id"]
    polled = await client.get(f"{prefix}/{migration_id}/status")
    assert polled.status == 200
    body = await polled.json()
    assert body == await (await client.get(f"{prefix}/{migration_id}")).json() == created
    assert created["status"] == "completed"
    # The seed's getMigrationStatus fields, at the top level, beside the rest of the object.
    assert (body["start_time"], body["end_time"], body["duration_seconds"]) == (
        "2024-05-01T10:01:00.000000Z",
        "2024-05-01T10:01:03.500000Z",
        3.5,
    )
    running_id = service.add(request(pod_name="other"), status={"phase": Phase.CHECKPOINTING.value})["migration_id"]
    running = await (await client.get(f"{prefix}/{running_id}/status")).json()
    assert running["start_time"] == running["created_at"] is not None
    assert "end_time" not in running  # the seed wrote it only once the migration had ended
    unknown = await client.get(f"{prefix}/0123456789ab/status")
    assert (unknown.status, (await unknown.json())["error"]) == (404, "migration_not_found")
    impossible = await client.get(f"{prefix}/NOT_AN_ID/status")
    assert impossible.status == 404
    refused = await client.delete(f"{prefix}/{migration_id}/status")
    assert (refused.status, (await refused.json())["error"]) == (405, "method_not_allowed")


async def test_status_path_has_the_authorization_of_get(serve: Serve, service: FakeService) -> None:
    """alice may get pods in `ml`, bob nowhere: for bob the migration is as unknown as an id that does not exist."""
    reviews = FakeReviewApi(
        users={"alice-token": {"username": "alice"}, "bob-token": {"username": "bob"}},
        grants={("alice", "get", "ml")},
    )
    client = await serve(authenticator=KubernetesAuthenticator(reviews))
    migration_id = service.add(request(), status={"phase": Phase.CHECKPOINTING.value})["migration_id"]
    path = f"/api/v1/migrations/{migration_id}/status"
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers={"Authorization": "Bearer alice-token"})).status == 200
    hidden = await client.get(path, headers={"Authorization": "Bearer bob-token"})
    unknown = await client.get("/api/v1/migrations/abcdef000000/status", headers={"Authorization": "Bearer bob-token"})
    assert hidden.status == unknown.status == 404
    hidden_body, unknown_body = await hidden.json(), await unknown.json()
    assert hidden_body == {**unknown_body, "message": unknown_body["message"].replace("abcdef000000", migration_id)}
    asked = [b["spec"]["resourceAttributes"] for k, b in reviews.calls if k == "SubjectAccessReview"]
    assert [(a["verb"], a.get("namespace")) for a in asked] == [("get", "ml"), ("get", "ml"), ("get", None)]


def test_details_block_of_a_finished_migration() -> None:
    service = FakeService()
    status = finished_status()
    status["containers"] += [
        {"name": "failed-one", "state": "terminated (exit 2, Error)"},
        {"name": "killed", "state": "terminated (exit 137, OOMKilled)"},
        {"name": "exit-0", "state": "terminated (exit 0, no reason)"},
        {"name": "crashing", "state": "waiting (CrashLoopBackOff)"},
        {"name": "new", "state": "unknown"},
        {"name": "garbled", "state": None},
    ]
    migration = service.add(request(), status=status, created="2024-05-01T10:00:59Z")
    assert migration["details"] == {
        "new_pod_name": "tensorflow-ai-workload-migrated-0123456789ab",
        "start_time": "2024-05-01T10:01:00.000000Z",
        "end_time": "2024-05-01T10:01:03.500000Z",
        "duration": 3_500_000_000,  # Go's time.Duration: nanoseconds
        "container_states": [
            {"name": "trainer", "state": "running", "restart_count": None, "should_migrate": True},
            {"name": "data-processor", "state": "completed", "restart_count": None, "should_migrate": False},
            {"name": "failed-one", "state": "failed", "restart_count": None, "should_migrate": True},
            {"name": "killed", "state": "failed", "restart_count": None, "should_migrate": True},
            {"name": "exit-0", "state": "completed", "restart_count": None, "should_migrate": True},
            {"name": "crashing", "state": "waiting", "restart_count": None, "should_migrate": True},
            {"name": "new", "state": "unknown", "restart_count": None, "should_migrate": True},
            {"name": "garbled", "state": "unknown", "restart_count": None, "should_migrate": True},
        ],
    }
    assert migration["duration_seconds"] == 3.5
    assert migration["details"]["duration"] == migration["duration_seconds"] * 1e9
    assert migration["details"]["new_pod_name"] == migration["new_pod_name"]


def test_details_duration_is_exact_nanoseconds_and_restart_counts_are_read_when_recorded() -> None:
    status = finished_status()
    status["finishedAt"] = "2024-05-01T10:01:03.123456Z"
    status["containers"][0]["restartCount"] = 3
    status["containers"][1]["restartCount"] = "3"  # not a count: null (not measured), never an invented one
    migration = FakeService().add(request(), status=status)
    assert migration["details"]["duration"] == 3_123_456_000
    assert migration["duration_seconds"] == 3.123
    assert [c["restart_count"] for c in migration["details"]["container_states"]] == [3, None]


def test_details_block_before_the_controller_wrote_anything() -> None:
    """The seed set start_time when it created the migration: ours is the creation until startedAt is written."""
    migration = FakeService().add(request(), created="2024-05-01T09:59:00Z")
    assert migration["details"] == {
        "new_pod_name": None,
        "start_time": "2024-05-01T09:59:00Z",
        "end_time": None,
        "duration": None,
        "container_states": [],
    }
    assert (migration["start_time"], migration["started_at"]) == ("2024-05-01T09:59:00Z", None)
    assert "end_time" not in migration


async def test_details_block_is_served_and_documented(client: Client, service: FakeService) -> None:
    migration_id = service.add(request(), status=finished_status())["migration_id"]
    text = await _text(await client.get(f"/api/v1/migrations/{migration_id}"), 200)
    assert (
        '"container_states":[{"name":"trainer","state":"running","restart_count":null,"should_migrate":true},'
        '{"name":"data-processor","state":"completed","restart_count":null,"should_migrate":false}]'
    ) in text
    assert '"duration":3500000000,' in text
    document = await (await client.get("/api/openapi.json")).json()
    migration = json.loads(text)
    schema = document["components"]["schemas"]["Migration"]
    assert errors(migration, schema, document) == []
    assert errors({**migration, "details": {**migration["details"], "duration": 3.5}}, schema, document) != []
    assert errors({**migration, "details": {**migration["details"], "container_states": {"a": "x"}}}, schema, document)
    wrong_state = [{"name": "a", "state": "x", "restart_count": None, "should_migrate": True}]
    assert errors({**migration, "details": {**migration["details"], "container_states": wrong_state}}, schema, document)
    # The error body keeps its own `details` (the problem's data): a different thing under the same name.
    error = await (await client.get("/api/v1/migrations/0123456789ab/status")).json()
    assert set(error) == {"error", "message", "details"}


@pytest.mark.parametrize("field", ["timeout", "timeout_seconds"])
async def test_timeout_zero_is_the_default(client: Client, service: FakeService, field: str) -> None:
    response = await client.post("/api/v1/migrations", json={**SEED_BODY, field: 0})
    assert response.status == 202, await response.text()
    assert (await response.json())["timeout_seconds"] == DEFAULT_TIMEOUT == 600
    assert service.submitted[-1][0].timeout_seconds == DEFAULT_TIMEOUT
    both = await client.post("/api/v1/migrations", json={**SEED_BODY, "timeout": 0, "timeout_seconds": 0})
    assert (both.status, (await both.json())["details"]["fields"]) == (400, {"timeout": ANY})


async def test_force_restart_is_accepted_recorded_and_shown(client: Client, service: FakeService) -> None:
    response = await client.post("/api/v1/migrations", json={**SEED_BODY, "force_restart": True, "timeout": 0})
    assert response.status == 202, await response.text()
    shown = await response.json()
    assert shown["force_restart"] is True
    record = service.migrations[shown["migration_id"]]
    assert record["metadata"]["annotations"][FORCE_RESTART_ANNOTATION] == "true"
    assert request_of(record).extra == {FORCE_RESTART: "true"}
    polled = await (await client.get(f"/api/v1/migrations/{shown['migration_id']}/status")).json()
    assert polled["force_restart"] is True
    plain = await (await client.post("/api/migrations", json={**SEED_BODY, "force_restart": False})).json()
    assert plain["force_restart"] is False
    assert "annotations" not in service.migrations[plain["migration_id"]]["metadata"]
    refused = await client.post("/api/migrations", json={**SEED_BODY, "force_restart": "yes"})
    assert (refused.status, (await refused.json())["details"]["fields"]) == (400, {"force_restart": ANY})


def test_force_restart_does_not_change_the_plan() -> None:
    service = FakeService()
    plain = service.dry_run(parse_migration_request(SEED_BODY))
    forced = service.dry_run(parse_migration_request({**SEED_BODY, "force_restart": True}))
    assert forced["containers"] == plain["containers"]
    assert [c["action"] for c in plain["containers"]] == ["migrate", "skip", "migrate"]


def test_warnings_are_recorded_and_shown() -> None:
    said = ["preserve_pv was requested, but there is nothing shared."]
    record = migration_resource(request(), "0123456789ab", warnings=said)
    assert json.loads(record["metadata"]["annotations"][WARNINGS_ANNOTATION]) == said
    assert to_api(record)["warnings"] == said
    assert to_api(migration_resource(request(), "0123456789ab"))["warnings"] == []
    for unreadable in ("[", '{"a": 1}', "3"):
        record["metadata"]["annotations"][WARNINGS_ANNOTATION] = unreadable
        assert to_api(record)["warnings"] == []


async def test_preserve_pv_without_a_shared_volume_through_the_real_service() -> None:
    """The seed's demo sends preserve_pv for a pod with no volume at all: 200/202 with the warning, which the
    record keeps for every later GET (and /status)."""
    api = RecordingApi()
    state = seed_cluster()
    pod = state.pod("default", "tensorflow-ai-workload")
    assert pod is not None
    bare = copy.deepcopy(pod)
    bare["spec"]["volumes"] = [{"name": "shared-data", "emptyDir": {}}]
    bare["metadata"]["resourceVersion"] = "4243"
    state.pods.replace([bare], "2")
    service = MigrationService(
        api=api, state=state, metrics=Metrics(), planner=Planner(state, declared=parse_checkpoint_annotations)
    )
    app = create_app(service=service, metrics=Metrics(), authenticator=AllowAll())
    client: Client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        dry = await client.post("/api/migrations", json={**SEED_BODY, "dry_run": True})
        plan = json.loads(await _text(dry, 200))
        assert plan["ok"] is True
        (warning,) = plan["warnings"]
        assert "has no shared persistent volume" in warning
        assert warning.endswith("run again on the target: data-processor")
        assert {c["name"]: c["action"] for c in plan["containers"]}["data-processor"] == "migrate"
        created = json.loads(await _text(await client.post("/api/v1/migrations", json=SEED_BODY), 202))
        assert created["warnings"] == [warning]
        (record,) = api.created
        state.migrations.replace([record], "3")
        polled = json.loads(await _text(await client.get(f"/api/v1/migrations/{created['migration_id']}/status"), 200))
        assert polled["warnings"] == [warning]
        assert polled["preserve_pv"] is True
    finally:
        await client.close()
    shared_state = seed_cluster()
    shared = MigrationService(
        api=RecordingApi(),
        state=shared_state,
        metrics=Metrics(),
        planner=Planner(shared_state, declared=parse_checkpoint_annotations),
    )
    assert shared.dry_run(parse_migration_request(SEED_BODY))["warnings"] == []


@pytest.mark.parametrize("prefix", ["/api/v1/migrations", "/api/migrations"])
async def test_a_trailing_slash_is_served_like_the_path_without_it(
    client: Client, service: FakeService, prefix: str
) -> None:
    """The seed's gin router redirected these; a client that does not follow redirects gets the answer itself."""
    created = service.add(request(), status={"phase": Phase.CHECKPOINTING.value})
    migration_id = created["migration_id"]
    for path in (f"{prefix}/{migration_id}", f"{prefix}/{migration_id}/status", prefix):
        plain, slashed = await client.get(path), await client.get(f"{path}/", allow_redirects=False)
        assert (slashed.status, await slashed.json()) == (plain.status, await plain.json()) == (200, ANY), path
    posted = await client.post(f"{prefix}/", json=SEED_BODY, allow_redirects=False)
    assert posted.status == 202, await posted.text()
    assert posted.headers["Location"] == f"/api/migrations/{(await posted.json())['migration_id']}"
    cancelled = await client.delete(f"{prefix}/{migration_id}/", allow_redirects=False)
    assert (cancelled.status, (await cancelled.json())["cancel_requested"]) == (202, True)
    unknown = await client.get(f"{prefix}/0123456789ab/status/", allow_redirects=False)
    assert (unknown.status, (await unknown.json())["error"]) == (404, "migration_not_found")
    assert (await client.get("/healthz/", allow_redirects=False)).status == 404  # only the migrations routes


def completed_with(before: tuple[int, int], after: tuple[int, int]) -> dict[str, Any]:
    status = finished_status()
    status["resources"] = {
        "before": {"cpu_millicores": before[0], "memory_bytes": before[1]},
        "after": {"cpu_millicores": after[0], "memory_bytes": after[1]},
    }
    return status


async def test_metrics_are_computed_from_the_migrations(client: Client, service: FakeService) -> None:
    service.add(request(), status=completed_with((2000, 4000), (1000, 3000)))  # 50 % CPU, 25 % memory, 3.5 s
    service.add(request(), status=completed_with((1000, 1000), (1000, 1000)))  # 0 %, 0 %, 3.5 s
    failed = finished_status(Phase.FAILED)
    failed["finishedAt"] = "2024-05-01T10:01:01.000000Z"  # 1 s after startedAt
    service.add(request(), status=failed)  # resources recorded, but not completed: no saving counted
    service.add(request(), status={"phase": Phase.CHECKPOINTING.value})  # not ended: no duration
    response = await client.get("/api/v1/metrics")
    text = await _text(response, 200)
    assert json.loads(text) == {
        "total_migrations": 4,
        "successful_migrations": 2,
        "failed_migrations": 1,
        "average_duration": (3_500_000_000 * 2 + 1_000_000_000) // 3,
        "cpu_savings_percentage": 25.0,
        "memory_savings_percentage": 12.5,
    }
    document = await (await client.get("/api/openapi.json")).json()
    schema = document["paths"]["/api/v1/metrics"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert errors(json.loads(text), schema, document) == []
    refused = await client.get("/api/v1/metrics?namespace=ml")
    assert (refused.status, (await refused.json())["error"]) == (400, "invalid_request")


async def test_metrics_without_anything_to_average_are_null_not_zero(client: Client, service: FakeService) -> None:
    empty = await (await client.get("/api/v1/metrics")).json()
    assert empty == {
        "total_migrations": 0,
        "successful_migrations": 0,
        "failed_migrations": 0,
        "average_duration": None,
        "cpu_savings_percentage": None,
        "memory_savings_percentage": None,
    }
    no_resources = finished_status()
    del no_resources["resources"]
    service.add(request(), status=no_resources)
    service.add(request(), status=completed_with((0, 0), (0, 0)))  # nothing requested: no percentage of it
    figures = await (await client.get("/api/v1/metrics")).json()
    assert (figures["successful_migrations"], figures["average_duration"]) == (2, 3_500_000_000)
    assert figures["cpu_savings_percentage"] is figures["memory_savings_percentage"] is None


async def test_metrics_need_the_rights_of_a_listing_of_every_namespace(serve: Serve, service: FakeService) -> None:
    reviews = FakeReviewApi(
        users={"alice-token": {"username": "alice"}, "bob-token": {"username": "bob"}},
        grants={("alice", "list", None), ("bob", "list", "ml")},
    )
    client = await serve(authenticator=KubernetesAuthenticator(reviews))
    service.add(request(), status=finished_status())
    assert (await client.get("/api/v1/metrics")).status == 401
    allowed = await client.get("/api/v1/metrics", headers={"Authorization": "Bearer alice-token"})
    assert (allowed.status, (await allowed.json())["total_migrations"]) == (200, 1)
    refused = await client.get("/api/v1/metrics", headers={"Authorization": "Bearer bob-token"})
    assert (refused.status, (await refused.json())["error"]) == (403, "forbidden")
    # bob's listing has the same answer: only a namespace-filtered one is his
    assert (await client.get("/api/v1/migrations", headers={"Authorization": "Bearer bob-token"})).status == 403


def test_the_seeds_pod_label_finds_the_orchestrators_pods_and_the_selector_is_unchanged() -> None:
    """The seed's docs: `kubectl get pods -n kube-system -l app=ai-storage-orchestrator`. A Deployment's selector is
    immutable: the label goes on the pods only, or applying the manifest over an installed one would fail."""
    deployment = yaml.safe_load((Path(__file__).resolve().parents[3] / "k8s/deploy/deployment.yaml").read_text())
    assert deployment["metadata"]["namespace"] == "kube-system"
    assert deployment["spec"]["template"]["metadata"]["labels"] == {
        "app.kubernetes.io/name": "ai-storage-orchestrator",
        "app": "ai-storage-orchestrator",
    }
    assert deployment["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "ai-storage-orchestrator"}}
