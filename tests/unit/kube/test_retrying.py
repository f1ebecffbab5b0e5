"""The retry policy on its own: which errors it repeats for which calls, its limits, and Retry-After parsing."""

from __future__ import annotations

import pytest

from ai_storage_orchestrator.kube.errors import KubeApiError, parse_retry_after, raise_for_status
from ai_storage_orchestrator.kube.retrying import NO_RETRIES, Idempotency, should_retry
from tests.unit.kube.conftest import FakeTime

pytestmark = pytest.mark.unit

SAFE, UNSAFE = Idempotency.SAFE, Idempotency.UNSAFE
PDB_MESSAGE = (
    "POST /api/v1/namespaces/ns/pods/a/eviction: Cannot evict pod as it would violate the pod's disruption budget."
)


@pytest.mark.parametrize(
    ("error", "safe", "unsafe"),
    [
        (KubeApiError(0, "ConnectionError", "refused", sent=False), True, True),
        (KubeApiError(0, "ConnectionError", "reset by peer"), True, False),
        (KubeApiError(429, "TooManyRequests", "Too many requests"), True, True),
        (KubeApiError(429, "TooManyRequests", PDB_MESSAGE), False, False),
        (KubeApiError(500, "InternalError", "etcd timeout"), True, False),
        (KubeApiError(503, "ServiceUnavailable", "x"), True, False),
        (KubeApiError(504, "Timeout", "x"), True, False),
        (KubeApiError(501, "NotImplemented", "x"), False, False),
        (KubeApiError(409, "Conflict", "the object has been modified"), False, False),
        (KubeApiError(409, "AlreadyExists", "exists"), False, False),
        (KubeApiError(410, "Expired", "too old"), False, False),
        (KubeApiError(404, "NotFound", "x"), False, False),
        (KubeApiError(422, "Invalid", "x"), False, False),
        (KubeApiError(403, "Forbidden", "x"), False, False),
        (ValueError("not JSON"), False, False),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, Exception) else None,
)
def test_what_is_repeated_for_safe_and_unsafe_calls(error: BaseException, safe: bool, unsafe: bool) -> None:
    assert should_retry(error, SAFE) is safe
    assert should_retry(error, UNSAFE) is unsafe


async def test_no_attempt_starts_after_the_time_budget(fake_time: FakeTime) -> None:
    """Slow failing attempts count against the budget: 1.5 s each with a 4 s budget leaves room for three."""
    starts: list[float] = []

    async def slow_failure() -> None:
        starts.append(fake_time.now)
        fake_time.now += 1.5
        raise KubeApiError(503, "ServiceUnavailable", "slow")

    with pytest.raises(KubeApiError):
        await fake_time.policy(max_attempts=10, time_budget=4.0).call(
            slow_failure, idempotency=SAFE, method="GET", path="/x"
        )
    assert len(starts) == 3
    assert starts[-1] <= 4.0


async def test_delays_grow_to_the_cap(fake_time: FakeTime) -> None:
    async def failure() -> None:
        raise KubeApiError(0, "ConnectionError", "refused", sent=False)

    with pytest.raises(KubeApiError):
        await fake_time.policy(max_attempts=7, time_budget=60.0).call(
            failure, idempotency=UNSAFE, method="POST", path="/x"
        )
    caps = [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert len(fake_time.sleeps) == len(caps)
    assert all(cap / 2 <= delay <= cap for delay, cap in zip(fake_time.sleeps, caps, strict=True))


async def test_other_exceptions_pass_through_at_once(fake_time: FakeTime) -> None:
    attempts = 0

    async def broken() -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("not JSON")

    with pytest.raises(ValueError, match="not JSON"):
        await fake_time.policy().call(broken, idempotency=SAFE, method="GET", path="/x")
    assert attempts == 1


async def test_no_retries_makes_one_attempt() -> None:
    attempts = 0

    async def unavailable() -> None:
        nonlocal attempts
        attempts += 1
        raise KubeApiError(503, "ServiceUnavailable", "x")

    with pytest.raises(KubeApiError):
        await NO_RETRIES.call(unavailable, idempotency=SAFE, method="GET", path="/x")
    assert attempts == 1


@pytest.mark.parametrize(
    ("header", "body", "expected"),
    [
        ("3", None, 3.0),
        (" 1.5 ", None, 1.5),
        (None, {"details": {"retryAfterSeconds": 2}}, 2.0),
        ("4", {"details": {"retryAfterSeconds": 2}}, 4.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None, None),
        ("-1", None, None),
        ("nan", None, None),
        (None, {"details": "odd"}, None),
        (None, None, None),
    ],
)
def test_retry_after_comes_from_the_header_or_the_status_details(
    header: str | None, body: object, expected: float | None
) -> None:
    assert parse_retry_after(header, body) == expected


def test_raise_for_status_keeps_the_status_reason_and_retry_after() -> None:
    with pytest.raises(KubeApiError) as raised:
        raise_for_status(
            429, b'{"reason": "TooManyRequests", "message": "slow down"}', "GET /x", headers={"Retry-After": "1"}
        )
    assert (raised.value.status, raised.value.reason, raised.value.retry_after) == (429, "TooManyRequests", 1.0)
    assert raised.value.message == "GET /x: slow down"

    with pytest.raises(KubeApiError) as raised:
        raise_for_status(502, b"<html>bad gateway</html>", "GET /x")
    assert (raised.value.reason, raised.value.retry_after) == ("Unknown", None)
    assert raised.value.retriable
