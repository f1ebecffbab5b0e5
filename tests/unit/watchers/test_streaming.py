"""Reflector: a loop that crashes (not a watch error it retries) leaves its store unsynced, and its next run relists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from ai_storage_orchestrator.kube.resources import PODS, KubeApi, Resource, WatchEvent
from ai_storage_orchestrator.watchers.store import JSON, ObjectStore
from ai_storage_orchestrator.watchers.streaming import Reflector

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_leaked_tasks")]


def _pod(name: str, version: int) -> JSON:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)}}


class FakeApi:
    """LIST answers `listed`; each WATCH replays the queued events, then waits (an idle, healthy stream)."""

    def __init__(self, listed: list[JSON], version: str) -> None:
        self.listed, self.version = listed, version
        self.lists = 0
        self.events: asyncio.Queue[WatchEvent] = asyncio.Queue()

    async def list(self, resource: Resource, **_: Any) -> tuple[list[JSON], str]:
        self.lists += 1
        return list(self.listed), self.version

    async def watch(self, resource: Resource, **_: Any) -> AsyncIterator[WatchEvent]:
        while True:
            yield await self.events.get()


async def test_a_crash_marks_the_store_unsynced_and_the_next_run_lists_afresh() -> None:
    api = FakeApi([_pod("a", 1)], "1")
    store = ObjectStore("Pod")
    reflector = Reflector(cast(KubeApi, api), PODS, store)
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
        assert store.synced
        assert api.lists == 2
        assert sorted(store.keys()) == ["ns/a", "ns/b"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_cancelled_loop_keeps_its_store_synced_to_resume_from_its_version() -> None:
    api = FakeApi([_pod("a", 1)], "1")
    store = ObjectStore("Pod")
    reflector = Reflector(cast(KubeApi, api), PODS, store)
    listed = asyncio.Event()
    store.add_listener(lambda *_: listed.set())
    task = asyncio.get_running_loop().create_task(reflector.run())
    async with asyncio.timeout(5):
        await listed.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert store.synced
    assert store.resource_version == "1"
