"""The OpenAPI 3.0.3 document of the REST API, built in code from the same constants the validators use.

Every route of ``handlers.Handlers.routes`` appears here with every status it can answer (a unit test keeps the two
in step and checks real responses against these schemas). The schemas themselves are in ``openapi_schemas``, all
generated from the pydantic models of ``schema/``. The document is also checked in (``OPENAPI_PATHS``, written by
``python -m ai_storage_orchestrator.api.generate``); a test fails when a committed copy differs from
``render_openapi()`` and when the server answers anything else."""

from __future__ import annotations

import json
from typing import Any

from ai_storage_orchestrator import __version__
from ai_storage_orchestrator.api import schemas
from ai_storage_orchestrator.api.handlers import (
    HEALTHZ_PATH,
    MIGRATION_PATHS,
    MIGRATION_STATUS_PATHS,
    MIGRATIONS_PATHS,
    SEED_HEALTH_PATH,
    SEED_METRICS_PATH,
)
from ai_storage_orchestrator.api.middlewares import REQUEST_ID_HEADER
from ai_storage_orchestrator.api.openapi_schemas import ERROR_DESCRIPTIONS, component_schemas, ref

JSON = dict[str, Any]
# Relative to the repository root: the packaged copy (package_data) and the one for readers of the repository.
OPENAPI_PATHS = ("src/ai_storage_orchestrator/api/openapi.json", "docs/openapi.json")
RETRY_AFTER: JSON = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}


def _json_content(schema: JSON) -> JSON:
    return {"application/json": {"schema": schema}}


def _responses(*codes: int, ok: JSON | None = None) -> JSON:
    responses: JSON = dict(ok or {})
    for code in codes:
        responses[str(code)] = {"$ref": f"#/components/responses/Error{code}"}
    return responses


def _ok(code: int, description: str, schema: JSON, **headers: JSON) -> JSON:
    response: JSON = {"description": description, "content": _json_content(schema)}
    if headers:
        response["headers"] = headers
    return {str(code): response}


def _operation(operation_id: str, summary: str, responses: JSON, *, secured: bool, **extra: Any) -> JSON:
    parameters = [{"$ref": "#/components/parameters/RequestId"}, *extra.pop("parameters", [])]
    return {
        "operationId": operation_id,
        "summary": summary,
        "parameters": parameters,
        "security": [{"bearer": []}] if secured else [],
        "responses": responses,
        **extra,
    }


