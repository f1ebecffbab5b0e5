"""The webhooks' HTTPS server: ``POST /mutate-pods``, ``POST /validate-eviction`` and ``GET /healthz``, on a port of
its own (the API server calls it; the REST API's port, auth and middlewares are not involved).

Answers are AdmissionReviews (``review.py``); a body that is not one is a 400 JSON error, one larger than
``max_body_bytes`` a 413, never a 500. The TLS context comes from the caller (``runtime.py``): certificate files
(reloaded when they change) or the self-signed pair of ``selfsigned.py``."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ai_storage_orchestrator.admission.ports import JSON, PodAdmission
from ai_storage_orchestrator.admission.review import MalformedReview, review_eviction, review_pod_create

MUTATE_PODS_PATH = "/mutate-pods"
VALIDATE_EVICTION_PATH = "/validate-eviction"
HEALTH_PATH = "/healthz"
# An AdmissionReview of a pod CREATE carries the pod once (no oldObject); the API server stores objects up to 1.5 MiB.
MAX_REVIEW_BYTES = 4 * 1024 * 1024
SHUTDOWN_TIMEOUT_SECONDS = 5.0

log = structlog.get_logger(__name__)

Review = Callable[[object], Awaitable[JSON]]


def create_webhook_app(admission: PodAdmission, *, max_body_bytes: int = MAX_REVIEW_BYTES) -> web.Application:
    """The webhooks of `admission` as an aiohttp app; nothing listens yet (``serving``)."""

    async def mutate(body: object) -> JSON:
        return review_pod_create(admission, body)

    async def evict(body: object) -> JSON:
        return await review_eviction(admission, body)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post(MUTATE_PODS_PATH, _handler(mutate, webhook="mutate-pods", max_body_bytes=max_body_bytes))
    app.router.add_post(
        VALIDATE_EVICTION_PATH, _handler(evict, webhook="validate-eviction", max_body_bytes=max_body_bytes)
    )
    app.router.add_get(HEALTH_PATH, healthz)
    return app


def _handler(review: Review, *, webhook: str, max_body_bytes: int) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "payload_too_large", f"the review is larger than {max_body_bytes} bytes")
        except RequestPayloadError as error:  # a corrupt gzip or deflate body
            return _error(400, "malformed_admission_review", f"the body could not be read: {str(error)[:200]}")
        try:
            answer = await review(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as error:  # json.JSONDecodeError and MalformedReview are ValueErrors
            message = str(error) if isinstance(error, MalformedReview) else "the body is not JSON"
            log.warning("webhook.malformed_review", webhook=webhook, message=message)
            return _error(400, "malformed_admission_review", message)
        return web.json_response(answer)

    return handle


def _error(status: int, reason: str, message: str) -> web.Response:
    return web.json_response({"error": reason, "message": message, "details": {}}, status=status)


@asynccontextmanager
async def serving(app: web.Application, *, host: str, port: int, ssl_context: ssl.SSLContext) -> AsyncIterator[int]:
    """Serve `app` over HTTPS on `host`:`port` (0: a free port) until the block ends; yields the bound port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
    await runner.setup()
    bound = port
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound = _port_of(runner, default=port)
        log.info("webhooks.listening", host=host, port=bound)
        yield bound
    finally:
        await runner.cleanup()
        log.info("webhooks.stopped", host=host, port=bound)


def _port_of(runner: web.AppRunner, *, default: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return default
