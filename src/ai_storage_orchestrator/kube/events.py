"""Kubernetes Events (core/v1) on the objects a migration touches. Recording never blocks or fails a migration:
events are sent in the background and a failure is only logged."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Coroutine
from typing import Any

import structlog

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import EVENTS, KubeApi

log = structlog.get_logger(__name__)

COMPONENT = "ai-storage-orchestrator"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, api: KubeApi, *, instance: str) -> None:
        self.api = api
        self.instance = instance
        self._pending: set[asyncio.Task[None]] = set()

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
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, event: dict[str, Any], namespace: str) -> None:
        try:
            await self.api.create(EVENTS, event, namespace=namespace)
        except KubeApiError as error:
            log.warning("event.not_recorded", reason=event["reason"], error=str(error))

    async def flush(self) -> None:
        """Wait for events in flight (used at shutdown and in tests)."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
