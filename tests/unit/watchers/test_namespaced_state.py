"""Namespace-scoped mode: pods, claims and PodMigrations are watched per namespace into one store each (a
NamespaceShard per namespace), nodes and volumes cluster-wide; one namespace's LIST never drops another's objects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from ai_storage_orchestrator.kube.resources import KubeApi, Resource, WatchEvent
from ai_storage_orchestrator.watchers.state import ClusterState, NamespaceShard
from ai_storage_orchestrator.watchers.store import JSON, ObjectStore

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_leaked_tasks")]


def _pod(namespace: str, name: str, version: str = "1") -> JSON:
    return {"metadata": {"namespace": namespace, "name": name, "resourceVersion": version}, "spec": {}}


class PerNamespaceApi:
    """LIST answers the pods of the namespace asked for (nothing for other resources); WATCH waits on that
    namespace's queue. Records which (resource, namespace) was listed."""

    def __init__(self, pods: dict[str, list[JSON]]) -> None:
        self.pods = pods
        self.listed: list[tuple[str, str | None]] = []
        self.events: dict[str | None, asyncio.Queue[WatchEvent]] = {}

    def queue(self, namespace: str | None) -> asyncio.Queue[WatchEvent]:
        return self.events.setdefault(namespace, asyncio.Queue())

    async def list(self, resource: Resource, *, namespace: str | None = None, **_: Any) -> tuple[list[JSON], str]:
        self.listed.append((resource.plural, namespace))
        items = self.pods.get(namespace or "", []) if resource.plural == "pods" else []
        return list(items), f"{namespace}-10"

    async def watch(self, resource: Resource, *, namespace: str | None = None, **_: Any) -> AsyncIterator[WatchEvent]:
        queue = self.queue(namespace) if resource.plural == "pods" else asyncio.Queue[WatchEvent]()
        while True:
            yield await queue.get()

    def as_kube_api(self) -> KubeApi:
        return cast(KubeApi, self)


def test_pods_claims_and_migrations_are_watched_per_namespace_nodes_and_volumes_cluster_wide() -> None:
    state = ClusterState()
    reflectors = state.reflectors(PerNamespaceApi({}).as_kube_api(), namespaces=("a", "b"))
    scopes = sorted((r.resource.plural, r.namespace or "*") for r in reflectors)
    assert scopes == [
        ("nodes", "*"),
        ("persistentvolumeclaims", "a"),
        ("persistentvolumeclaims", "b"),
        ("persistentvolumes", "*"),
        ("podmigrations", "a"),
        ("podmigrations", "b"),
        ("pods", "a"),
        ("pods", "b"),
    ]
    with pytest.raises(ValueError, match="twice"):
        state.reflectors(PerNamespaceApi({}).as_kube_api(), namespaces=("a", "a"))


async def test_every_namespace_syncs_into_one_store_and_watches_on_its_own() -> None:
    state = ClusterState()
    api = PerNamespaceApi({"a": [_pod("a", "p1")], "b": [_pod("b", "p2")]})
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(r.run()) for r in state.reflectors(api.as_kube_api(), namespaces=("a", "b"))]
    try:
        assert await state.wait_for(lambda: state.synced, timeout=5)
        assert sorted(state.pods.keys()) == ["a/p1", "b/p2"]
        assert ("pods", "c") not in api.listed
        assert {ns for plural, ns in api.listed if plural == "pods"} == {"a", "b"}
        api.queue("b").put_nowait(WatchEvent("ADDED", _pod("b", "p3", "11")))
        assert await state.wait_for(lambda: state.pod("b", "p3"), timeout=5)
        api.queue("a").put_nowait(WatchEvent("DELETED", _pod("a", "p1", "12")))
        await state.wait_for(lambda: state.pod("a", "p1") is None, timeout=5)
        assert sorted(state.pods.keys()) == ["b/p2", "b/p3"]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_a_relist_of_one_namespace_keeps_the_others_objects() -> None:
    whole = ObjectStore("Pod")
    shards: list[NamespaceShard] = []
    a, b = NamespaceShard(whole, "a", shards), NamespaceShard(whole, "b", shards)
    a.replace([_pod("a", "p1"), _pod("a", "gone")], "5")
    b.replace([_pod("b", "p2")], "7")
    a.replace([_pod("a", "p1")], "9")  # `gone` was deleted while a's watch was down
    assert sorted(whole.keys()) == ["a/p1", "b/p2"]
    assert (a.resource_version, b.resource_version) == ("9", "7"), "each namespace resumes from its own version"
    b.apply("MODIFIED", _pod("b", "p2", "8"))
    assert (a.resource_version, b.resource_version) == ("9", "8")
    assert whole.get("b/p2")["metadata"]["resourceVersion"] == "8"  # type: ignore[index]


def _synced(store: ObjectStore) -> bool:
    return store.synced


def test_the_store_is_synced_only_while_every_namespace_is() -> None:
    whole = ObjectStore("Pod")
    shards: list[NamespaceShard] = []
    a, b = NamespaceShard(whole, "a", shards), NamespaceShard(whole, "b", shards)
    assert not _synced(whole)
    a.replace([], "1")
    assert not _synced(whole), "b has not listed yet"
    b.replace([], "1")
    assert _synced(whole)
    b.synced = False  # b's reflector failed (it marks its store unsynced until it has listed afresh)
    assert not _synced(whole)
    assert a.synced


def test_a_relist_of_one_namespace_keeps_our_writes_made_after_its_snapshot() -> None:
    whole = ObjectStore("Pod")
    shards: list[NamespaceShard] = []
    a = NamespaceShard(whole, "a", shards)
    a.replace([_pod("a", "p1", "3")], "3")
    whole.write_through(_pod("a", "p1", "6"))
    whole.write_through(_pod("a", "p2", "7"))
    a.replace([_pod("a", "p1", "3")], "4")
    assert whole.get("a/p1")["metadata"]["resourceVersion"] == "6"  # type: ignore[index]
    assert whole.get("a/p2") is not None
