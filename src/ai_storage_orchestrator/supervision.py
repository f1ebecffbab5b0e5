"""Supervised background tasks. A root task runs until it is cancelled; one that raises, or returns, is logged
(`task.crashed`, with its traceback), reported down (`health()` names it) and started again after a jittered
exponential backoff (`task.restarted`). The attempt count goes back to zero once a run lasted `stable_after`.

Only the standard library and structlog: any layer may supervise its tasks with it."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)

Backoff = Callable[[int], float]  # restart attempt (0, 1, 2, ...) → seconds to wait before it
Sleep = Callable[[float], Awaitable[None]]
Work = Callable[[], Awaitable[None]]  # makes a fresh coroutine for every (re)start


def jittered_exponential(
    initial: float = 0.5, maximum: float = 30.0, *, rng: Callable[[], float] = random.random
) -> Backoff:
    """initial·2^attempt, capped at `maximum`, scaled by a random factor in [0.5, 1) so that tasks crashed by the
    same cause do not restart in lockstep."""

    def delay(attempt: int) -> float:
        return min(maximum, initial * 2.0 ** min(attempt, 64)) * (0.5 + 0.5 * rng())

    return delay


@dataclass(frozen=True)
class RestartPolicy:
    backoff: Backoff = field(default_factory=jittered_exponential)
    sleep: Sleep = asyncio.sleep  # tests hold restarts with their own
    stable_after: float = 60.0  # a run this long was healthy: the next crash starts the backoff over
    clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class Outage:
    """Why a task is down, and when it will be started again."""

    reason: str
    restart_in: float


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@dataclass(frozen=True)
class _Ending:
    summary: str
    error: BaseException | None


class Supervisor:
    """Runs named root tasks and restarts them when they end. `on_change` is called whenever a task goes down or
    comes back (e.g. to wake readiness waiters), `on_restart` with the task's name at each restart (e.g. a counter)."""

    def __init__(
        self,
        policy: RestartPolicy | None = None,
        *,
        on_change: Callable[[], None] | None = None,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self._on_change = on_change
        self._on_restart = on_restart
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._down: dict[str, Outage] = {}

    def spawn(self, name: str, work: Work) -> None:
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        self._tasks[name] = asyncio.get_running_loop().create_task(self._keep_running(name, work), name=name)

    @property
    def names(self) -> list[str]:
        return list(self._tasks)

    @property
    def down(self) -> dict[str, Outage]:
        return dict(self._down)

    def health(self) -> tuple[bool, str]:
        if not self._down:
            return True, "all tasks running"
        outages = ", ".join(f"{name} ({o.reason}; restart after {o.restart_in:.1f}s)" for name, o in self._down.items())
        return False, f"tasks down: {outages}"

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._down.clear()

    async def _keep_running(self, name: str, work: Work) -> None:
        policy = self.policy
        attempt = 0
        while True:
            started = policy.clock()
            reason = await self._run_once(work)
            if policy.clock() - started >= policy.stable_after:
                attempt = 0
            delay = policy.backoff(attempt)
            attempt += 1
            log.error("task.crashed", task=name, reason=reason.summary, restart_in=delay, exc_info=reason.error)
            self._set_down(name, Outage(reason.summary, delay))
            await policy.sleep(delay)
            self._set_down(name, None)
            log.info("task.restarted", task=name, attempt=attempt)
            if self._on_restart is not None:
                self._on_restart(name)

    async def _run_once(self, work: Work) -> _Ending:
        """Run `work` to its end and say how it ended. A task being stopped is never restarted: its cancellation
        propagates, even when `work` swallowed it or ended with another error while it was cancelled."""
        try:
            await work()
        except asyncio.CancelledError as error:
            if _being_cancelled():
                raise
            return _Ending(f"cancelled from inside: {error!r}", error)  # e.g. a cancelled future it awaited
        except Exception as error:
            ending = _Ending(f"crashed: {error!r}", error)
        else:
            ending = _Ending("returned, but it must run until stopped", None)
        if _being_cancelled():
            raise asyncio.CancelledError
        return ending

    def _set_down(self, name: str, outage: Outage | None) -> None:
        if outage is None:
            self._down.pop(name, None)
        else:
            self._down[name] = outage
        if self._on_change is not None:
            self._on_change()
