"""The generic machinery under every controller of this package: keys in, one reconcile per key at a time, a fresh
work queue for every term of leadership.

A term starts when `run()` is called (the replica became leader) and ends when it is cancelled (the lease was lost
or the process stops). Keys that arrive between terms are dropped on purpose: the next term starts from a full
re-list of what needs work (`seed`), like controller-runtime's initial sync, so nothing learned while standing by
can be stale."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ai_storage_orchestrator.controller.queue import WorkQueue
from ai_storage_orchestrator.controller.reconciler import Handler, Reconciler


class Reactor:
    def __init__(self, handler: Handler, *, workers: int, name: str) -> None:
        self.handler = handler
        self.workers = workers
        self.name = name
        self._queue: WorkQueue | None = None
        self.terms = 0

    @property
    def running(self) -> bool:
        return self._queue is not None

    def enqueue(self, key: str) -> None:
        if self._queue is not None:
            self._queue.add(key)

    def enqueue_after(self, key: str, delay: float) -> None:
        if self._queue is not None:
            self._queue.add_after(key, delay)

    def pending(self) -> int:
        return len(self._queue) if self._queue is not None else 0

    async def run(self, seed: Callable[[], Iterable[str]]) -> None:
        """Reconcile until cancelled; `seed()` names every key that needs work at the start of this term."""
        queue = WorkQueue()
        self._queue = queue
        self.terms += 1
        try:
            for key in seed():
                queue.add(key)
            await Reconciler(queue, self.handler, workers=self.workers, name=self.name).run()
        finally:
            queue.shut_down()
            if self._queue is queue:
                self._queue = None
