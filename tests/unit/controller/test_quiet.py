"""Which migrations hold side writes back: those recorded and not yet in a terminal phase."""

from __future__ import annotations

import asyncio

import pytest

from ai_storage_orchestrator.controller.quiet import ActingMigrations
from ai_storage_orchestrator.watchers.state import ClusterState

pytestmark = pytest.mark.unit


def _migration(name: str, phase: str | None) -> dict[str, object]:
    status = {"phase": phase} if phase else {}
    return {"metadata": {"name": name, "namespace": "ml", "resourceVersion": "1"}, "status": status}


async def test_acting_migrations_follow_the_cache() -> None:
    state = ClusterState()
    acting = ActingMigrations(state)
    state.migrations.apply("ADDED", _migration("m1", None))
    state.migrations.apply("ADDED", _migration("m2", "StoppingSource"))
    state.migrations.apply("ADDED", _migration("m3", "Completed"))
    assert len(acting) == 2
    state.migrations.apply("MODIFIED", _migration("m1", "Failed"))
    state.migrations.apply("DELETED", _migration("m2", "StoppingSource"))
    assert len(acting) == 0


async def test_the_hold_ends_when_the_last_migration_ends() -> None:
    state = ClusterState()
    acting = ActingMigrations(state)
    state.migrations.apply("ADDED", _migration("m1", "WaitingForTarget"))
    held = asyncio.create_task(acting.hold(30))
    await asyncio.sleep(0)
    assert not held.done()
    state.migrations.apply("MODIFIED", _migration("m1", "Completed"))
    async with asyncio.timeout(5):
        await held
