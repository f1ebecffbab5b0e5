from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ai_storage_orchestrator.api.app import create_app
from ai_storage_orchestrator.api.auth import AllowAll, Authenticator
from ai_storage_orchestrator.api.transport import runner_for
from ai_storage_orchestrator.metrics import Metrics
from tests.unit.api.fakes import FakeService

Client = TestClient[web.Request, web.Application]
Serve = Callable[..., Awaitable[Client]]


class ProductionServer(TestServer):
    """aiohttp's test server on the runner `serve` uses (api/transport.py), so raw HTTP reaches the same code."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return runner_for(self.app, **kwargs)


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def serve(service: FakeService, metrics: Metrics) -> AsyncIterator[Serve]:
    """Start the app on 127.0.0.1 with the fake service; closed at teardown."""
    clients: list[Client] = []

    async def start(*, authenticator: Authenticator | None = None, max_body_bytes: int = 65536) -> Client:
        app = create_app(
            service=service,
            metrics=metrics,
            authenticator=authenticator or AllowAll(),
            max_body_bytes=max_body_bytes,
        )
        client: Client = TestClient(ProductionServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def client(serve: Serve) -> Client:
    return await serve()
