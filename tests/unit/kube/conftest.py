"""A fake API server per test, a KubeApi pointed at it, and a clock that only moves when the retry policy sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.kube.resources import KubeApi
from ai_storage_orchestrator.kube.retrying import RetryPolicy
from tests.unit.kube.fake_apiserver import FakeApiServer


class FakeTime:
    """Stands in for asyncio.sleep and time.monotonic: a sleep is recorded and moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def policy(self, *, max_attempts: int = 5, time_budget: float = 4.0) -> RetryPolicy:
        return RetryPolicy(max_attempts=max_attempts, time_budget=time_budget, sleep=self.sleep, clock=self.clock)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    fake = FakeApiServer()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture(scope="session")
async def shared_api_client() -> AsyncIterator[client.ApiClient]:
    """One ApiClient for the whole tier (building one loads the CA store: ~0.1 s), pointed at each test's server."""
    api_client = client.ApiClient(configuration=client.Configuration())  # plain HTTP, no credentials
    try:
        yield api_client
    finally:
        await api_client.close()


@pytest.fixture
def kube_at(shared_api_client: client.ApiClient, fake_time: FakeTime) -> Callable[..., KubeApi]:
    """A KubeApi talking to ``url`` with the fake clock's retry policy."""

    def at(url: str, *, max_attempts: int = 5) -> KubeApi:
        shared_api_client.configuration.host = url
        return KubeApi(shared_api_client, request_timeout=5.0, retry_policy=fake_time.policy(max_attempts=max_attempts))

    return at


@pytest.fixture
def kube(server: FakeApiServer, kube_at: Callable[..., KubeApi]) -> KubeApi:
    return kube_at(server.url)
