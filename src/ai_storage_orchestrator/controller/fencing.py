"""Leader fencing: a replica writes to the cluster only while it can prove it still holds the lease.

A leader that was frozen (SIGSTOP, a long GC pause, a cut connection) may wake after its lease expired and a
standby took over. Every write a migration makes goes through `FencedWriter`, which asks the elector first: a
stale leader's step fails with `NotLeader` (retried, and soon cancelled with its term) instead of acting."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

from ai_storage_orchestrator.controller.ports import JSON, ClusterWriter
from ai_storage_orchestrator.errors import TemporaryError
from ai_storage_orchestrator.kube.resources import Resource

log = structlog.get_logger(__name__)

Fence = Callable[[], bool]


class NotLeader(TemporaryError):
    default_reason = "not_leader"


def always_leading() -> bool:
    return True


class FencedWriter:
    def __init__(self, api: ClusterWriter, fence: Fence) -> None:
        self.api = api
        self.fence = fence

    def check(self, action: str) -> None:
        if not self.fence():
            log.warning("leader.fenced", action=action)
            raise NotLeader(f"refused to {action}: this replica cannot prove it still holds the lease")

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON:
        return await self.api.get(resource, name, namespace=namespace)

    async def create(self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None) -> JSON:
        self.check(f"create {resource.kind}")
        return await self.api.create(resource, body, namespace=namespace)

    async def merge_patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> JSON:
        self.check(f"patch {resource.kind} {name}")
        return await self.api.merge_patch(resource, name, patch, namespace=namespace, subresource=subresource)

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        uid: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> JSON:
        self.check(f"delete {resource.kind} {name}")
        return await self.api.delete(
            resource, name, namespace=namespace, uid=uid, grace_period_seconds=grace_period_seconds
        )

    async def evict(self, name: str, *, namespace: str, uid: str | None = None) -> JSON:
        self.check(f"evict Pod {name}")
        return await self.api.evict(name, namespace=namespace, uid=uid)
