"""The REST layer in front of the real MigrationService (watch caches filled by hand, a fake API server write)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ai_storage_orchestrator.api.app import create_app
from ai_storage_orchestrator.api.auth import AllowAll
from ai_storage_orchestrator.api.openapi import build_openapi
from ai_storage_orchestrator.api.service import MigrationServiceProtocol
from ai_storage_orchestrator.checkpoint import parse_checkpoint_annotations
from ai_storage_orchestrator.controller.planner import Planner
from ai_storage_orchestrator.controller.planning.marking import mark_containers
from ai_storage_orchestrator.controller.records import MIGRATION_ID_LABEL
from ai_storage_orchestrator.controller.service import MigrationService
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, KubeApi, Resource
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.watchers.state import ClusterState
from tests.unit.api.fakes import SEED_BODY
from tests.unit.api.schema_check import errors, response_schema
from tests.unit.planning.fixtures import container, make_node, make_pod, mount, running, terminated

pytestmark = pytest.mark.unit

JSON = dict[str, Any]


class RecordingApi(KubeApi):
    """Only `create` is reached by a submit; it answers as the API server would."""

    def __init__(self) -> None:
        super().__init__(api_client=None)
        self.created: list[JSON] = []

    async def create(self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None) -> JSON:
        assert resource == POD_MIGRATIONS
        obj = {**body, "metadata": {**body["metadata"], "creationTimestamp": "2024-05-01T10:00:00Z"}}
        obj["metadata"]["resourceVersion"] = "7"
        self.created.append(obj)
        return obj


def seed_cluster() -> ClusterState:
    state = ClusterState()
    data = [mount("shared-data", "/data")]
    pod = make_pod(
        name="tensorflow-ai-workload",
        containers=[container("trainer", cpu="1", mounts=data), container("data-processor", cpu="500m", mounts=data)],
        statuses=[running("trainer"), terminated("data-processor")],
        volumes=[{"name": "shared-data", "nfs": {"server": "nfs.example", "path": "/exports/ml"}}],
        node="a",
    )
    pod["metadata"]["namespace"] = "default"
    state.pods.replace([pod], "1")
    state.nodes.replace([make_node("a"), make_node("b")], "1")
    for store in (state.claims, state.volumes, state.migrations):
        store.replace([], "1")
    return state


@contextlib.asynccontextmanager
async def _served(api: RecordingApi, state: ClusterState) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The real MigrationService and app over `state`, served on 127.0.0.1; closed on exit."""
    planner = Planner(state, declared=parse_checkpoint_annotations)
    service: MigrationServiceProtocol = MigrationService(api=api, state=state, metrics=Metrics(), planner=planner)
    app = create_app(service=service, metrics=Metrics(), authenticator=AllowAll())
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def test_seed_request_through_the_real_service() -> None:
    api = RecordingApi()
    state = seed_cluster()
    async with _served(api, state) as client:
        plan = await client.post("/api/migrations", json={**SEED_BODY, "dry_run": True})
        assert plan.status == 200, await plan.text()
        assert (await plan.json())["ok"] is True
        response = await client.post("/api/migrations", json=SEED_BODY, headers={"X-Request-ID": "seed"})
        assert response.status == 202, await response.text()
        body = await response.json()
        assert response.headers["Location"] == f"/api/migrations/{body['migration_id']}"
        assert api.created[0]["spec"]["requestId"] == "seed"
        again = await client.post("/api/migrations", json=SEED_BODY)
        assert again.status == 409
        assert (await again.json())["details"]["migration_id"] == body["migration_id"]
        fetched = await client.get(response.headers["Location"])
        assert await fetched.json() == body


def _auto_cluster() -> ClusterState:
    """The seed's cluster with a third node: `b` carries load, so `c` is chosen; the pod's images are nowhere."""
    state = seed_cluster()
    load = make_pod(name="load", containers=[container("c", cpu="6")], statuses=[running("c")], node="b")
    load["metadata"]["uid"] = "uid-load"
    state.pods.replace([*state.pods, load], "2")
    state.nodes.replace([make_node("a"), make_node("b"), make_node("c")], "2")
    return state


