"""The in-memory model of the cluster: pods, nodes, claims, volumes and PodMigrations, kept by watch streams.

Readers never call the API server. Waiters (`wait_for`) are woken by watch events, never by a timer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from ai_storage_orchestrator.kube.resources import NODES, POD_MIGRATIONS, PODS, PVCS, PVS, KubeApi, Resource
from ai_storage_orchestrator.models import Phase
from ai_storage_orchestrator.watchers.store import (
    JSON,
    Listener,
    ListenerErrorHook,
    ObjectStore,
    object_key,
    written_after,
)
from ai_storage_orchestrator.watchers.streaming import Reflector

T = TypeVar("T")

BY_NODE = "node"
BY_POD = "pod"
BY_NAME = "name"
# Active migrations only (a finished one leaves these indexes when its phase is written): pod and node events look
# them up, and finished records, kept for a day by default, would make every such event a scan of all of them.
BY_OWNER = "owner"
BY_TARGET_NODE = "target-node"
_TERMINAL_PHASES = frozenset(phase.value for phase in Phase if phase.is_terminal)


def _pod_node(pod: JSON) -> Iterable[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return (node,) if node else ()


def _migration_pod(migration: JSON) -> Iterable[str]:
    spec = migration.get("spec") or {}
    namespace = (migration.get("metadata") or {}).get("namespace")
    return (f"{namespace}/{spec['podName']}",) if spec.get("podName") else ()


def _active(migration: JSON) -> bool:
    return (migration.get("status") or {}).get("phase") not in _TERMINAL_PHASES


def _active_migration_owner(migration: JSON) -> Iterable[str]:
    uid = ((migration.get("status") or {}).get("owner") or {}).get("uid")
    namespace = (migration.get("metadata") or {}).get("namespace")
    return (f"{namespace}/{uid}",) if uid and _active(migration) else ()


def _active_migration_target_node(migration: JSON) -> Iterable[str]:
    node = (migration.get("spec") or {}).get("targetNode")
    return (str(node),) if node and _active(migration) else ()


class NamespaceShard(ObjectStore):
    """The part of `whole` in one namespace, as that namespace's Reflector sees it, when the orchestrator watches
    several namespaces into one store: its own resourceVersion and sync state (each namespace is its own watch), a
    LIST replaces this namespace's objects only, and `whole` reads as synced once every shard is. Only what a
    Reflector uses is implemented; everyone else reads `whole`."""

    def __init__(self, whole: ObjectStore, namespace: str, shards: list[NamespaceShard]) -> None:
        self._whole = whole
        self.namespace = namespace
        self._shards = shards
        self._synced = False
        shards.append(self)
        super().__init__(f"{whole.kind}@{namespace}")

    @property
    def synced(self) -> bool:
        return self._synced

    @synced.setter
    def synced(self, value: bool) -> None:
        self._synced = value
        self._whole.synced = all(shard._synced for shard in self._shards)

    def replace(self, items: list[JSON], resource_version: str) -> None:
        """As ObjectStore.replace, for this namespace's part of the whole store."""
        fresh = {object_key(item): item for item in items}
        for obj in list(self._whole):
            if (obj.get("metadata") or {}).get("namespace") != self.namespace or object_key(obj) in fresh:
                continue
            if not written_after(obj, resource_version):
                self._whole.remove(obj)
        for key, item in fresh.items():
            old = self._whole.get(key)
            old_version = (old or {}).get("metadata", {}).get("resourceVersion")
            if old is None or (
                old_version != item.get("metadata", {}).get("resourceVersion") and not self._whole.cached_is_newer(item)
            ):
                self._whole.upsert(item)
        self.resource_version = resource_version
        self.synced = True

    def apply(self, event_type: str, obj: JSON) -> None:
        self._whole.apply(event_type, obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)


