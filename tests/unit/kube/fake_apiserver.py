"""A scripted stand-in for kube-apiserver on 127.0.0.1: each request gets the next reply queued for its method and
path (a JSON body, or a stream of watch lines), and every request is recorded. KubeApi talks to it over real HTTP
through a kubernetes_asyncio ApiClient, so the whole I/O path -- headers, status, streaming -- is exercised."""

from __future__ import annotations

import json
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON = dict[str, Any]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: JSON = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    stream: tuple[bytes, ...] | None = None  # chunks of a watch stream, sent as they are (lines may be split)
    hang_up: bool = False  # close the connection without answering: the request arrived, its outcome is unknown


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any


def status(code: int, reason: str, message: str, **details: Any) -> JSON:
    """A metav1.Status, as the API server sends with every error."""
    body: JSON = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason}
    return body | {"message": message, "details": details}


def watch_line(event_type: str, obj: JSON) -> bytes:
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


class FakeApiServer:
    def __init__(self) -> None:
        self.requests: list[SeenRequest] = []
        self._replies: dict[tuple[str, str], deque[Reply]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    def script(self, method: str, path: str, *replies: Reply) -> None:
        self._replies.setdefault((method, path), deque()).extend(replies)

    def seen(self, method: str, path: str) -> list[SeenRequest]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(
            SeenRequest(request.method, request.path, dict(request.query), json.loads(raw) if raw else None)
        )
        queued = self._replies.get((request.method, request.path))
        if not queued:
            return web.json_response(status(500, "Unscripted", f"{request.method} {request.path}"), status=500)
        reply = queued.popleft()
        if reply.hang_up:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if reply.stream is None:
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        response = web.StreamResponse(status=reply.status, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for chunk in reply.stream:
            await response.write(chunk)
        await response.write_eof()
        return response


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
