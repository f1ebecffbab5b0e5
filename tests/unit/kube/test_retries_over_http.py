"""KubeApi's retries against the fake API server: what is repeated, after how long, and what reaches the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import structlog

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import LEASES, PODS, TOKEN_REVIEWS, KubeApi
from tests.unit.kube.conftest import FakeTime
from tests.unit.kube.fake_apiserver import JSON, FakeApiServer, Reply, closed_port, status

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_leaked_tasks")]

Call = Callable[[KubeApi], Awaitable[JSON]]
KubeAt = Callable[..., KubeApi]

POD_PATH = "/api/v1/namespaces/ns/pods/a"
PODS_PATH = "/api/v1/namespaces/ns/pods"
LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/leader"
POD = {"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "3"}}

UNAVAILABLE = Reply(503, status(503, "ServiceUnavailable", "etcd leader changed"))
INTERNAL = Reply(500, status(500, "InternalError", "etcdserver: request timed out"))
THROTTLED = Reply(429, status(429, "TooManyRequests", "Too many requests, please try again later."))


async def test_a_429_is_retried_after_the_servers_retry_after(
    server: FakeApiServer, kube: KubeApi, fake_time: FakeTime
) -> None:
    throttled = Reply(429, THROTTLED.body, headers={"Retry-After": "3"})
    server.script("GET", POD_PATH, throttled, Reply(body=POD))
    with structlog.testing.capture_logs() as logs:
        assert await kube.get(PODS, "a", namespace="ns") == POD

    assert fake_time.sleeps == [3.0]
    assert len(server.seen("GET", POD_PATH)) == 2
    (retry,) = [e for e in logs if e["event"] == "kube.retry"]
    assert dict(retry) | {"log_level": "warning"} == {
        "event": "kube.retry",
        "log_level": "warning",
        "method": "GET",
        "path": POD_PATH,
        "status": 429,
        "reason": "TooManyRequests",
        "attempt": 1,
        "delay": 3.0,
    }


async def test_a_retry_after_beyond_the_time_budget_is_not_waited_for_and_reaches_the_caller(
    server: FakeApiServer, kube: KubeApi, fake_time: FakeTime
) -> None:
    server.script("GET", POD_PATH, Reply(429, THROTTLED.body, headers={"Retry-After": "30"}))
    with pytest.raises(KubeApiError) as raised:
        await kube.get(PODS, "a", namespace="ns")
    assert raised.value.retry_after == 30.0, "the caller's own backoff can honour it"
    assert fake_time.sleeps == []


async def test_server_errors_are_retried_with_growing_jittered_delays(
    server: FakeApiServer, kube: KubeApi, fake_time: FakeTime
) -> None:
    server.script("GET", POD_PATH, UNAVAILABLE, INTERNAL, Reply(body=POD))
    assert await kube.get(PODS, "a", namespace="ns") == POD

    first, second = fake_time.sleeps
    assert 0.1 <= first <= 0.2
    assert 0.2 <= second <= 0.4


async def test_a_conflict_reaches_the_caller_at_once(server: FakeApiServer, kube: KubeApi, fake_time: FakeTime) -> None:
    lease = {"metadata": {"name": "leader", "namespace": "ns", "resourceVersion": "8"}, "spec": {}}
    server.script("PUT", LEASE_PATH, Reply(409, status(409, "Conflict", "the object has been modified")))
    with pytest.raises(KubeApiError) as raised:
        await kube.replace(LEASES, lease)
    assert raised.value.conflict
    assert len(server.seen("PUT", LEASE_PATH)) == 1
    assert fake_time.sleeps == []


async def test_a_refused_connection_gives_up_after_the_attempt_limit(kube_at: KubeAt, fake_time: FakeTime) -> None:
    kube = kube_at(f"http://127.0.0.1:{closed_port()}", max_attempts=4)
    with pytest.raises(KubeApiError) as raised:
        await kube.get(PODS, "a", namespace="ns")
    assert raised.value.status == 0
    assert raised.value.never_sent
    assert len(fake_time.sleeps) == 3


async def test_a_refused_write_is_retried_whatever_the_call(kube_at: KubeAt, fake_time: FakeTime) -> None:
    """Nothing reached the server, so even an eviction or an unconditional patch can be sent again."""
    kube = kube_at(f"http://127.0.0.1:{closed_port()}", max_attempts=2)
    with pytest.raises(KubeApiError):
        await kube.evict("a", namespace="ns")
    assert len(fake_time.sleeps) == 1


HANG_UP = Reply(hang_up=True)


async def test_a_connection_lost_after_sending_is_retried_for_a_read(
    server: FakeApiServer, kube: KubeApi, fake_time: FakeTime
) -> None:
    """aiohttp itself resends a GET once on a dropped connection (RFC 9112 9.3.1); the policy repeats it further."""
    server.script("GET", POD_PATH, HANG_UP, HANG_UP, Reply(body=POD))
    assert await kube.get(PODS, "a", namespace="ns") == POD
    assert fake_time.sleeps


async def test_a_connection_lost_after_sending_is_not_retried_for_an_unsafe_write(
    server: FakeApiServer, kube: KubeApi, fake_time: FakeTime
) -> None:
    server.script("PATCH", POD_PATH, HANG_UP)
    with pytest.raises(KubeApiError) as raised:
        await kube.merge_patch(PODS, "a", {"metadata": {"labels": {"x": "1"}}}, namespace="ns")
    assert raised.value.status == 0
    assert not raised.value.never_sent
    assert len(server.seen("PATCH", POD_PATH)) == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    ("method", "path", "call"),
    [
        ("PATCH", POD_PATH, lambda k: k.merge_patch(PODS, "a", {"metadata": {"resourceVersion": "3"}}, namespace="ns")),
        ("PUT", POD_PATH, lambda k: k.replace(PODS, POD)),
        ("DELETE", POD_PATH, lambda k: k.delete(PODS, "a", namespace="ns", uid="u-1")),
        ("POST", PODS_PATH, lambda k: k.create(PODS, POD, namespace="ns")),
        ("POST", "/apis/authentication.k8s.io/v1/tokenreviews", lambda k: k.create(TOKEN_REVIEWS, {"spec": {}})),
    ],
    ids=["patch-with-resource-version", "put-with-resource-version", "delete-with-uid", "named-create", "review"],
)
async def test_safe_writes_are_retried_after_a_server_error(
    server: FakeApiServer, kube: KubeApi, fake_time: FakeTime, method: str, path: str, call: Call
) -> None:
    server.script(method, path, INTERNAL, Reply(body=POD))
    assert await call(kube) == POD
    assert len(server.seen(method, path)) == 2


@pytest.mark.parametrize(
    ("method", "path", "call"),
    [
        ("PATCH", POD_PATH, lambda k: k.merge_patch(PODS, "a", {"metadata": {"labels": {"x": "1"}}}, namespace="ns")),
        ("DELETE", POD_PATH, lambda k: k.delete(PODS, "a", namespace="ns")),
        ("POST", PODS_PATH, lambda k: k.create(PODS, {"metadata": {"generateName": "a-"}}, namespace="ns")),
        ("POST", f"{POD_PATH}/eviction", lambda k: k.evict("a", namespace="ns", uid="u-1")),
    ],
    ids=["unconditional-patch", "delete-without-uid", "generate-name-create", "eviction"],
)
async def test_unsafe_writes_are_not_retried_after_a_server_error_but_are_after_throttling(
    server: FakeApiServer, kube: KubeApi, fake_time: FakeTime, method: str, path: str, call: Call
) -> None:
    server.script(method, path, UNAVAILABLE, THROTTLED, Reply(body=POD))
    with pytest.raises(KubeApiError) as raised:
        await call(kube)
    assert raised.value.status == 503, "the server may have acted on it: the caller decides"
    assert await call(kube) == POD
    assert len(server.seen(method, path)) == 3


async def test_a_repeated_create_whose_first_attempt_succeeded_answers_already_exists(
    server: FakeApiServer, kube: KubeApi
) -> None:
    """The case callers of a named create must handle: the response was lost, the object is there."""
    server.script(
        "POST",
        PODS_PATH,
        Reply(504, status(504, "Timeout", "request timed out")),
        Reply(409, status(409, "AlreadyExists", 'pods "a" already exists')),
    )
    with pytest.raises(KubeApiError) as raised:
        await kube.create(PODS, POD, namespace="ns")
    assert raised.value.already_exists
    assert len(server.seen("POST", PODS_PATH)) == 2


async def test_an_eviction_refused_by_a_disruption_budget_is_its_answer(
    server: FakeApiServer, kube: KubeApi, fake_time: FakeTime
) -> None:
    refused = status(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.")
    server.script("POST", f"{POD_PATH}/eviction", Reply(429, refused, headers={"Retry-After": "1"}))
    with pytest.raises(KubeApiError) as raised:
        await kube.evict("a", namespace="ns", uid="u-1")
    assert raised.value.blocked_by_disruption_budget
    assert not raised.value.retriable
    assert fake_time.sleeps == []
