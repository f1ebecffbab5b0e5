"""Supervision against the real API server: a cache listener that raises is logged and counted while the pods cache
keeps following the cluster; a watch loop that crashes makes /readyz answer 503, naming it, until the supervisor
has restarted it, and the restarted loop catches up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from kubernetes_asyncio import client

from ai_storage_orchestrator.runtime import Orchestrator, build_app
from ai_storage_orchestrator.settings import Settings
from ai_storage_orchestrator.supervision import RestartPolicy
from ai_storage_orchestrator.watchers.store import JSON, ObjectStore
from tests.cluster.fixtures import ClusterHandle, pod_manifest

DEADLINE = 30.0


def _pod(name: str) -> dict[str, Any]:
    return pod_manifest(name, [{"name": "main", "image": "busybox"}])


def _labels(pod: JSON | None) -> dict[str, str]:
    return ((pod or {}).get("metadata") or {}).get("labels") or {}


async def test_a_listener_that_raises_is_logged_and_counted_and_the_pods_cache_stays_live(
    orchestrator: Orchestrator, core: client.CoreV1Api, namespace: str
) -> None:
    state = orchestrator.state

    def broken(_event: str, _old: JSON | None, _new: JSON | None) -> None:
        raise RuntimeError("listener bug")

    state.add_listener(state.pods, broken)
    with structlog.testing.capture_logs() as logs:
        await core.create_namespaced_pod(namespace, cast(client.V1Pod, _pod("victim")))
        await state.wait_for(lambda: state.pod(namespace, "victim"), timeout=DEADLINE)
        await core.patch_namespaced_pod("victim", namespace, {"metadata": {"labels": {"changed": "later"}}})
        await state.wait_for(lambda: _labels(state.pod(namespace, "victim")).get("changed"), timeout=DEADLINE)
        errors = orchestrator.metrics.registry.get_sample_value("ai_storage_listener_errors_total", {"kind": "Pod"})
        failures = [entry for entry in logs if entry["event"] == "store.listener_failed"]

    assert len(failures) >= 2, "the ADDED and the MODIFIED event each reach the broken listener, and are logged"
    assert errors == len(failures), "and each is counted"
    assert {(f["kind"], f["key"]) for f in failures} == {("Pod", f"{namespace}/victim")}
    assert all(isinstance(f["exc_info"], RuntimeError) for f in failures)
    assert orchestrator.supervisor.down == {}, "no watch loop crashed"
    assert orchestrator.ready()[0], orchestrator.ready()[1]


class RestartGate:
    """The supervisor's backoff sleep: says which task waits to be restarted, and holds it until `open()`."""

    def __init__(self) -> None:
        self.waiting: asyncio.Queue[str] = asyncio.Queue()
        self._opened = asyncio.Event()

    async def sleep(self, _delay: float) -> None:
        task = asyncio.current_task()
        self.waiting.put_nowait(task.get_name() if task else "?")
        await self._opened.wait()

    async def next_waiting(self) -> str:
        async with asyncio.timeout(DEADLINE):
            return await self.waiting.get()

    def open(self) -> None:
        self._opened.set()


@dataclass
class Served:
    orchestrator: Orchestrator
    http: TestClient[Any, Any]
    restarts: RestartGate

    async def readyz(self) -> tuple[int, JSON]:
        response = await self.http.get("/readyz")
        return response.status, await response.json()


@pytest.fixture
async def served(cluster: ClusterHandle, namespace: str, crd_installed: None) -> AsyncIterator[Served]:
    """The REST app of an orchestrator watching the test's namespace, whose restarts the test holds."""
    settings = Settings(
        kubeconfig=str(cluster.kubeconfig), namespace=namespace, leader_election=False, identity=f"test-{namespace}"
    )
    gate = RestartGate()
    orchestrator = Orchestrator(settings, restarts=RestartPolicy(backoff=lambda _attempt: 0.0, sleep=gate.sleep))
    http = TestClient(TestServer(build_app(orchestrator), host="127.0.0.1"))
    await http.start_server()  # starts the orchestrator
    try:
        await orchestrator.state.wait_for(lambda: orchestrator.ready()[0], timeout=DEADLINE)
        yield Served(orchestrator, http, gate)
    finally:
        await http.close()  # stops it


def crash_once_on(monkeypatch: pytest.MonkeyPatch, store: ObjectStore, name: str) -> None:
    """Fault: the watch loop feeding `store` raises on the first event about the object called `name`."""
    apply = store.apply
    fired: list[str] = []

    def faulty_apply(event_type: str, obj: JSON) -> None:
        if not fired and (obj.get("metadata") or {}).get("name") == name:
            fired.append(event_type)
            raise RuntimeError(f"injected fault on {name}")
        apply(event_type, obj)

    monkeypatch.setattr(store, "apply", faulty_apply)


async def test_a_crashed_watch_is_not_ready_until_it_is_restarted(
    served: Served, core: client.CoreV1Api, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    orchestrator, state = served.orchestrator, served.orchestrator.state
    status, body = await served.readyz()
    assert status == 200, body

    crash_once_on(monkeypatch, state.pods, "poison")
    with structlog.testing.capture_logs() as logs:
        await core.create_namespaced_pod(namespace, cast(client.V1Pod, _pod("poison")))
        assert await served.restarts.next_waiting() == "watch-pods"
    crashed = [entry for entry in logs if entry["event"] == "task.crashed"]
    assert [entry["task"] for entry in crashed] == ["watch-pods"]
    assert isinstance(crashed[0]["exc_info"], RuntimeError), "the traceback goes with the line"

    status, body = await served.readyz()
    assert status == 503, body
    assert "watch-pods (crashed: RuntimeError('injected fault on poison')" in body["message"]

    served.restarts.open()
    await state.wait_for(lambda: orchestrator.ready()[0], timeout=DEADLINE)
    status, body = await served.readyz()
    assert status == 200, body
    assert state.pod(namespace, "poison") is not None, "the restarted loop caught up with what it crashed on"
    assert orchestrator.metrics.registry.get_sample_value("ai_storage_task_restarts_total", {"task": "watch-pods"}) == 1

    await core.create_namespaced_pod(namespace, cast(client.V1Pod, _pod("after")))
    await state.wait_for(lambda: state.pod(namespace, "after"), timeout=DEADLINE)
