"""Reflector: a loop that crashes (not a watch error it retries) leaves its store unsynced, and its next run relists."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from ai_storage_orchestrator.kube.resources import PODS, WatchEvent
from ai_storage_orchestrator.watchers.store import JSON, ObjectStore
from ai_storage_orchestrator.watchers.streaming import Reflector
from tests.unit.watchers.fakes import FakeApi

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_leaked_tasks")]


def _pod(name: str, version: int) -> JSON:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)}}


async def test_a_crash_marks_the_store_unsynced_and_the_next_run_lists_afresh() -> None:
    api = FakeApi([_pod("a", 1)], "1")
    store = ObjectStore("Pod")
    reflector = Reflector(api.as_kube_api(), PODS, store)
    api.events.put_nowait(WatchEvent("ADDED", {"metadata": {"namespace": "ns"}}))  # no name: object_key raises
    with pytest.raises(KeyError):
        async with asyncio.timeout(5):
            await reflector.run()
    assert not store.synced, "a store its loop crashed on may be half-applied: it must read as not ready"

    api.listed, api.version = [_pod("a", 1), _pod("b", 2)], "2"
    changed = asyncio.Event()
    store.add_listener(lambda *_: changed.set())
    task = asyncio.get_running_loop().create_task(reflector.run())
    try:
        async with asyncio.timeout(5):
            await changed.wait()
        assert cast(bool, store.synced)  # read anew: mypy would keep the narrowing of the assert before the run
        assert api.lists == 2
        assert sorted(store.keys()) == ["ns/a", "ns/b"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_cancelled_loop_keeps_its_store_synced_to_resume_from_its_version() -> None:
    api = FakeApi([_pod("a", 1)], "1")
    store = ObjectStore("Pod")
    reflector = Reflector(api.as_kube_api(), PODS, store)
    listed = asyncio.Event()
    store.add_listener(lambda *_: listed.set())
    task = asyncio.get_running_loop().create_task(reflector.run())
    async with asyncio.timeout(5):
        await listed.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert store.synced
    assert store.resource_version == "1"
