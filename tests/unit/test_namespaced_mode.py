"""Namespace-scoped mode's settings and its REST refusal: `serve --namespaces a,b` (`--namespace x` is one of them),
and a request for another namespace answered 403 namespace_not_managed before anything is looked up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from ai_storage_orchestrator.cli.serve import settings_from
from ai_storage_orchestrator.errors import Forbidden, NotReady
from ai_storage_orchestrator.models import MigrationRequest
from ai_storage_orchestrator.runtime import NAMESPACE_NOT_MANAGED, Orchestrator, _StartedService, build_app
from ai_storage_orchestrator.settings import Settings
from tests.cluster.processes import free_port
from tests.unit.cli.conftest import parse

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_leaked_tasks")]


def test_namespaces_from_the_command_line() -> None:
    assert settings_from(parse(["serve", "--namespaces", "a,b"])).watched_namespaces == ("a", "b")
    assert settings_from(parse(["serve", "--namespaces", " a , b "])).watched_namespaces == ("a", "b")
    assert settings_from(parse(["serve", "--namespace", "x"])).watched_namespaces == ("x",)
    assert settings_from(parse(["serve"])).watched_namespaces == ()
    for argv in (["--namespaces", "a,,b"], ["--namespaces", "a", "--namespace", "b"]):
        with pytest.raises(SystemExit):
            parse(["serve", *argv])


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (Settings(namespaces=("a", "a")), "named twice"),
        (Settings(namespaces=("a", "B")), "not a namespace name: 'B'"),
        (Settings(namespaces=("a", "b"), namespace="a"), "give one of them"),
        (Settings(namespace="../x"), "not a namespace name"),
    ],
)
def test_invalid_namespaces_are_refused(settings: Settings, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        settings.validate()


def _request(namespace: str, *, dry_run: bool = False) -> MigrationRequest:
    return MigrationRequest(pod_name="p", pod_namespace=namespace, source_node="n1", target_node="n2", dry_run=dry_run)


async def test_another_namespace_is_refused_before_anything_is_looked_up() -> None:
    service = _StartedService(Orchestrator(Settings(namespaces=("a", "b"))))  # not started: nothing to look up
    for call in (
        lambda: service.submit(_request("c")),
        lambda: _async(service.dry_run, _request("c", dry_run=True)),
        lambda: _async(lambda: service.list(namespace="c")),
    ):
        with pytest.raises(Forbidden) as refused:
            await call()
        assert refused.value.http_status == 403
        assert refused.value.reason == NAMESPACE_NOT_MANAGED
        assert "namespace c is not managed" in refused.value.message
        assert "a" not in refused.value.message.split(), "the managed namespaces are not told"
    # A managed namespace, and a list over every managed namespace, pass the check (and meet the unstarted service).
    for call in (
        lambda: service.submit(_request("a")),
        lambda: _async(lambda: service.list(namespace="b")),
        lambda: _async(lambda: service.list()),
    ):
        with pytest.raises(NotReady):
            await call()


async def test_all_namespaces_refuse_none() -> None:
    service = _StartedService(Orchestrator(Settings()))
    with pytest.raises(NotReady):
        await service.submit(_request("c"))


async def _async(function: Any, *args: Any) -> Any:
    return function(*args)


async def test_the_rest_api_answers_403_for_an_unmanaged_namespace(tmp_path: Path) -> None:
    """Through the app (auth none on loopback); the API server is an unused port: nothing is ever looked up."""
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "none", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "none", "user": {"token": "unused"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "current-context": "none",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    settings = Settings(kubeconfig=str(tmp_path / "kubeconfig"), namespaces=("a", "b"), leader_election=False)
    http = TestClient(TestServer(build_app(Orchestrator(settings)), host="127.0.0.1"))
    await http.start_server()
    try:
        body = {"pod_name": "p", "pod_namespace": "c", "source_node": "n1", "target_node": "n2"}
        for dry_run in (False, True):
            response = await http.post("/api/migrations", json={**body, "dry_run": dry_run})
            assert response.status == 403
            assert (await response.json())["error"] == NAMESPACE_NOT_MANAGED
        response = await http.get("/api/migrations", params={"namespace": "c"})
        assert (response.status, (await response.json())["error"]) == (403, NAMESPACE_NOT_MANAGED)
        response = await http.post("/api/migrations", json={**body, "pod_namespace": "a"})
        assert response.status == 503, "a managed namespace reaches the (unsynced) service"
    finally:
        await http.close()
