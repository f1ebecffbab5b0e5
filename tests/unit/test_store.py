"""ObjectStore: indexes, replace-as-relist, our own writes racing watch events, and listeners that raise."""

from __future__ import annotations

from typing import Any, cast

import pytest
import structlog

from ai_storage_orchestrator.watchers.store import JSON, ObjectStore

pytestmark = pytest.mark.unit


def _pod(name: str, version: int, node: str = "a") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)}, "spec": {"nodeName": node}}


def _store() -> tuple[ObjectStore, list[str]]:
    store = ObjectStore("Pod")
    store.add_index("node", lambda p: [p["spec"]["nodeName"]])
    seen: list[str] = []
    store.add_listener(lambda kind, old, new: seen.append(f"{kind}:{cast(JSON, new or old)['metadata']['name']}"))
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


def _broken_listener(_kind: str, _old: JSON | None, _new: JSON | None) -> None:
    raise KeyError("status")


def test_a_listener_that_raises_is_logged_and_counted_and_the_change_and_other_listeners_go_on() -> None:
    failed_kinds: list[str] = []
    store = ObjectStore("Pod", on_listener_error=failed_kinds.append)
    store.add_listener(_broken_listener)
    seen: list[str] = []
    store.add_listener(lambda kind, old, new: seen.append(f"{kind}:{cast(JSON, new or old)['metadata']['name']}"))
    with structlog.testing.capture_logs() as logs:
        store.apply("ADDED", _pod("p", 7))
        store.apply("DELETED", _pod("p", 8))
        store.apply("ADDED", _pod("q", 9))
    assert seen == ["ADDED:p", "DELETED:p", "ADDED:q"], "the listeners after the broken one still hear every change"
    assert store.keys() == ["ns/q"]
    assert store.resource_version == "9", "the watch must resume after the last event, not replay it"
    assert failed_kinds == ["Pod", "Pod", "Pod"]
    failures = [entry for entry in logs if entry["event"] == "store.listener_failed"]
    assert [(f["kind"], f["event_type"], f["key"]) for f in failures] == [
        ("Pod", "ADDED", "ns/p"),
        ("Pod", "DELETED", "ns/p"),
        ("Pod", "ADDED", "ns/q"),
    ]
    assert failures[0]["log_level"] == "error"
    assert failures[0]["listener"] == "_broken_listener"
    assert isinstance(failures[0]["exc_info"], KeyError), "the traceback goes with the line"
    assert failures[0]["error"] == "KeyError('status')"


def test_a_relist_completes_and_syncs_despite_a_listener_that_raises() -> None:
    store = ObjectStore("Node")
    store.add_listener(_broken_listener)
    with structlog.testing.capture_logs():
        store.replace([_pod("a", 1), _pod("b", 2)], "2")
    assert store.synced
    assert sorted(store.keys()) == ["ns/a", "ns/b"]
    assert store.resource_version == "2"


def test_a_relist_does_not_undo_our_writes_made_after_its_snapshot() -> None:
    """A LIST at version 4, then our own writes (versions 6 and 7) recorded before it is applied: the store keeps
    them; the watch from version 4 brings every change in order."""
    store, seen = _store()
    store.replace([_pod("moved", 1), _pod("old", 2)], "2")
    store.write_through(_pod("moved", 6, "b"))  # our status write, answered at version 6
    store.write_through(_pod("created", 7))  # a pod we created
    seen.clear()
    store.replace([_pod("moved", 3), _pod("old", 2)], "4")
    assert store.get("ns/moved")["spec"]["nodeName"] == "b"  # type: ignore[index]
    assert store.get("ns/created") is not None, "created after the snapshot: not deleted while we were away"
    assert seen == []
    store.replace([_pod("moved", 6, "b")], "8")
    assert sorted(seen) == ["DELETED:created", "DELETED:old"], "a LIST taken after them still removes what is gone"
