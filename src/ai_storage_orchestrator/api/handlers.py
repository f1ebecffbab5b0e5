"""The HTTP handlers of DESIGN.md §3 and the route table that binds them to paths.

Calls with side effects or private data check the caller first: authentication before anything is read, then the
same rights on pods that the migration exercises (create and delete to move a pod, get or list to see migrations,
get and delete to cancel one) in the namespace concerned.

No existence oracle: a migration's namespace is only known once it is looked up, so GET and DELETE of one the caller
may not `get` pods of answer exactly what an unknown id answers (404 ``migration_not_found``, same message, same
details), as the API server does for objects hidden from a user; an unknown id costs the same authorization work (a
cluster-wide `get` review, its answer ignored). Only a caller who may see a migration learns that it cannot cancel it
(403). Every migration object leaves through ``views.public_migration``.

The migrations routes also answer with a trailing slash (``/api/migrations/``, ``.../<id>/``, ``.../<id>/status/``):
the seed's gin router redirected those, and clients that do not follow redirects (ours) must get the answer itself.
They are registered as routes of their own (``Handlers.slash_aliases``), not documented apart in the OpenAPI."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ai_storage_orchestrator import __version__
from ai_storage_orchestrator.api.auth import Authenticator
from ai_storage_orchestrator.api.middlewares import USER_KEY, json_response, request_id_of
from ai_storage_orchestrator.api.paging import cut_page
from ai_storage_orchestrator.api.schemas import (
    parse_json_object,
    parse_list_filters,
    parse_migration_request,
    refuse_query,
    require_migration_id,
)
from ai_storage_orchestrator.api.seed_metrics import seed_metrics
from ai_storage_orchestrator.api.service import MigrationServiceProtocol
from ai_storage_orchestrator.api.views import public_migration
from ai_storage_orchestrator.errors import Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType
from ai_storage_orchestrator.metrics import Metrics

JSON_MEDIA_TYPE = "application/json"
MIGRATIONS_PATHS = ("/api/migrations", "/api/v1/migrations")
MIGRATION_PATHS = tuple(f"{base}/{{migration_id}}" for base in MIGRATIONS_PATHS)
# The seed's clients poll `<migration>/status`: the same migration object, under the same authorization.
MIGRATION_STATUS_PATHS = tuple(f"{path}/status" for path in MIGRATION_PATHS)
HEALTHZ_PATH = "/healthz"
SEED_HEALTH_PATH = "/health"  # the seed's name, with the seed's body
HEALTH_PATHS = (HEALTHZ_PATH, SEED_HEALTH_PATH)
SEED_METRICS_PATH = "/api/v1/metrics"  # the seed's migration figures (JSON; Prometheus' are at /metrics)
SERVICE_NAME = "ai-storage-orchestrator"

JSON = dict[str, Any]
HandlerMethod = Callable[[web.Request], Awaitable[web.StreamResponse]]


def location_of(migration_id: str) -> str:
    return f"{MIGRATIONS_PATHS[0]}/{migration_id}"


def migration_not_found(migration_id: str) -> NotFound:
    """The one answer for an id that does not exist and for a migration hidden from the caller."""
    return NotFound(f"no migration with id {migration_id}", reason="migration_not_found")


class Handlers:
    def __init__(
        self,
        *,
        service: MigrationServiceProtocol,
        authenticator: Authenticator,
        metrics: Metrics,
        openapi: Mapping[str, Any],
        max_body_bytes: int,
    ) -> None:
        self.service = service
        self.authenticator = authenticator
        self.metrics = metrics
        self.openapi = dict(openapi)
        self.max_body_bytes = max_body_bytes

    async def _authorize(self, request: web.Request, *, verb: str, namespace: str | None) -> None:
        request[USER_KEY] = await self.authenticator.authorize(request, verb=verb, namespace=namespace)

    async def _authenticate(self, request: web.Request) -> None:
        request[USER_KEY] = await self.authenticator.authenticate(request)

    async def create_migration(self, request: web.Request) -> web.Response:
        refuse_query(request.query, route="POST /api/migrations")
        if request.content_type != JSON_MEDIA_TYPE:
            given = request.headers.get("Content-Type") or "none"
            raise UnsupportedMediaType(
                f"the request body must be {JSON_MEDIA_TYPE} (got {given[:100]})",
                reason="unsupported_media_type",
                details={"expected": JSON_MEDIA_TYPE},
            )
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise PayloadTooLarge(
                f"the request body is larger than the limit of {self.max_body_bytes} bytes",
                reason="payload_too_large",
                details={"max_body_bytes": self.max_body_bytes},
            )
        await self._authenticate(request)
        migration = parse_migration_request(parse_json_object(await request.read()))
        # Moving a pod deletes it and creates its replacement: the caller must be allowed both.
        for verb in ("create", "delete"):
            await self._authorize(request, verb=verb, namespace=migration.pod_namespace)
        if migration.dry_run:
            return json_response(self.service.dry_run(migration), status=200)
        created = public_migration(await self.service.submit(migration, request_id=request_id_of(request)))
        return json_response(created, status=202, headers={"Location": location_of(str(created["migration_id"]))})

    async def list_migrations(self, request: web.Request) -> web.Response:
        filters = parse_list_filters(request.query)
        await self._authorize(request, verb="list", namespace=filters.namespace)
        listed = self.service.list(status=filters.status, namespace=filters.namespace, pod=filters.pod)
        migrations = [public_migration(m) for m in listed]
        if not filters.paged:  # the whole listing, exactly as before paging existed
            return json_response({"migrations": migrations, "count": len(migrations)})
        return json_response(cut_page(migrations, limit=filters.limit, after=filters.after).to_json())

    async def _visible_migration(self, request: web.Request, migration_id: str) -> JSON:
        """The migration when the caller may `get` pods in its namespace; otherwise the very 404 of an unknown id."""
        await self._authenticate(request)  # anonymous callers learn nothing, not even whether the id exists
        try:
            migration = self.service.get(migration_id)
        except NotFound:
            with contextlib.suppress(Forbidden):  # the same work as for a hidden one, and the same answer
                await self._authorize(request, verb="get", namespace=None)
            raise migration_not_found(migration_id) from None
        try:
            await self._authorize(request, verb="get", namespace=migration["pod_namespace"])
        except Forbidden:
            raise migration_not_found(migration_id) from None
        return migration

    async def get_migration(self, request: web.Request) -> web.Response:
        migration_id = require_migration_id(request.match_info["migration_id"])
        return json_response(public_migration(await self._visible_migration(request, migration_id)))

    async def cancel_migration(self, request: web.Request) -> web.Response:
        migration_id = require_migration_id(request.match_info["migration_id"])
        migration = await self._visible_migration(request, migration_id)
        await self._authorize(request, verb="delete", namespace=migration["pod_namespace"])
        return json_response(public_migration(await self.service.cancel(migration_id)), status=202)

    async def migration_metrics(self, request: web.Request) -> web.Response:
        """The seed's figures over every migration: the authorization of a listing without a namespace filter."""
        refuse_query(request.query, route=f"GET {SEED_METRICS_PATH}")
        await self._authorize(request, verb="list", namespace=None)
        return json_response(seed_metrics(self.service.list()))

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def health(self, request: web.Request) -> web.Response:
        """The seed's `/health`: its clients test `.status == "healthy"`."""
        return json_response({"status": "healthy", "service": SERVICE_NAME, "version": __version__})

    async def readyz(self, request: web.Request) -> web.Response:
        ready, why = self.service.ready()
        if not ready:
            return json_response({"error": "not_ready", "message": why, "details": {}}, status=503)
        return json_response({"status": "ready", "message": why})

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi_document(self, request: web.Request) -> web.Response:
        return json_response(self.openapi)

    def routes(self) -> list[tuple[str, str, HandlerMethod]]:
        """(method, path, handler) of every documented route: the OpenAPI document describes exactly these."""
        table: list[tuple[str, str, HandlerMethod]] = []
        for path in MIGRATIONS_PATHS:
            table += [("POST", path, self.create_migration), ("GET", path, self.list_migrations)]
        for path in MIGRATION_PATHS:
            table += [("GET", path, self.get_migration), ("DELETE", path, self.cancel_migration)]
        table += [("GET", path, self.get_migration) for path in MIGRATION_STATUS_PATHS]
        table += [("GET", SEED_METRICS_PATH, self.migration_metrics)]
        table += [("GET", HEALTHZ_PATH, self.healthz), ("GET", SEED_HEALTH_PATH, self.health)]
        table += [
            ("GET", "/readyz", self.readyz),
            ("GET", "/metrics", self.metrics_text),
            ("GET", "/api/openapi.json", self.openapi_document),
        ]
        return table

    def slash_aliases(self) -> list[tuple[str, str, HandlerMethod]]:
        """Every migrations route again with a trailing slash, served like the path without it."""
        return [(method, f"{path}/", handler) for method, path, handler in self.routes() if is_migrations_path(path)]


def is_migrations_path(path: str) -> bool:
    return any(path == base or path.startswith(f"{base}/") for base in MIGRATIONS_PATHS)


def add_routes(app: web.Application, handlers: Handlers) -> None:
    for method, path, handler in [*handlers.routes(), *handlers.slash_aliases()]:
        app.router.add_route(method, path, handler)
