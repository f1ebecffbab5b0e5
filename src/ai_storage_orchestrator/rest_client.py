"""One aiohttp session to the orchestrator's REST API, shared by the CLI and the comparison tool: base URL, bearer
token, user agent and timeout in one place."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import aiohttp

from ai_storage_orchestrator import __version__

DEFAULT_URL = "http://127.0.0.1:8080"  # where `serve` listens by default


class RestSession:
    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0, agent: str = "client") -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.agent = agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        headers = {"User-Agent": f"ai-storage-orchestrator-{self.agent}/{__version__}", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, str, Mapping[str, str]]:
        """Status, body text and headers; aiohttp's errors (unreachable, timeout, bad URL) pass through."""
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__} is used outside `async with`")
        async with self._session.request(
            method, self.url + path, json=body, params=params, headers=headers
        ) as response:
            return response.status, await response.text(errors="replace"), dict(response.headers)