def _migration_paths(collection: str, item: str, status_path: str, suffix: str) -> JSON:
    legacy = " (older path, same behaviour)" if suffix else ""
    location = {
        "description": "Where the migration object is: `/api/migrations/<id>`.",
        "schema": {"type": "string"},
    }
    create = _operation(
        f"createMigration{suffix}",
        f"Request a migration, or plan one with dry_run{legacy}",
        _responses(
            400,
            401,
            403,
            404,
            409,
            413,
            415,
            422,
            429,
            503,
            ok={
                **_ok(200, "dry_run: the plan with every check; nothing was changed.", ref("MigrationPlan")),
                **_ok(202, "Accepted: the migration object.", ref("Migration"), Location=location),
            },
        ),
        secured=True,
        requestBody={"required": True, "content": _json_content(ref("MigrationRequest"))},
        description="Needs `create` and `delete` on pods in `pod_namespace`.",
    )
    listing = _operation(
        f"listMigrations{suffix}",
        f"List migrations, newest first{legacy}",
        _responses(
            400,
            401,
            403,
            429,
            503,
            ok=_ok(200, "The matching migrations (one page with `limit`).", ref("MigrationList")),
        ),
        secured=True,
        parameters=[
            {"$ref": f"#/components/parameters/{name}"} for name in ("Status", "Namespace", "Pod", "Limit", "Continue")
        ],
        description=(
            "Needs `list` on pods in `namespace`, or cluster-wide without that filter. Without `limit` every matching"
            " migration is answered. With `limit`, at most that many; when more remain the answer carries a"
            " `continue` token: repeat the request (same filters and limit) with `continue=<token>` for the next page."
            " Paging is by key, not offset: migrations created meanwhile never repeat or hide one still to come."
        ),
    )
    item_parameters = [{"$ref": "#/components/parameters/MigrationId"}]
    get = _operation(
        f"getMigration{suffix}",
        f"One migration{legacy}",
        _responses(401, 404, 429, 503, ok=_ok(200, "The migration object.", ref("Migration"))),
        secured=True,
        parameters=item_parameters,
        description=(
            "Needs `get` on pods in the migration's namespace; without it the answer is the 404 of an unknown id."
        ),
    )
    status = _operation(
        f"getMigrationStatus{suffix}",
        f"One migration, at the path the seed's clients poll{legacy}",
        _responses(401, 404, 429, 503, ok=_ok(200, "The migration object.", ref("Migration"))),
        secured=True,
        parameters=item_parameters,
        description=(
            "The same answer and authorization as `GET` of the migration itself, which carries the seed's"
            " `start_time` and (once ended) `end_time` and `duration_seconds` at its top level."
        ),
    )
    cancel = _operation(
        f"cancelMigration{suffix}",
        f"Cancel a migration; it rolls back to the source pod{legacy}",
        _responses(
            401, 403, 404, 409, 429, 503, ok=_ok(202, "Cancel requested: the migration object.", ref("Migration"))
        ),
        secured=True,
        parameters=item_parameters,
        description=(
            "Needs `get` (else the 404 of an unknown id) and `delete` (else 403) on pods in the migration's namespace."
            " 409 when it ended or is removing the source."
        ),
    )
    return {
        collection: {"post": create, "get": listing},
        item: {"get": get, "delete": cancel},
        status_path: {"get": status},
    }


def _service_paths() -> JSON:
    return {
        HEALTHZ_PATH: {
            "get": _operation(
                "healthz",
                "Liveness: 200 while the process serves",
                _ok(200, "Alive.", ref("Health")),
                secured=False,
            )
        },
        SEED_HEALTH_PATH: {
            "get": _operation(
                "health",
                "Liveness under the seed's name, with the seed's body (`status: healthy`)",
                _ok(200, "Alive.", ref("SeedHealth")),
                secured=False,
            )
        },
        SEED_METRICS_PATH: {
            "get": _operation(
                "getMigrationMetrics",
                "The seed's migration figures: counts, mean duration, mean request savings",
                _responses(400, 401, 403, 429, 503, ok=_ok(200, "The figures.", ref("SeedMetrics"))),
                secured=True,
                description=(
                    "Needs `list` on pods cluster-wide, like a listing without `namespace` (403 otherwise). Computed"
                    " from the migrations a listing answers; takes no query parameters."
                ),
            )
        },
        "/readyz": {
            "get": _operation(
                "readyz",
                "Readiness: every cache synced and every background task running (the reason names what is not)",
                {
                    **_ok(200, "Ready.", ref("Ready")),
                    "503": {"description": "Not ready (`not_ready`).", "content": _json_content(ref("Error"))},
                },
                secured=False,
            )
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "Prometheus metrics (text exposition format)",
                {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                secured=False,
            )
        },
        "/api/openapi.json": {
            "get": _operation(
                "openapi",
                "This document",
                _ok(200, "The OpenAPI 3.0.3 document.", {"type": "object"}),
                secured=False,
            )
        },
    }


