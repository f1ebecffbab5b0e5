"""The aiohttp application of the REST API (DESIGN.md §3): routes, middlewares and nothing that runs in the
background. The runtime that serves it adds its own cleanup contexts (watchers, controller) to the app it gets."""

from __future__ import annotations

from aiohttp import web

from ai_storage_orchestrator.api.auth import Authenticator
from ai_storage_orchestrator.api.handlers import Handlers, add_routes
from ai_storage_orchestrator.api.middlewares import build_middlewares
from ai_storage_orchestrator.api.openapi import build_openapi
from ai_storage_orchestrator.api.service import MigrationServiceProtocol
from ai_storage_orchestrator.metrics import Metrics

DEFAULT_MAX_BODY_BYTES = 64 * 1024


def create_app(
    *,
    service: MigrationServiceProtocol,
    metrics: Metrics,
    authenticator: Authenticator,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> web.Application:
    app = web.Application(
        client_max_size=max_body_bytes,
        middlewares=build_middlewares(metrics=metrics, max_body_bytes=max_body_bytes),
    )
    handlers = Handlers(
        service=service,
        authenticator=authenticator,
        metrics=metrics,
        openapi=build_openapi(authenticated=authenticator.requires_credentials),
        max_body_bytes=max_body_bytes,
    )
    add_routes(app, handlers)
    return app