class ClusterState:
    def __init__(self, *, on_listener_error: ListenerErrorHook | None = None) -> None:
        self.pods = ObjectStore("Pod", on_listener_error=on_listener_error)
        self.nodes = ObjectStore("Node", on_listener_error=on_listener_error)
        self.claims = ObjectStore("PersistentVolumeClaim", on_listener_error=on_listener_error)
        self.volumes = ObjectStore("PersistentVolume", on_listener_error=on_listener_error)
        self.migrations = ObjectStore("PodMigration", on_listener_error=on_listener_error)
        self.pods.add_index(BY_NODE, _pod_node)
        self.migrations.add_index(BY_POD, _migration_pod)
        self.migrations.add_index(BY_NAME, lambda m: (m["metadata"]["name"],))
        self.migrations.add_index(BY_OWNER, _active_migration_owner)
        self.migrations.add_index(BY_TARGET_NODE, _active_migration_target_node)
        self._changed = asyncio.Event()
        self.version = 0
        self._reflectors: list[Reflector] = []
        for store in self.stores:
            store.add_listener(self._on_change)

    @property
    def stores(self) -> Sequence[ObjectStore]:
        return (self.pods, self.nodes, self.claims, self.volumes, self.migrations)

    @property
    def synced(self) -> bool:
        return all(store.synced for store in self.stores)

    def outages(self) -> list[str]:
        """Why watches cannot follow the API server, one line per reflector failing past its bound
        (`Reflector.outage`)."""
        return [outage for reflector in self._reflectors if (outage := reflector.outage()) is not None]

    def add_listener(self, store: ObjectStore, listener: Listener) -> None:
        store.add_listener(listener)

    def _on_change(self, _type: str, _old: JSON | None, _new: JSON | None) -> None:
        self.notify()

    def notify(self) -> None:
        """Wake every `wait_for` to re-check its condition (also used for changes outside the caches)."""
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for(self, check: Callable[[], T | None], *, timeout: float) -> T:
        """Return check()'s first truthy result, re-evaluated after every cache change; TimeoutError after `timeout`."""
        async with asyncio.timeout(timeout):
            while True:
                result = check()
                if result:
                    return result
                await self._changed.wait()

    def reflectors(
        self,
        api: KubeApi,
        *,
        namespaces: Sequence[str] = (),
        on_relist: Callable[[str], None] | None = None,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> list[Reflector]:
        """One watch stream per resource; pods, claims and PodMigrations per namespace when the orchestrator is
        limited to some namespaces (nodes and volumes stay cluster-wide). Several namespaces feed one store each,
        through a NamespaceShard per namespace.

        Every (re)list wakes the waiters: a LIST that changes nothing (an empty namespace) still syncs its store.
        The reflectors are kept: `outages` asks them."""
        reflectors = self._new_reflectors(api, namespaces=namespaces, on_relist=on_relist, on_reconnect=on_reconnect)
        self._reflectors.extend(reflectors)
        return reflectors

    def _new_reflectors(
        self,
        api: KubeApi,
        *,
        namespaces: Sequence[str],
        on_relist: Callable[[str], None] | None,
        on_reconnect: Callable[[str], None] | None,
    ) -> list[Reflector]:
        def relisted(resource: str) -> None:
            self.notify()
            if on_relist is not None:
                on_relist(resource)

        scoped: list[tuple[Resource, ObjectStore]] = [
            (PODS, self.pods),
            (PVCS, self.claims),
            (POD_MIGRATIONS, self.migrations),
        ]
        cluster_wide: list[tuple[Resource, ObjectStore]] = [(NODES, self.nodes), (PVS, self.volumes)]
        result = [
            Reflector(api, resource, store, on_relist=relisted, on_reconnect=on_reconnect)
            for resource, store in cluster_wide
        ]
        if len(set(namespaces)) != len(namespaces):
            raise ValueError(f"a namespace is named twice: {list(namespaces)}")
        if len(namespaces) <= 1:
            namespace = namespaces[0] if namespaces else None
            return result + [
                Reflector(api, resource, store, namespace=namespace, on_relist=relisted, on_reconnect=on_reconnect)
                for resource, store in scoped
            ]
        for resource, store in scoped:
            shards: list[NamespaceShard] = []
            for namespace in namespaces:
                shard = NamespaceShard(store, namespace, shards)
                result.append(
                    Reflector(api, resource, shard, namespace=namespace, on_relist=relisted, on_reconnect=on_reconnect)
                )
        return result

    # Readers ---------------------------------------------------------------------------------------------------
    def pod(self, namespace: str, name: str) -> JSON | None:
        return self.pods.get(f"{namespace}/{name}")

    def node(self, name: str) -> JSON | None:
        return self.nodes.get(name)

    def pods_on_node(self, node: str) -> list[JSON]:
        return self.pods.by_index(BY_NODE, node)

    def claim(self, namespace: str, name: str) -> JSON | None:
        return self.claims.get(f"{namespace}/{name}")

    def volume(self, name: str) -> JSON | None:
        return self.volumes.get(name)

    def migration(self, namespace: str, name: str) -> JSON | None:
        return self.migrations.get(f"{namespace}/{name}")

    def migrations_of_pod(self, namespace: str, pod: str) -> list[JSON]:
        return self.migrations.by_index(BY_POD, f"{namespace}/{pod}")

    def active_migrations_of_owner(self, namespace: str, owner_uid: str) -> list[JSON]:
        """The active migrations, in `namespace`, of a pod controlled by the owner with `owner_uid`."""
        return self.migrations.by_index(BY_OWNER, f"{namespace}/{owner_uid}")

    def active_migrations_to(self, node: str) -> list[JSON]:
        return self.migrations.by_index(BY_TARGET_NODE, node)

    def find_migration(self, migration_id: str) -> JSON | None:
        """A migration by id, in whatever namespace it lives (ids are unique cluster-wide)."""
        found = self.migrations.by_index(BY_NAME, migration_id)
        return found[0] if found else None