def _parameters() -> JSON:
    return {
        "RequestId": {
            "name": REQUEST_ID_HEADER,
            "in": "header",
            "required": False,
            "description": (
                "Any value is accepted: one of up to 128 `A-Za-z0-9._-` characters is echoed in the response and the"
                " logs; anything else (or none) is replaced by a generated id."
            ),
            "schema": {"type": "string"},
        },
        "MigrationId": {
            "name": "migration_id",
            "in": "path",
            "required": True,
            "description": (
                "A migration id (the PodMigration's name: ids the API gives are at most 63 of [a-z0-9-]; one made"
                " with kubectl may be any DNS-1123 subdomain); one that cannot exist is answered 404."
            ),
            "schema": {
                "type": "string",
                "pattern": f"^{schemas.DNS1123_SUBDOMAIN.pattern}$",
                "maxLength": schemas.SUBDOMAIN_MAX,
            },
        },
        "Status": {
            "name": "status",
            "in": "query",
            "required": False,
            "description": "Only migrations with this status (empty: any).",
            "schema": {"type": "string", "enum": ["", *schemas.STATUSES]},
        },
        "Namespace": {
            "name": "namespace",
            "in": "query",
            "required": False,
            "description": "Only migrations of pods in this namespace (empty: all).",
            "schema": {
                "type": "string",
                "maxLength": schemas.LABEL_MAX,
                "pattern": f"^(?:{schemas.DNS1123_LABEL.pattern})?$",
            },
        },
        "Pod": {
            "name": "pod",
            "in": "query",
            "required": False,
            "description": "Only migrations of pods with this name (empty: all).",
            "schema": {
                "type": "string",
                "maxLength": schemas.SUBDOMAIN_MAX,
                "pattern": f"^(?:{schemas.DNS1123_SUBDOMAIN.pattern})?$",
            },
        },
        "Limit": {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "At most this many migrations in the answer; without it, all of them.",
            "schema": {"type": "integer", "minimum": schemas.LIMIT_MIN, "maximum": schemas.LIMIT_MAX},
        },
        "Continue": {
            "name": "continue",
            "in": "query",
            "required": False,
            "description": (
                "The `continue` token of the previous page, passed back as it is (empty: the first page). Tokens are"
                " opaque; the pattern only tells a well-formed one, and anything else is answered 400"
                " `invalid_continue`."
            ),
            "schema": {
                "type": "string",
                "maxLength": schemas.CONTINUE_MAX,
                "pattern": f"^(?:{schemas.CONTINUE_TOKEN.pattern})?$",
            },
        },
    }


def build_openapi(*, authenticated: bool = True) -> JSON:
    """The document of this server; with `authenticated=False` (--auth=none) no operation asks for credentials."""
    paths: JSON = {}
    for collection, item, status in zip(MIGRATIONS_PATHS, MIGRATION_PATHS, MIGRATION_STATUS_PATHS, strict=True):
        paths |= _migration_paths(collection, item, status, "" if collection == MIGRATIONS_PATHS[0] else "V1")
    paths |= _service_paths()
    if not authenticated:
        for operations in paths.values():
            for operation in operations.values():
                operation["security"] = []
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ai-storage-orchestrator",
            "version": __version__,
            "description": (
                "Moves AI-training pods between Kubernetes nodes without re-running finished work. Every error is"
                ' `{"error": <reason>, "message": <sentence>, "details": {...}}`; every response carries'
                f" `{REQUEST_ID_HEADER}`. The migrations paths also answer with a trailing slash (`/api/migrations/`,"
                " `/api/migrations/<id>/`, `/api/migrations/<id>/status/`, and the same under `/api/v1`), exactly like"
                " the paths listed here."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "responses": {
                f"Error{code}": {
                    "description": text,
                    "content": _json_content(ref("Error")),
                    **({"headers": {"Retry-After": RETRY_AFTER}} if code == 429 else {}),
                }
                for code, text in ERROR_DESCRIPTIONS.items()
            },
            "parameters": _parameters(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A Kubernetes token minted for this service's audience (--token-audience, by default"
                        " `ai-storage-orchestrator`: `kubectl create token <service-account> --audience"
                        " ai-storage-orchestrator`), checked with a TokenReview and SubjectAccessReviews on pods."
                        " Applies when the orchestrator runs with --auth=kubernetes; with --auth=none (loopback only)"
                        " no credentials are needed. Clients send it only over HTTPS or to a loopback address."
                    ),
                }
            },
        },
    }


def render_openapi() -> str:
    """The checked-in document's text: the document of a server that asks for credentials (--auth=kubernetes)."""
    return json.dumps(build_openapi(), indent=2) + "\n"
