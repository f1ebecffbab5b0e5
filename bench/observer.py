"""List → watch of one resource from the bench process: the current objects, and every event with the moment this
process received it (time.monotonic) -- the clock all bench timings use."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import KubeApi, Resource

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Seen:
    at: float  # time.monotonic() when the event was received
    wall: float  # time.time() at the same moment (to compare with the orchestrator's time stamps)
    type: str  # ADDED, MODIFIED, DELETED
    obj: JSON

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.obj["metadata"].get("uid") or "")

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.obj["metadata"].get("labels") or {})


@dataclass
class Observer:
    api: KubeApi
    resource: Resource
    namespace: str | None = None
    keep_log: bool = True
    on_event: Callable[[Seen], None] | None = None
    objects: dict[str, JSON] = field(default_factory=dict)
    log: list[Seen] = field(default_factory=list)
    reconnects: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _synced: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"observe-{self.resource.plural}")
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        version = ""
        while True:
            try:
                if not version:
                    items, version = await self.api.list(self.resource, namespace=self.namespace)
                    self.objects = {item["metadata"]["name"]: item for item in items}
                    self._synced.set()
                    self._notify()
                async for event in self.api.watch(
                    self.resource, resource_version=version, namespace=self.namespace, timeout_seconds=600
                ):
                    version = str(event.object.get("metadata", {}).get("resourceVersion") or version)
                    if event.type != "BOOKMARK":
                        self._record(Seen(time.monotonic(), time.time(), event.type, event.object))
            except KubeApiError as error:
                self.reconnects += 1
                if error.gone:
                    version = ""
                    continue
                await asyncio.sleep(0.2)  # reconnect back-off; this loop lives only as long as the scenario

    def _record(self, seen: Seen) -> None:
        if seen.type == "DELETED":
            current = self.objects.get(seen.name)
            if current is not None and current["metadata"].get("uid") == seen.uid:
                del self.objects[seen.name]
        else:
            self.objects[seen.name] = seen.obj
        if self.keep_log:
            self.log.append(seen)
        if self.on_event is not None:
            self.on_event(seen)
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def mark(self) -> int:
        """A position in the event log: `first` looks only at events after it."""
        return len(self.log)

    async def first(self, match: Callable[[Seen], bool], *, since: int, timeout: float) -> Seen:
        """The first event after `since` that matches, waiting for it up to `timeout` seconds."""
        position = since
        async with asyncio.timeout(timeout):
            while True:
                while position < len(self.log):
                    seen = self.log[position]
                    position += 1
                    if match(seen):
                        return seen
                await self._changed.wait()

    def find(self, match: Callable[[Seen], bool], *, since: int) -> Seen | None:
        return next((seen for seen in self.log[since:] if match(seen)), None)

    async def wait_for(self, check: Callable[[], bool], *, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await self._changed.wait()
