"""One aiohttp session to the orchestrator's REST API, shared by the CLI and the comparison tool: base URL, bearer
token, TLS trust, user agent and timeout in one place.

``https://`` URLs are verified against the system trust store plus ``ca_file`` when given (a private CA, or the
orchestrator's self-signed certificate). The bearer token is a Kubernetes credential: it is sent only over HTTPS or
to a loopback address (``kubectl port-forward``, a local ``serve``); a token for plain HTTP to any other host is
refused before anything is sent (``InsecureTokenTransport``). Redirects are not followed, so a token never travels
to a place the user did not name."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from ai_storage_orchestrator import __version__

DEFAULT_URL = "http://127.0.0.1:8080"  # where `serve` listens by default
LOOPBACK_NAMES = frozenset({"localhost"})


class InsecureTokenTransport(aiohttp.ClientError):
    """A bearer token would go over plain HTTP to a host other than loopback; nothing was sent."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"refusing to send the bearer token over plain HTTP to {host}: use an https:// URL (with --ca-file for"
            " a private CA), or reach the orchestrator through loopback (e.g. kubectl port-forward to 127.0.0.1)"
        )
        self.host = host


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_refusal(url: str) -> InsecureTokenTransport | None:
    """Why a token may not be sent to `url`, or None when it may (HTTPS, or any scheme to loopback). A URL that
    cannot be parsed is left to aiohttp, which refuses it before sending anything."""
    try:
        parsed = URL(url)
    except ValueError:
        return None
    if parsed.scheme == "https" or not parsed.host or is_loopback_host(parsed.host):
        return None
    return InsecureTokenTransport(parsed.host)


def client_context(ca_file: str | None = None, ca_data: str | None = None) -> ssl.SSLContext:
    """Certificate and host name verified, against the system trust store plus `ca_file` and `ca_data` (PEM text)
    (``OSError`` or ``ssl.SSLError`` when that file is missing or either holds no certificate)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if ca_data:
        context.load_verify_locations(cadata=ca_data)
    return context


class RestSession:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        agent: str = "client",
        ca_file: str | None = None,
        ca_data: str | None = None,
        server_name: str | None = None,
    ) -> None:
        """A bad `ca_file` or `ca_data` fails here (``OSError``/``ssl.SSLError``), before any request.
        `server_name`: the name the server's certificate is verified for instead of the URL's host (a client that
        dials a Service's endpoint address but checks the Service's DNS name)."""
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.agent = agent
        self.ca_file = ca_file
        self.server_name = server_name
        self._ssl = client_context(ca_file, ca_data) if ca_file or ca_data else None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        headers = {"User-Agent": f"ai-storage-orchestrator-{self.agent}/{__version__}", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # True: aiohttp's verifying default context, i.e. the system trust store.
        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout), connector=connector
        )
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
        """Status, body text and headers; aiohttp's errors (unreachable, timeout, bad URL, certificate) pass through,
        and ``InsecureTokenTransport`` (an ``aiohttp.ClientError``) when the token may not go to this URL."""
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__} is used outside `async with`")
        if self.token and (refusal := token_refusal(self.url)) is not None:
            raise refusal
        async with self._session.request(
            method,
            self.url + path,
            json=body,
            params=params,
            headers=headers,
            allow_redirects=False,
            server_hostname=self.server_name,
        ) as response:
            return response.status, await response.text(errors="replace"), dict(response.headers)
