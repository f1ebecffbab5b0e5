"""A stand-in for KubeApi's list and watch, enough for reflectors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

from ai_storage_orchestrator.kube.resources import KubeApi, Resource, WatchEvent
from ai_storage_orchestrator.watchers.store import JSON


class FakeApi:
    """LIST answers `listed` (for every resource); each WATCH replays the queued events, then waits like an idle,
    healthy stream."""

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

    def as_kube_api(self) -> KubeApi:
        return cast(KubeApi, self)
