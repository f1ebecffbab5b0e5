"""The REST layer in front of the real MigrationService (watch caches filled by hand, a fake API server write)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ai_storage_orchestrator.api.app import create_app
from ai_storage_orchestrator.api.auth import AllowAll
from ai_storage_orchestrator.api.service import MigrationServiceProtocol
from ai_storage_orchestrator.checkpoint import parse_checkpoint_annotations
from ai_storage_orchestrator.controller.planner import Planner
from ai_storage_orchestrator.controller.service import MigrationService
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, KubeApi, Resource
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.watchers.state import ClusterState
from tests.unit.api.fakes import SEED_BODY
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


async def test_seed_request_through_the_real_service() -> None:
    api = RecordingApi()
    state = seed_cluster()
    planner = Planner(state, declared=parse_checkpoint_annotations)
    service: MigrationServiceProtocol = MigrationService(api=api, state=state, metrics=Metrics(), planner=planner)
    app = create_app(service=service, metrics=Metrics(), authenticator=AllowAll())
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
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
    finally:
        await client.close()
