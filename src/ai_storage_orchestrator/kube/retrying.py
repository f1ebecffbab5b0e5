"""The one place that decides which failed API calls are repeated, how long to wait between attempts and for how long
in all. Every repeat of a KubeApi call goes through ``RetryPolicy.call`` (tenacity); watches are never repeated here
(the reflector owns its reconnects), nor are execs (a repeated exec runs its command twice).

What is repeated depends on what the first attempt may have done:

* **Provably not acted on**, repeated for every call: no connection could be made (``never_sent``), or 429 from
  the API server's flow control (``throttled``; an eviction's 429 is a disruption budget's answer, never repeated).
* **Outcome unknown** -- the connection broke after the request went out, or a 5xx other than 501 -- repeated only
  for ``Idempotency.SAFE`` calls, whose repetition cannot do anything the first attempt did not (see
  ``KubeApi``'s methods for which are: reads, writes with a resourceVersion or UID precondition, creates of a named
  object, whose repeat after a lost success answers AlreadyExists).
* **Never**: any other 4xx. A 409 conflict reaches the caller, which re-reads; a 410 reaches the reflector.

Waits: jittered exponential backoff (``first_delay`` doubling to ``max_delay``, each delay drawn from its upper
half), or the server's ``Retry-After`` when that is longer. At most ``max_attempts`` attempts, and no attempt starts
later than ``time_budget`` seconds after the first one did (attempt durations count); a wait that would cross it is
not taken and the last error is raised, with its ``retry_after``. The controller's per-key backoff takes over from
there. The default budget (4 s) also stays below the leadership fence's margin (lease duration minus renew
deadline: 5 s by default), so a write repeated here still starts while the fence check made before it holds."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from ai_storage_orchestrator.kube.errors import KubeApiError

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Idempotency(Enum):
    SAFE = "safe"  # repeating it cannot do more than the first attempt did
    UNSAFE = "unsafe"  # the first attempt may have acted: repeated only when it provably did not


def should_retry(error: BaseException, idempotency: Idempotency) -> bool:
    if not isinstance(error, KubeApiError):
        return False
    if error.never_sent or error.throttled:
        return True
    return idempotency is Idempotency.SAFE and error.retriable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How failed calls are repeated. ``sleep`` and ``clock`` are injectable so tests run without waiting."""

    max_attempts: int = 5
    first_delay: float = 0.2
    max_delay: float = 2.0
    time_budget: float = 4.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic

    async def call(self, attempt: Callable[[], Awaitable[T]], *, idempotency: Idempotency, method: str, path: str) -> T:
        """``attempt()`` until it succeeds or the policy gives up (then its last KubeApiError is raised)."""
        started = self.clock()

        def out_of_attempts_or_time(state: RetryCallState) -> bool:
            elapsed = self.clock() - started
            return state.attempt_number >= self.max_attempts or elapsed + state.upcoming_sleep > self.time_budget

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "kube.retry",
                method=method,
                path=path,
                status=getattr(error, "status", None),
                reason=getattr(error, "reason", None),
                attempt=state.attempt_number,
                delay=round(state.upcoming_sleep, 3),
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda error: should_retry(error, idempotency)),
            wait=self.delay_before_next,
            stop=out_of_attempts_or_time,
            sleep=self.sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        async for attempt_state in retrying:
            with attempt_state:
                return await attempt()
        raise AssertionError("tenacity ends with a result or an exception")  # pragma: no cover

    def delay_before_next(self, state: RetryCallState) -> float:
        """The backoff for this attempt, or the server's Retry-After when longer."""
        backoff = min(self.max_delay, self.first_delay * 2.0 ** (state.attempt_number - 1))
        jittered = backoff * random.uniform(0.5, 1.0)
        error = state.outcome.exception() if state.outcome else None
        asked = error.retry_after if isinstance(error, KubeApiError) else None
        return max(jittered, asked or 0.0)


DEFAULT_POLICY = RetryPolicy()
NO_RETRIES = RetryPolicy(max_attempts=1)
