"""The orchestrator's REST API as the comparison uses it: readiness, version, POST a migration, GET it until done."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from ai_storage_orchestrator.compare.cluster import CompareError
from ai_storage_orchestrator.rest_client import RestSession

JSON = dict[str, Any]
TERMINAL = frozenset({"completed", "failed", "cancelled"})
POLL_INTERVAL = 0.05  # also the resolution of the client-observed migration time


class OrchestratorClient(RestSession):
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        ca_file: str | None = None,
        ca_data: str | None = None,
        server_name: str | None = None,
    ) -> None:
        super().__init__(
            url,
            token=token,
            timeout=timeout,
            agent="compare",
            ca_file=ca_file,
            ca_data=ca_data,
            server_name=server_name,
        )

    async def _call(self, method: str, path: str, body: JSON | None = None) -> tuple[int, Any]:
        try:
            status, text, _headers = await self.send(method, path, body=body)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise CompareError(
                f"cannot reach the orchestrator at {self.url}: {error or type(error).__name__}"
            ) from None
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    async def ready(self) -> tuple[bool, str]:
        status, body = await self._call("GET", "/readyz")
        return status == 200, body if isinstance(body, str) else json.dumps(body)

    async def version(self) -> str | None:
        status, body = await self._call("GET", "/api/openapi.json")
        if status == 200 and isinstance(body, dict):
            info = body.get("info") or {}
            return str(info.get("version")) if info.get("version") else None
        return None

    async def create(self, body: JSON) -> JSON:
        status, answer = await self._call("POST", "/api/migrations", body)
        if status != 202 or not isinstance(answer, dict):
            message = answer.get("message") if isinstance(answer, dict) else answer
            reason = answer.get("error") if isinstance(answer, dict) else f"http_{status}"
            raise CompareError(f"the orchestrator refused the migration: HTTP {status} {reason}: {message}")
        return answer

    async def get(self, migration_id: str) -> JSON:
        status, answer = await self._call("GET", f"/api/migrations/{quote(migration_id, safe='')}")
        if status != 200 or not isinstance(answer, dict):
            raise CompareError(f"GET migration {migration_id}: HTTP {status}: {answer}")
        return answer

    async def wait(
        self, migration: JSON, *, timeout: float, on_change: Callable[[JSON], None] | None = None
    ) -> tuple[JSON, float]:
        """Poll GET every ``POLL_INTERVAL`` until the migration ends; the final object and when it was seen ended
        (``time.monotonic()``)."""
        deadline = time.monotonic() + timeout
        last: tuple[Any, Any] | None = None
        current = migration
        while True:
            key = (current.get("phase"), current.get("message"))
            if key != last and on_change is not None:
                on_change(current)
            last = key
            if current.get("status") in TERMINAL:
                return current, time.monotonic()
            if time.monotonic() > deadline:
                raise CompareError(
                    f"migration {current.get('migration_id')} not finished within {timeout:g}s"
                    f" (phase {current.get('phase')}: {current.get('message')})"
                )
            await asyncio.sleep(POLL_INTERVAL)  # the orchestrator offers no watch over REST: poll
            current = await self.get(str(migration["migration_id"]))
