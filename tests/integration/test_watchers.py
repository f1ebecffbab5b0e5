"""Watch streams against the real API server: the cache equals a fresh LIST after a storm, survives 410 Gone
without losing a delete, and converges again after kube-apiserver restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.kube.resources import CONFIG_MAPS, KubeApi
from ai_storage_orchestrator.watchers.store import ObjectStore, object_key
from ai_storage_orchestrator.watchers.streaming import Reflector
from tests.cluster.faults import compact_etcd, restart_apiserver
from tests.cluster.fixtures import ClusterHandle


def _snapshot(store: ObjectStore) -> dict[str, str]:
    return {object_key(obj): str(obj["metadata"]["resourceVersion"]) for obj in store}


async def _fresh_list(kube: KubeApi, namespace: str) -> dict[str, str]:
    items, _ = await kube.list(CONFIG_MAPS, namespace=namespace)
    return {f"{namespace}/{i['metadata']['name']}": str(i["metadata"]["resourceVersion"]) for i in items}


async def _converge(kube: KubeApi, store: ObjectStore, namespace: str, changed: asyncio.Event, timeout: float) -> None:
    """Wait (woken by the store's own change events) until the store equals a fresh LIST."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()  # before comparing: a change during the LIST must not be missed
                if _snapshot(store) == await _fresh_list(kube, namespace):
                    return
                await changed.wait()
    except TimeoutError:
        mine, theirs = _snapshot(store), await _fresh_list(kube, namespace)
        difference = {
            k: (mine.get(k), theirs.get(k)) for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k)
        }
        raise AssertionError(f"cache differs from a fresh LIST: {difference}") from None


class Watched:
    def __init__(self, kube: KubeApi, namespace: str) -> None:
        self.store = ObjectStore("ConfigMap")
        self.changed = asyncio.Event()
        self.deleted: list[str] = []
        self.store.add_listener(self._on_change)
        self.reflector = Reflector(kube, CONFIG_MAPS, self.store, namespace=namespace)
        self.task: asyncio.Task[None] | None = None

    def _on_change(self, event: str, old: Any, _new: Any) -> None:
        if event == "DELETED":
            self.deleted.append(old["metadata"]["name"])
        self.changed.set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.reflector.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None


@pytest.fixture
async def kube(api: client.ApiClient) -> KubeApi:
    return KubeApi(api)


@pytest.fixture
async def watched(kube: KubeApi, namespace: str) -> AsyncIterator[Watched]:
    running = Watched(kube, namespace)
    running.start()
    yield running
    await running.stop()


def _config_map(name: str, value: str = "0") -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"value": value}}


async def test_cache_equals_fresh_list_after_a_storm(
    kube: KubeApi, core: client.CoreV1Api, namespace: str, watched: Watched
) -> None:
    async def churn(index: int) -> None:
        name = f"storm-{index}"
        await core.create_namespaced_config_map(namespace, cast(client.V1ConfigMap, _config_map(name)))
        for version in range(3):
            await core.patch_namespaced_config_map(name, namespace, {"data": {"value": str(version)}})
        if index % 3 == 0:
            await core.delete_namespaced_config_map(name, namespace)

    await asyncio.gather(*(churn(i) for i in range(60)))
    await _converge(kube, watched.store, namespace, watched.changed, timeout=30)
    assert len([key for key in _snapshot(watched.store) if "/storm-" in key]) == 40
    assert sorted(watched.deleted) == sorted(f"storm-{i}" for i in range(0, 60, 3))


async def test_410_gone_relists_without_losing_a_delete(
    cluster: ClusterHandle, kube: KubeApi, core: client.CoreV1Api, namespace: str
) -> None:
    if not cluster.etcd_url:
        pytest.skip("compacting etcd needs the local control plane")
    watched = Watched(kube, namespace)
    for i in range(4):
        await core.create_namespaced_config_map(namespace, cast(client.V1ConfigMap, _config_map(f"keep-{i}")))
    watched.start()
    await _converge(kube, watched.store, namespace, watched.changed, timeout=30)
    await watched.stop()  # the gap: we are not watching while these happen
    stale_version = watched.store.resource_version

    await core.delete_namespaced_config_map("keep-0", namespace)
    await core.delete_namespaced_config_map("keep-1", namespace)
    latest = await core.create_namespaced_config_map(namespace, cast(client.V1ConfigMap, _config_map("added-in-gap")))
    compact_etcd(cluster.etcd_url, int(latest.metadata.resource_version))

    relists_before = watched.reflector.counters.relists
    watched.start()  # resumes from the stale, now compacted resourceVersion
    try:
        await _converge(kube, watched.store, namespace, watched.changed, timeout=30)
    finally:
        await watched.stop()
    assert watched.store.resource_version != stale_version
    assert watched.reflector.counters.relists == relists_before + 1, "a 410 must make it list again"
    assert sorted(watched.deleted) == ["keep-0", "keep-1"]
    remaining = sorted(k for k in _snapshot(watched.store) if "kube-root-ca" not in k)
    assert remaining == sorted(f"{namespace}/{n}" for n in ("keep-2", "keep-3", "added-in-gap"))


async def test_converges_after_apiserver_restart(
    cluster: ClusterHandle, kube: KubeApi, namespace: str, watched: Watched
) -> None:
    if cluster.local is None:
        pytest.skip("restarting kube-apiserver needs the local control plane")
    await kube.create(CONFIG_MAPS, _config_map("before"), namespace=namespace)
    await _converge(kube, watched.store, namespace, watched.changed, timeout=30)

    await asyncio.to_thread(restart_apiserver, cluster.local)
    ready_at = time.monotonic()
    await kube.create(CONFIG_MAPS, _config_map("after"), namespace=namespace)
    await kube.delete(CONFIG_MAPS, "before", namespace=namespace)
    await _converge(kube, watched.store, namespace, watched.changed, timeout=60)
    converged_in = time.monotonic() - ready_at
    print(f"cache converged {converged_in:.2f}s after kube-apiserver was ready again")
    assert sorted(k for k in _snapshot(watched.store) if "kube-root-ca" not in k) == [f"{namespace}/after"]
    assert watched.deleted == ["before"]
    assert watched.reflector.counters.reconnects >= 1