async def test_a_request_without_target_node_records_and_explains_the_chosen_node() -> None:
    document = build_openapi()
    api = RecordingApi()
    state = _auto_cluster()
    body = {k: v for k, v in SEED_BODY.items() if k != "target_node"}
    async with _served(api, state) as client:
        dry = await client.post("/api/migrations", json={**body, "dry_run": True})
        plan = await dry.json()
        assert dry.status == 200, plan
        assert (
            errors(plan, response_schema(document, method="POST", path="/api/migrations", status=200), document) == []
        )
        assert (plan["ok"], plan["request"]["target_node"]) == (True, "c")
        assert plan["target_choice"]["chosen"]["node"] == "c"
        assert [s["node"] for s in plan["target_choice"]["runners_up"]] == ["b"]
        assert plan["target_choice"]["refused"] == [
            {
                "node": "a",
                "reason": "source_equals_target",
                "check": "source_differs_from_target",
                "message": "node a is the source node",
            }
        ]

        response = await client.post("/api/migrations", json={**body, "target_node": "auto"})
        migration = await response.json()
        assert response.status == 202, migration
        assert (
            errors(migration, response_schema(document, method="POST", path="/api/migrations", status=202), document)
            == []
        )
        assert migration["target_node"] == "c"
        assert migration["target_choice"] == plan["target_choice"]
        spec = api.created[0]["spec"]
        assert spec["targetNode"] == "c"
        assert (
            spec["targetChoice"]["chosen"]["score"]["allocatedAfter"]
            == migration["target_choice"]["chosen"]["score"]["allocated_after"]
        )
        assert spec["targetChoice"]["refusedTotal"] == 1
        fetched = await client.get(response.headers["Location"])
        assert (await fetched.json())["target_choice"] == migration["target_choice"]


async def test_a_named_target_is_recorded_and_answered_as_before() -> None:
    api = RecordingApi()
    state = _auto_cluster()
    async with _served(api, state) as client:
        dry = await client.post("/api/migrations", json={**SEED_BODY, "dry_run": True})
        assert "target_choice" not in await dry.json()
        check_names = [c["name"] for c in (await dry.json())["checks"]]
        assert "target_node_chosen" not in check_names
        response = await client.post("/api/migrations", json=SEED_BODY)
        assert response.status == 202
        assert "target_choice" not in await response.json()
        assert "targetChoice" not in api.created[0]["spec"]


async def test_no_node_fits_answers_422_no_target_node_and_records_nothing() -> None:
    api = RecordingApi()
    state = seed_cluster()
    nodes = [make_node("a"), make_node("b", unschedulable=True), make_node("c", ready=False)]
    for node in nodes:  # a new version of each: the store keeps an object whose version did not change
        node["metadata"]["resourceVersion"] = "2"
    state.nodes.replace(nodes, "2")
    body = {k: v for k, v in SEED_BODY.items() if k != "target_node"}
    async with _served(api, state) as client:
        response = await client.post("/api/migrations", json=body)
        error = await response.json()
        assert response.status == 422, error
        assert error["error"] == "no_target_node"
        assert error["message"].startswith("no node can take pod default/tensorflow-ai-workload: none of the 3 node(s)")
        assert {r["node"]: r["reason"] for r in error["details"]["refused"]} == {
            "a": "source_equals_target",
            "b": "target_node_cordoned",
            "c": "target_node_not_ready",
        }
        assert api.created == []
        dry = await client.post("/api/migrations", json={**body, "dry_run": True})
        plan = await dry.json()
        assert (dry.status, plan["ok"], plan["target_choice"]["chosen"]) == (200, False, None)
        assert [c["reason"] for c in plan["checks"] if not c["passed"]] == ["no_target_node"]


async def test_the_target_of_an_active_move_cannot_be_moved_until_that_move_ends() -> None:
    """Moving it would open the second move's gate while the first move's source may still run (two trainers)."""
    api = RecordingApi()
    state = seed_cluster()
    async with _served(api, state) as client:
        first = await client.post("/api/migrations", json=SEED_BODY)
        assert first.status == 202, await first.text()
        first_id = (await first.json())["migration_id"]
        state.migrations.replace(api.created, "2")
        target = make_pod(name="tensorflow-ai-workload-migrated-1", containers=[container("trainer")], node="b")
        target["metadata"].update(namespace="default", labels={MIGRATION_ID_LABEL: first_id})
        mark_containers(target["spec"]["containers"], first_id)
        state.pods.replace([*state.pods, target], "3")
        body = {**SEED_BODY, "pod_name": "tensorflow-ai-workload-migrated-1", "source_node": "b", "target_node": "a"}
        again = await client.post("/api/migrations", json=body)
        assert again.status == 409, await again.text()
        refused = await again.json()
        assert refused["error"] == "migration_in_progress"
        assert refused["details"]["migration_id"] == first_id
        assert "is the target of migration" in refused["message"]
