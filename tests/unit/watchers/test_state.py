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
