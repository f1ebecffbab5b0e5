"""The generic machinery: a work queue, workers, and a fresh queue for every term of leadership."""

from __future__ import annotations

import asyncio

import pytest

from ai_storage_orchestrator.controller.queue import WorkQueue
from ai_storage_orchestrator.controller.reactor import Reactor
from ai_storage_orchestrator.controller.reconciler import Reconciler, Result
from ai_storage_orchestrator.errors import TemporaryError

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self, results: dict[str, list[Result | Exception]] | None = None) -> None:
        self.seen: list[str] = []
        self.results = results or {}
        self.changed = asyncio.Event()

    async def __call__(self, key: str) -> Result:
        self.seen.append(key)
        self.changed.set()
        planned = self.results.get(key)
        if planned:
            outcome = planned.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        return Result.done()

    async def wait_seen(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()


async def _term(reactor: Reactor, seed: list[str]) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(reactor.run(lambda: seed))
    await asyncio.sleep(0)  # let the term start (no waiting on time: one turn of the loop)
    return task


async def _end(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_second_term_reconciles_again() -> None:
    handler = Recorder()
    reactor = Reactor(handler, workers=2, name="t")
    first = await _term(reactor, ["ns/a"])
    await handler.wait_seen(1)
    await _end(first)
    assert not reactor.running
    reactor.enqueue("ns/dropped")  # between terms: nobody leads, the next term re-lists instead
    second = await _term(reactor, ["ns/b"])
    reactor.enqueue("ns/c")
    await handler.wait_seen(3)
    await _end(second)
    assert handler.seen == ["ns/a", "ns/b", "ns/c"]
    assert reactor.terms == 2


async def test_failures_back_off_and_a_requeue_runs_again() -> None:
    handler = Recorder({"ns/a": [TemporaryError("api down"), Result.again(), Result.done()]})
    reactor = Reactor(handler, workers=1, name="t")
    term = await _term(reactor, ["ns/a"])
    await handler.wait_seen(3)
    await _end(term)
    assert handler.seen == ["ns/a"] * 3


async def test_a_key_added_while_it_is_processed_comes_back_once_after() -> None:
    queue = WorkQueue()
    queue.add("k")
    key = await queue.get()
    queue.add("k")
    queue.add("k")
    assert queue.processing == frozenset({"k"})
    assert len(queue) == 1
    queue.done(key)
    assert await queue.get() == "k"
    queue.done("k")
    assert len(queue) == 0


async def test_a_crashing_handler_is_retried_not_fatal() -> None:
    handler = Recorder({"ns/a": [RuntimeError("bug"), Result.done()]})
    queue = WorkQueue(base_delay=0.001)
    reconciler = Reconciler(queue, handler, workers=1)
    queue.add("ns/a")
    task = asyncio.get_running_loop().create_task(reconciler.run())
    await handler.wait_seen(2)
    await _end(task)
