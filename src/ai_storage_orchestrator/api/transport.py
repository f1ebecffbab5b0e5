"""The HTTP server under the app, speaking the API's JSON error shape also where aiohttp answers by itself.

Requests that aiohttp's parser refuses before any handler or middleware runs (a header line too long, too many
headers, Content-Length with Transfer-Encoding, a bad chunk size) get aiohttp's own ``400`` in ``text/plain``. Here
they get ``{"error": "malformed_http_request", "message": ..., "details": {...}}`` like every other refusal (DESIGN.md
§3); a failure inside aiohttp itself is ``500 internal_error`` without its text. aiohttp builds its per-connection
``RequestHandler`` inside ``Server.__call__``; the runner below gives its server the subclass that answers in JSON.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from aiohttp.web_server import Server

from ai_storage_orchestrator.api.middlewares import compact_dumps

MALFORMED = "malformed_http_request"


def error_body(status: int, message: str | None) -> str:
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        said, reason = "the server could not handle the request", "internal_error"
    else:
        said, reason = f"the HTTP request could not be read: {message or _phrase(status)}", MALFORMED
    return compact_dumps({"error": reason, "message": said, "details": {"status": status}})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "refused"


class _JsonErrorHandler(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        super().handle_error(request, status, exc, message)  # logs it; raises if a response was already started
        response = web.Response(status=status, text=error_body(status, message), content_type="application/json")
        response.force_close()
        return response


class _JsonErrorServer(Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer aiohttp's own refusals in the API's JSON shape."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # the same object and state; only its handler factory differs
        return server


def runner_for(app: web.Application, **kwargs: Any) -> web.AppRunner:
    return JsonErrorAppRunner(app, **kwargs)
