"""Kubernetes Events (core/v1) on the objects a migration touches. Recording never blocks or fails a migration:
events are sent in the background and a failure is only logged.

Side writes (Events, informative annotations) are held back while a migration is acting, for at most
`max_hold_seconds` each, then sent one at a time in the order they were made: every API server request competes for
the same CPU, and a migration's critical path (its status writes, the target's creation, the eviction, the hand-off)
should not wait behind them. One at a time, so a pod's later status annotation ("Failed: …") never lands before an
earlier one ("Running"). Measured on the simulated-node bench (docs/BENCHMARKS.md)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import EVENTS, KubeApi

log = structlog.get_logger(__name__)

COMPONENT = "ai-storage-orchestrator"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Returns once side writes no longer compete with a migration's critical path, or after at most the given seconds.
Hold = Callable[[float], Awaitable[None]]


class EventRecorder:
    def __init__(self, api: KubeApi, *, instance: str, hold: Hold | None = None, max_hold_seconds: float = 2.0) -> None:
        self.api = api
        self.instance = instance
        self.hold = hold
        self.max_hold_seconds = max_hold_seconds
        self._pending: set[asyncio.Task[None]] = set()
        self._held: deque[tuple[float, Coroutine[Any, Any, None]]] = deque()
        self._sender: asyncio.Task[None] | None = None

    def record(self, obj: dict[str, Any], *, reason: str, message: str, warning: bool = False) -> None:
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{metadata.get('name', 'object')}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": metadata.get("name"),
                "namespace": namespace,
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
            "firstTimestamp": _now(),
            "lastTimestamp": _now(),
            "count": 1,
        }
        self.run_in_background(self._send(event, namespace))

    def run_in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Best-effort side work (events, annotations) that must not delay a migration step."""
        loop = asyncio.get_running_loop()
        if self.hold is None:
            self._start(work)
            return
        self._held.append((loop.time() + self.max_hold_seconds, work))
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_held(), name="side-writes")

    def _start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _send_held(self) -> None:
        loop = asyncio.get_running_loop()
        while self._held:
            due, _ = self._held[0]
            if self.hold is not None and due > loop.time():
                await self.hold(due - loop.time())
            await asyncio.wait([self._start(self._held.popleft()[1])])  # a cancel (flush) leaves it running

    async def _send(self, event: dict[str, Any], namespace: str) -> None:
        try:
            await self.api.create(EVENTS, event, namespace=namespace)
        except KubeApiError as error:
            log.warning("event.not_recorded", reason=event["reason"], error=str(error))

    async def flush(self) -> None:
        """Send what is held back at once and wait for everything in flight (used at shutdown and in tests)."""
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        while self._held:
            self._start(self._held.popleft()[1])
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
