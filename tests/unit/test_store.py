"""ObjectStore: indexes, replace-as-relist, and our own writes racing watch events."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.watchers.store import ObjectStore

pytestmark = pytest.mark.unit


def _pod(name: str, version: int, node: str = "a") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)}, "spec": {"nodeName": node}}


def _store() -> tuple[ObjectStore, list[str]]:
    store = ObjectStore("Pod")
    store.add_index("node", lambda p: [p["spec"]["nodeName"]])
    seen: list[str] = []
    store.add_listener(lambda kind, old, new: seen.append(f"{kind}:{(new or old)['metadata']['name']}"))
    return store, seen


def test_index_follows_moves_and_deletes() -> None:
    store, _ = _store()
    store.apply("ADDED", _pod("p", 1, "a"))
    store.apply("MODIFIED", _pod("p", 2, "b"))
    assert store.by_index("node", "a") == []
    assert [p["metadata"]["name"] for p in store.by_index("node", "b")] == ["p"]
    store.apply("DELETED", _pod("p", 3, "b"))
    assert store.by_index("node", "b") == []


def test_replace_reports_objects_deleted_while_not_watching() -> None:
    store, seen = _store()
    store.replace([_pod("gone", 1), _pod("kept", 2)], "2")
    seen.clear()
    store.replace([_pod("kept", 2), _pod("new", 5)], "5")
    assert sorted(seen) == ["ADDED:new", "DELETED:gone"]
    assert store.resource_version == "5"


def test_an_older_event_does_not_undo_our_newer_write() -> None:
    store, _ = _store()
    store.apply("ADDED", _pod("p", 1, "a"))
    store.write_through(_pod("p", 3, "b"))
    store.apply("MODIFIED", _pod("p", 2, "a"))  # in flight before our write
    assert (store.get("ns/p") or {})["spec"]["nodeName"] == "b"


def test_a_late_write_response_does_not_resurrect_a_deleted_object() -> None:
    store, _ = _store()
    store.apply("ADDED", _pod("p", 1))
    store.apply("DELETED", _pod("p", 4))
    store.write_through(_pod("p", 3))  # our patch landed before the delete; its response came after the event
    assert store.get("ns/p") is None
    store.write_through(_pod("p", 7))  # recreated later: a newer object is welcome
    assert store.get("ns/p") is not None
