"""Workers that take keys from the queue and run one reconcile step each, level-based: the step reads the current
state and returns what should happen next."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

import structlog

from ai_storage_orchestrator.controller.queue import WorkQueue
from ai_storage_orchestrator.errors import TemporaryError
from ai_storage_orchestrator.kube.errors import KubeApiError

log = structlog.get_logger(__name__)


class Outcome(Enum):
    DONE = "done"
    REQUEUE = "requeue"  # run again right away (the step moved the object to a new phase)
    REQUEUE_AFTER = "requeue_after"  # run again after `delay` unless an event wakes it first


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    delay: float = 0.0

    @classmethod
    def done(cls) -> Result:
        return cls(Outcome.DONE)

    @classmethod
    def again(cls) -> Result:
        return cls(Outcome.REQUEUE)

    @classmethod
    def after(cls, delay: float) -> Result:
        return cls(Outcome.REQUEUE_AFTER, max(0.0, delay))


Handler = Callable[[str], Awaitable[Result]]


class Reconciler:
    """`workers` concurrent reconcile loops over one queue."""

    def __init__(self, queue: WorkQueue, handler: Handler, *, workers: int = 4, name: str = "reconciler") -> None:
        self.queue = queue
        self.handler = handler
        self.workers = workers
        self.name = name

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for number in range(self.workers):
                group.create_task(self._work(), name=f"{self.name}-worker-{number}")

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile_once(key)
            finally:
                self.queue.done(key)
            # A step that asks to run again at once without awaiting any I/O must not starve the event loop (the
            # API, the lease, other migrations): queue.get() on a non-empty queue does not yield.
            await asyncio.sleep(0)

    async def reconcile_once(self, key: str) -> None:
        try:
            result = await self.handler(key)
        except asyncio.CancelledError:
            raise
        except (TemporaryError, KubeApiError) as error:
            delay = self.queue.add_rate_limited(key)
            log.info("reconcile.retry", key=key, error=str(error), retry_in=round(delay, 3))
            return
        except Exception:
            delay = self.queue.add_rate_limited(key)
            log.exception("reconcile.crashed", key=key, retry_in=round(delay, 3))
            return
        self.queue.forget(key)
        if result.outcome is Outcome.REQUEUE:
            self.queue.add(key)
        elif result.outcome is Outcome.REQUEUE_AFTER:
            self.queue.add_after(key, result.delay)
