"""Fault injection between a replica and the API server: every request of one replica passes `NetworkFaults`, which
can cut the link (a partition), fail a share of the requests (500, 503, 429, reset) or slow them down."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import aiohttp

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import KubeApi

_ERRORS = (
    (500, "InternalError", "chaos: injected server error"),
    (503, "ServiceUnavailable", "chaos: injected unavailability"),
    (429, "TooManyRequests", "chaos: injected throttling"),
    (0, "ConnectionError", "chaos: injected connection reset"),
)


class NetworkFaults:
    """What the link does right now; the campaign changes it while a scenario runs."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.partitioned = False
        self.error_rate = 0.0
        self.max_latency = 0.0
        self.injected = 0

    def calm(self) -> None:
        self.partitioned, self.error_rate, self.max_latency = False, 0.0, 0.0

    async def before_request(self, method: str, path: str) -> None:
        if self.partitioned:
            self.injected += 1
            raise KubeApiError(0, "ConnectionError", f"{method} {path}: chaos: partitioned from the API server")
        if self.max_latency > 0:
            await asyncio.sleep(self.rng.uniform(0, self.max_latency))  # injected latency, by design
        if self.error_rate > 0 and self.rng.random() < self.error_rate:
            self.injected += 1
            status, reason, message = self.rng.choice(_ERRORS)
            raise KubeApiError(status, reason, f"{method} {path}: {message}")


class FaultyKubeApi(KubeApi):
    """KubeApi whose every request first passes the replica's NetworkFaults (watches included)."""

    def __init__(self, api_client: Any, faults: NetworkFaults) -> None:
        super().__init__(api_client)
        self.faults = faults

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int | bool] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | float | None = None,
    ) -> aiohttp.ClientResponse:
        await self.faults.before_request(method, path)
        return await super()._request(method, path, query=query, body=body, content_type=content_type, timeout=timeout)
