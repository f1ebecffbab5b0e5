"""ClusterState: waiters are woken when the caches sync, even when nothing is listed."""

from __future__ import annotations

import asyncio

import pytest

from ai_storage_orchestrator.watchers.state import ClusterState
from tests.unit.watchers.fakes import FakeApi

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_leaked_tasks")]


async def test_waiting_for_sync_ends_when_every_list_is_empty() -> None:
    state = ClusterState()
    relisted: list[str] = []
    loop = asyncio.get_running_loop()
    reflectors = state.reflectors(FakeApi([], "7").as_kube_api(), namespaces=("ns",), on_relist=relisted.append)
    tasks = [loop.create_task(reflector.run()) for reflector in reflectors]
    try:
        assert await state.wait_for(lambda: state.synced, timeout=5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(relisted) == ["nodes", "persistentvolumeclaims", "persistentvolumes", "podmigrations", "pods"]


def _migration(name: str, phase: str, *, owner_uid: str = "rs-1", node: str = "node-b") -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "ml", "resourceVersion": "1"},
        "spec": {"podName": f"pod-{name}", "targetNode": node},
        "status": {"phase": phase, "owner": {"uid": owner_uid}},
    }


def test_active_migrations_are_found_by_owner_and_target_node_without_a_scan() -> None:
    """Pod and node events look them up; finished records (kept a day) leave the indexes when their phase ends."""
    state = ClusterState()
    state.migrations.apply("ADDED", _migration("a", "StoppingSource"))
    state.migrations.apply("ADDED", _migration("b", "Completed"))
    state.migrations.apply("ADDED", _migration("c", "Pending", owner_uid="rs-2", node="node-c"))
    assert [m["metadata"]["name"] for m in state.active_migrations_of_owner("ml", "rs-1")] == ["a"]
    assert state.active_migrations_of_owner("other", "rs-1") == []
    assert [m["metadata"]["name"] for m in state.active_migrations_to("node-b")] == ["a"]
    finished = {**_migration("a", "Failed"), "metadata": {"name": "a", "namespace": "ml", "resourceVersion": "2"}}
    state.migrations.apply("MODIFIED", finished)
    assert state.active_migrations_of_owner("ml", "rs-1") == []
    assert state.active_migrations_to("node-b") == []
    assert [m["metadata"]["name"] for m in state.active_migrations_to("node-c")] == ["c"]
