"""List → watch loops that keep an ObjectStore equal to the API server: bookmarks, relist on 410 Gone, reconnect
with backoff on network errors (never shorter than a 429's Retry-After). The loop is ours, not kubernetes_asyncio's,
whose retry reuses a stale version.

Anything else ends the loop (its supervisor restarts it) and marks the store unsynced: the error may have left it
half-applied, so it reads as not ready until the restarted loop has listed afresh.

A watch that cannot follow the API server for longer than `unhealthy_after` (30 s: several reconnects, more than
the routine blip of an API server restart) reports an outage (`Reflector.outage`), so /readyz says the replica has
lost the API server; the first successful LIST, watch event or cleanly ended watch clears it."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import KubeApi, Resource
from ai_storage_orchestrator.watchers.store import ObjectStore

log = structlog.get_logger(__name__)
# A server's Retry-After is honoured up to this: a value of hours (a misconfigured proxy) would stop the watch.
RETRY_AFTER_MAX_SECONDS = 60.0


@dataclass
class Backoff:
    initial: float = 0.2
    maximum: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        # The exponent is clamped: 2.0**1024 overflows a float, and an outage may last that many attempts.
        delay: float = min(self.maximum, self.initial * 2.0 ** min(self.attempt, 64))
        self.attempt += 1
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class StreamCounters:
    relists: int = 0
    reconnects: int = 0
    events: int = 0


@dataclass
class Reflector:
    """Keeps `store` in sync with `resource` (optionally in one namespace) until cancelled."""

    api: KubeApi
    resource: Resource
    store: ObjectStore
    namespace: str | None = None
    label_selector: str | None = None
    watch_timeout_seconds: int = 300
    inactivity_timeout: float = 90.0
    on_relist: Callable[[str], None] | None = None
    on_reconnect: Callable[[str], None] | None = None
    counters: StreamCounters = field(default_factory=StreamCounters)
    unhealthy_after: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests pass their own
    clock: Callable[[], float] = time.monotonic
    _failing: tuple[float, KubeApiError] | None = field(default=None, init=False)  # (since, latest error)

    def outage(self) -> str | None:
        """Why this watch has not followed the API server for longer than `unhealthy_after`; None while it does,
        or while its failures are more recent than that."""
        if self._failing is None:
            return None
        since, error = self._failing
        failing_for = self.clock() - since
        if failing_for <= self.unhealthy_after:
            return None
        where = f" in {self.namespace}" if self.namespace else ""
        return f"watch of {self.resource.plural}{where} failing for {failing_for:.0f} s: {error}"

    async def run(self) -> None:
        try:
            await self._run()
        except Exception:
            self.store.synced = False
            raise

    async def _run(self) -> None:
        backoff = Backoff()
        need_list = not self.store.synced  # a synced store resumes from its resourceVersion
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch(backoff)
                self._failing = None  # a watch that ended at its timeout was connected
            except KubeApiError as error:
                if error.gone:
                    log.info("watch.expired", resource=self.resource.plural, message=error.message)
                    need_list = True
                    continue
                self._record_failure(error)
                self.counters.reconnects += 1
                if self.on_reconnect:
                    self.on_reconnect(self.resource.plural)
                delay = max(backoff.next_delay(), min(error.retry_after or 0.0, RETRY_AFTER_MAX_SECONDS))
                log.warning("watch.disconnected", resource=self.resource.plural, error=str(error), retry_in=delay)
                await self.sleep(delay)  # reconnect backoff: the API server is unreachable, nothing to wait on

    def _record_failure(self, error: KubeApiError) -> None:
        since = self.clock() if self._failing is None else self._failing[0]
        self._failing = (since, error)

    async def _list(self) -> None:
        items, version = await self.api.list(
            self.resource, namespace=self.namespace, label_selector=self.label_selector
        )
        self.store.replace(items, version)
        self._failing = None
        self.counters.relists += 1
        if self.on_relist:
            self.on_relist(self.resource.plural)
        log.debug("watch.listed", resource=self.resource.plural, count=len(items), resource_version=version)

    async def _watch(self, backoff: Backoff) -> None:
        async for event in self.api.watch(
            self.resource,
            resource_version=self.store.resource_version,
            namespace=self.namespace,
            label_selector=self.label_selector,
            timeout_seconds=self.watch_timeout_seconds,
            inactivity_timeout=self.inactivity_timeout,
        ):
            backoff.reset()
            self._failing = None
            self.counters.events += 1
            if event.type == "BOOKMARK":
                version = (event.object.get("metadata") or {}).get("resourceVersion")
                if version:
                    self.store.resource_version = str(version)
                continue
            self.store.apply(event.type, event.object)
