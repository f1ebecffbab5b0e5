"""An in-memory copy of one resource type, kept by a watch stream, with secondary indexes and change listeners.

Listeners run inside the watch loop, after the change is applied. One that raises is logged
(`store.listener_failed`) and reported to `on_listener_error`; the other listeners still run and the watch goes on:
a bug in a consumer must never stop the cache that every consumer reads."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import structlog

JSON = dict[str, Any]
_MAX_TOMBSTONES = 4096
Listener = Callable[[str, JSON | None, JSON | None], None]  # (event type, old object, new object)
IndexFunction = Callable[[JSON], Iterable[str]]
ListenerErrorHook = Callable[[str], None]  # (kind): e.g. a Prometheus counter

log = structlog.get_logger(__name__)


def object_key(obj: JSON) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata['name']}" if namespace else str(metadata["name"])


def _slim(obj: JSON) -> JSON:
    """Drop managedFields: large, never read by us, and most of a cached object's memory. (Listed and watched objects
    come with their short strings shared already: kube/interning.py.)"""
    metadata = obj.get("metadata")
    if metadata and "managedFields" in metadata:
        obj = {**obj, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}
    return obj


def written_after(obj: JSON, resource_version: str) -> bool:
    """Whether `obj` is a version later than `resource_version` (a LIST's): written after that snapshot."""
    mine = str((obj.get("metadata") or {}).get("resourceVersion", ""))
    # resourceVersions are opaque; etcd-backed servers use integers, which are safe to compare.
    return mine.isdigit() and resource_version.isdigit() and int(mine) > int(resource_version)


class ObjectStore:
    """Objects by key plus named indexes; every change is told to the listeners after it is applied."""

    def __init__(self, kind: str, *, on_listener_error: ListenerErrorHook | None = None) -> None:
        self.kind = kind
        self.on_listener_error = on_listener_error
        self._objects: dict[str, JSON] = {}
        self._index_functions: dict[str, IndexFunction] = {}
        self._indexes: dict[str, defaultdict[str, set[str]]] = {}
        self._listeners: list[Listener] = []
        self.resource_version = ""
        self.synced = False
        # Last resourceVersion of recently deleted objects: a late response of our own write must not resurrect one.
        self._tombstones: OrderedDict[str, str] = OrderedDict()

    def add_index(self, name: str, function: IndexFunction) -> None:
        self._index_functions[name] = function
        index: defaultdict[str, set[str]] = defaultdict(set)
        for key, obj in self._objects.items():
            for value in function(obj):
                index[value].add(key)
        self._indexes[name] = index

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def __len__(self) -> int:
        return len(self._objects)

    def __iter__(self) -> Iterator[JSON]:
        return iter(list(self._objects.values()))

    def get(self, key: str) -> JSON | None:
        return self._objects.get(key)

    def by_index(self, name: str, value: str) -> list[JSON]:
        keys = self._indexes[name].get(value, ())
        return [self._objects[k] for k in keys if k in self._objects]

    def keys(self) -> list[str]:
        return list(self._objects)

    def _unindex(self, key: str, obj: JSON) -> None:
        for name, function in self._index_functions.items():
            index = self._indexes[name]
            for value in function(obj):
                members = index.get(value)
                if members is not None:
                    members.discard(key)
                    if not members:
                        del index[value]

    def _index(self, key: str, obj: JSON) -> None:
        for name, function in self._index_functions.items():
            for value in function(obj):
                self._indexes[name][value].add(key)

    def upsert(self, obj: JSON) -> None:
        obj = _slim(obj)
        key = object_key(obj)
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = obj
        self._index(key, obj)
        self._emit("ADDED" if old is None else "MODIFIED", old, obj)

    def remove(self, obj: JSON) -> None:
        key = object_key(obj)
        self._tombstones[key] = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        self._tombstones.move_to_end(key)
        if len(self._tombstones) > _MAX_TOMBSTONES:
            self._tombstones.popitem(last=False)
        old = self._objects.pop(key, None)
        if old is not None:
            self._unindex(key, old)
            self._emit("DELETED", old, None)

    def apply(self, event_type: str, obj: JSON) -> None:
        if event_type == "DELETED":
            self.remove(obj)
        elif event_type in ("ADDED", "MODIFIED") and not self.cached_is_newer(obj):
            self.upsert(obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)

    def write_through(self, obj: JSON) -> None:
        """Record an object our own write returned, before its watch event arrives."""
        if not self.cached_is_newer(obj) and not self._deleted_since(obj):
            self.upsert(obj)

    def _deleted_since(self, obj: JSON) -> bool:
        deleted_at = self._tombstones.get(object_key(obj))
        written = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        if deleted_at is None or not (deleted_at.isdigit() and written.isdigit()):
            return False
        return int(written) <= int(deleted_at)

    def cached_is_newer(self, obj: JSON) -> bool:
        """True when the cache already holds a later version (our own write got there before the event)."""
        cached = self._objects.get(object_key(obj))
        theirs = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        return cached is not None and written_after(cached, theirs)

    def replace(self, items: list[JSON], resource_version: str) -> None:
        """Make the store equal to a fresh LIST: objects missing from it were deleted while we were not watching.
        What our own writes put here after the LIST's snapshot (`write_through`) stays: the watch from the LIST's
        version brings those changes in order, and going back to the LIST's older copies meanwhile would have the
        controller act on a state it has already left."""
        fresh = {object_key(item): item for item in items}
        for key in [k for k in self._objects if k not in fresh]:
            if not written_after(self._objects[key], resource_version):
                self.remove(self._objects[key])
        for key, item in fresh.items():
            old = self._objects.get(key)
            old_version = (old or {}).get("metadata", {}).get("resourceVersion")
            if old is None or (
                old_version != item.get("metadata", {}).get("resourceVersion") and not self.cached_is_newer(item)
            ):
                self.upsert(item)
        self.resource_version = resource_version
        self.synced = True

    def _emit(self, event_type: str, old: JSON | None, new: JSON | None) -> None:
        for listener in self._listeners:
            try:
                listener(event_type, old, new)
            except Exception as error:  # a listener's bug is its own: the store and the other listeners go on
                self._listener_failed(listener, event_type, old if new is None else new, error)

    def _listener_failed(self, listener: Listener, event_type: str, obj: JSON | None, error: Exception) -> None:
        log.error(
            "store.listener_failed",
            kind=self.kind,
            event_type=event_type,
            key=object_key(obj) if obj else None,
            listener=getattr(listener, "__qualname__", repr(listener)),
            error=repr(error),
            exc_info=error,
        )
        if self.on_listener_error is not None:
            self.on_listener_error(self.kind)
