"""runtime.build_app: the orchestrator starts in the app's cleanup context and stops with it; building the app starts
nothing. The API server is an unused port on 127.0.0.1: the watches keep retrying, the caches never sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from ai_storage_orchestrator import runtime
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import KubeApi
from ai_storage_orchestrator.kube.retrying import NO_RETRIES
from ai_storage_orchestrator.runtime import ORCHESTRATOR, Orchestrator, build_app
from ai_storage_orchestrator.settings import Settings
from tests.cluster.processes import free_port

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_leaked_tasks")]

TASKS = ["leadership", "watch-nodes", "watch-persistentvolumeclaims", "watch-persistentvolumes", "watch-pods",
         "watch-podmigrations"]  # fmt: skip


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    server = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "none", "cluster": {"server": server}}],
        "users": [{"name": "none", "user": {"token": "unused"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "current-context": "none",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    return Settings(kubeconfig=str(path), namespace="ns", leader_election=False, **overrides)


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every API client the runtime creates, to check that it is closed."""
    created: list[Any] = []
    real = create_api_client

    async def recording(kubeconfig: str | None = None) -> Any:
        client = await real(kubeconfig)
        created.append(client)
        return client

    monkeypatch.setattr(runtime, "create_api_client", recording)
    return created


def _closed(client: Any) -> bool:
    return bool(client.rest_client.pool_manager.closed)


async def test_the_app_starts_the_orchestrator_and_stops_it(tmp_path: Path, clients: list[Any]) -> None:
    orchestrator = Orchestrator(_settings(tmp_path))
    app = build_app(orchestrator)
    assert clients == [], "building the app connects to nothing"
    assert orchestrator.supervisor.names == [], "building the app starts nothing"
    assert ORCHESTRATOR not in app

    http = TestClient(TestServer(app, host="127.0.0.1"))
    await http.start_server()
    try:
        assert app[ORCHESTRATOR] is orchestrator
        assert sorted(orchestrator.supervisor.names) == sorted(TASKS)
        response = await http.get("/readyz")
        assert response.status == 503
        assert (await response.json())["message"].startswith("caches not synced yet: Pod")
    finally:
        await http.close()
    assert orchestrator.supervisor.names == []
    assert len(clients) == 1
    assert _closed(clients[0])


async def test_a_failed_start_leaves_nothing_open(tmp_path: Path, clients: list[Any]) -> None:
    orchestrator = Orchestrator(  # the CRD cannot be installed: no server (and no retries: nothing to wait for)
        _settings(tmp_path, install_crd=True),
        api_factory=lambda api_client: KubeApi(api_client, retry_policy=NO_RETRIES),
    )
    server = TestServer(build_app(orchestrator), host="127.0.0.1")
    with pytest.raises(KubeApiError):
        await server.start_server()
    await server.close()
    assert orchestrator.supervisor.names == []
    assert len(clients) == 1
    assert _closed(clients[0])
