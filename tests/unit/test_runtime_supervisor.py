"""supervision.Supervisor, under which the runtime runs its root tasks: a task that crashes or returns is logged,
reported down and restarted after a backoff. Fake work and a held sleep: nothing here waits on a timer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import pytest
import structlog

from ai_storage_orchestrator.supervision import RestartPolicy, Supervisor, jittered_exponential

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_leaked_tasks")]

DEADLINE = 5.0
T = TypeVar("T")


class HeldSleep:
    """Stands in for the backoff sleep: records each delay and holds the restart until `release()`."""

    def __init__(self) -> None:
        self.delays: asyncio.Queue[float] = asyncio.Queue()
        self._release: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, delay: float) -> None:
        self.delays.put_nowait(delay)
        await self._release.get()

    async def next_delay(self) -> float:
        return await _within(self.delays.get())

    def release(self) -> None:
        self._release.put_nowait(None)


class Work:
    """A fake root task: each run counts itself, then ends the way the test tells it to."""

    def __init__(self) -> None:
        self.runs = 0
        self.started: asyncio.Queue[int] = asyncio.Queue()
        self._endings: asyncio.Queue[BaseException | None] = asyncio.Queue()

    async def __call__(self) -> None:
        self.runs += 1
        self.started.put_nowait(self.runs)
        ending = await self._endings.get()
        if ending is not None:
            raise ending

    async def next_start(self) -> int:
        return await _within(self.started.get())

    def crash(self, error: BaseException) -> None:
        self._endings.put_nowait(error)

    def end(self) -> None:
        self._endings.put_nowait(None)


async def _within(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(DEADLINE):
        return await awaitable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sleep() -> HeldSleep:
    return HeldSleep()


@pytest.fixture
def attempts() -> list[int]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def policy(sleep: HeldSleep, attempts: list[int], clock: Clock) -> RestartPolicy:
    def backoff(attempt: int) -> float:
        attempts.append(attempt)
        return 0.25 * (attempt + 1)

    return RestartPolicy(backoff=backoff, sleep=sleep, stable_after=60.0, clock=clock)


@pytest.fixture
async def supervisor(policy: RestartPolicy) -> AsyncIterator[Supervisor]:
    running = Supervisor(policy)
    yield running
    await running.stop()


async def test_a_crashed_task_is_logged_reported_down_and_restarted(policy: RestartPolicy, sleep: HeldSleep) -> None:
    changes: list[bool] = []
    restarts: list[str] = []
    supervisor: Supervisor  # the local one, not the fixture of that name, as the lambda reads it
    supervisor = Supervisor(
        policy, on_change=lambda: changes.append(supervisor.health()[0]), on_restart=restarts.append
    )
    work = Work()
    supervisor.spawn("watch-pods", work)
    try:
        assert await work.next_start() == 1
        assert supervisor.health() == (True, "all tasks running")
        with structlog.testing.capture_logs() as logs:
            work.crash(RuntimeError("boom"))
            assert await sleep.next_delay() == 0.25
        ready, why = supervisor.health()
        assert not ready
        assert why == "tasks down: watch-pods (crashed: RuntimeError('boom'); restart after 0.2s)"
        crashed = [entry for entry in logs if entry["event"] == "task.crashed"]
        assert len(crashed) == 1
        assert crashed[0]["task"] == "watch-pods"
        assert crashed[0]["log_level"] == "error"
        assert isinstance(crashed[0]["exc_info"], RuntimeError), "the traceback goes with the line"
        assert restarts == []

        sleep.release()
        assert await work.next_start() == 2
        assert supervisor.health()[0]
        assert restarts == ["watch-pods"]
        assert changes == [False, True], "waiters are woken when the task goes down and when it is back"
    finally:
        await supervisor.stop()


async def test_a_task_that_returns_counts_as_a_crash(supervisor: Supervisor, sleep: HeldSleep) -> None:
    work = Work()
    supervisor.spawn("leadership", work)
    await work.next_start()
    work.end()
    await sleep.next_delay()
    assert supervisor.down["leadership"].reason == "returned, but it must run until stopped"
    sleep.release()
    assert await work.next_start() == 2


async def test_a_cancelled_error_from_inside_is_a_crash_not_a_stop(supervisor: Supervisor, sleep: HeldSleep) -> None:
    work = Work()
    supervisor.spawn("watch-nodes", work)
    await work.next_start()
    work.crash(asyncio.CancelledError())  # e.g. it awaited a future someone else cancelled
    await sleep.next_delay()
    assert supervisor.down["watch-nodes"].reason.startswith("cancelled from inside")
    sleep.release()
    assert await work.next_start() == 2


async def test_the_backoff_grows_with_each_crash_and_starts_over_after_a_stable_run(
    supervisor: Supervisor, sleep: HeldSleep, attempts: list[int], clock: Clock
) -> None:
    work = Work()
    supervisor.spawn("watch-pvs", work)
    for _ in range(3):
        await work.next_start()
        work.crash(ValueError("bad line"))
        await sleep.next_delay()
        sleep.release()
    await work.next_start()
    clock.now += 60.0  # this run lasts long enough to count as healthy
    work.crash(ValueError("bad line"))
    await sleep.next_delay()
    assert attempts == [0, 1, 2, 0]


async def test_stop_cancels_running_and_waiting_tasks_without_reporting_a_crash(
    supervisor: Supervisor, sleep: HeldSleep
) -> None:
    running, waiting = Work(), Work()
    supervisor.spawn("running", running)
    supervisor.spawn("waiting", waiting)
    await running.next_start()
    await waiting.next_start()
    waiting.crash(RuntimeError("boom"))
    await sleep.next_delay()
    with structlog.testing.capture_logs() as logs:
        await supervisor.stop()
    assert [entry for entry in logs if entry["event"] == "task.crashed"] == []
    assert supervisor.names == []
    assert supervisor.health()[0]


async def test_stop_ends_a_task_that_swallows_its_cancellation(supervisor: Supervisor) -> None:
    waiting, swallowed = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # and returns as if nothing happened

    supervisor.spawn("stubborn", stubborn)
    await _within(waiting.wait())
    with structlog.testing.capture_logs() as logs:
        await _within(supervisor.stop())
    assert swallowed.is_set()
    assert [entry for entry in logs if entry["event"] == "task.crashed"] == [], "a stopped task is not restarted"


async def test_names_are_unique(supervisor: Supervisor) -> None:
    work = Work()
    supervisor.spawn("leadership", work)
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.spawn("leadership", work)


@pytest.mark.parametrize(
    ("attempt", "lowest", "highest"),
    [(0, 0.25, 0.5), (1, 0.5, 1.0), (3, 2.0, 4.0), (10, 15.0, 30.0), (10_000, 15.0, 30.0)],
)
def test_jittered_exponential_doubles_up_to_the_maximum(attempt: int, lowest: float, highest: float) -> None:
    assert jittered_exponential(0.5, 30.0, rng=lambda: 0.0)(attempt) == lowest
    assert jittered_exponential(0.5, 30.0, rng=lambda: 1.0)(attempt) == highest
