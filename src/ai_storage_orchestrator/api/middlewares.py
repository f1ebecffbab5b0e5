"""What every request goes through, outermost first: a request id (header + log context), metrics and the access
log line, then the translation of every error into the JSON error shape of DESIGN.md §3."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestPayloadError
from aiohttp.web_urldispatcher import MatchInfoError

from ai_storage_orchestrator.api.auth import AuthRateLimited
from ai_storage_orchestrator.errors import OrchestratorError
from ai_storage_orchestrator.metrics import Metrics

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
USER_KEY = web.RequestKey("user", str)
UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CLIENT_CLOSED = 499  # nginx's code for "the client went away before the answer"

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HTTP_REASONS = {
    400: "invalid_request",
    404: "route_not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

log = structlog.get_logger(__name__)


def request_id_of(request: web.Request) -> str:
    return request.get(REQUEST_ID_KEY) or ""


def route_template(request: web.Request) -> str:
    """The route's template (``/api/migrations/{migration_id}``), never the raw path: bounded metric labels."""
    match_info = request.match_info
    if isinstance(match_info, MatchInfoError):
        return UNMATCHED_ROUTE
    resource = match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def compact_dumps(value: object) -> str:
    """The one serializer of every JSON answer: no spaces after ``,`` and ``:``. The seed's original scripts find
    fields with ``grep '"migration_id":"<id>"'``, which a space after the colon defeats."""
    return json.dumps(value, separators=(",", ":"))


def json_response(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer (``application/json``) serialized by ``compact_dumps``: every handler and error path uses it."""
    return web.json_response(body, status=status, headers=headers, dumps=compact_dumps)


def error_response(status: int, reason: str, message: str, details: dict[str, object] | None = None) -> web.Response:
    return json_response({"error": reason, "message": message, "details": details or {}}, status=status)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    request[REQUEST_ID_KEY] = request_id
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # only non-error statuses get here (redirects); the rest became JSON
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def observing_middleware(metrics: Metrics) -> Middleware:
    """Counts and times every request by route template, and logs one `http.request` line for it."""

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(request)
            method = request.method if request.method in KNOWN_METHODS else "other"
            metrics.http_requests.labels(route=route, method=method, code=str(status)).inc()
            metrics.http_duration.labels(route=route, method=method).observe(elapsed)
            log.info(
                "http.request",
                method=request.method,
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 3),
                user=request.get(USER_KEY),
            )

    return observe


def errors_middleware(*, max_body_bytes: int) -> Middleware:
    """Every failure becomes ``{"error", "message", "details"}``; only a bug in the orchestrator is a 500."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except OrchestratorError as error:
            if error.http_status >= 500:
                log.warning("http.unavailable", reason=error.reason, message=error.message)
            response = json_response(error.to_json(), status=error.http_status)
            if error.http_status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="ai-storage-orchestrator"'
            if isinstance(error, AuthRateLimited):
                response.headers["Retry-After"] = str(error.retry_after)
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _from_http_exception(request, exc, max_body_bytes=max_body_bytes)
        except RequestPayloadError as exc:  # a body that cannot be read: a corrupt gzip or deflate stream, say
            said = f"the request body could not be read: {str(exc)[:200]}"
            return error_response(400, "malformed_http_request", said)
        except Exception:
            log.exception("http.internal_error", method=request.method, path=request.path)
            return error_response(
                500,
                "internal_error",
                f"internal error in the orchestrator; its log has the details (request id {request_id_of(request)})",
            )

    return errors


def _from_http_exception(request: web.Request, exc: web.HTTPException, *, max_body_bytes: int) -> web.Response:
    path = request.path if len(request.path) <= 200 else request.path[:200] + "..."
    details: dict[str, object] = {}
    if isinstance(exc, web.HTTPNotFound):
        message = f"no route for {request.method} {path}"
    elif isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        message = f"method {request.method} is not allowed on {path} (allowed: {', '.join(allowed)})"
        details["allowed_methods"] = allowed
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        message = f"the request body is larger than the limit of {max_body_bytes} bytes"
        details["max_body_bytes"] = max_body_bytes
    else:
        message = exc.reason
    reason = _HTTP_REASONS.get(exc.status) or re.sub(r"[^a-z0-9]+", "_", exc.reason.lower()).strip("_")
    response = error_response(exc.status, reason or "http_error", message, details)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def build_middlewares(*, metrics: Metrics, max_body_bytes: int) -> list[Middleware]:
    """Outermost first: the request id wraps everything (error responses carry it and its log context too)."""
    return [request_id_middleware, observing_middleware(metrics), errors_middleware(max_body_bytes=max_body_bytes)]
