"""The OpenAPI 3.0.3 document of the REST API, built in code from the same constants the validators use.

Every route of ``handlers.Handlers.routes`` appears here with every status it can answer (a unit test keeps the two
in step and checks real responses against these schemas)."""

from __future__ import annotations

from typing import Any

from ai_storage_orchestrator import __version__
from ai_storage_orchestrator.api import schemas
from ai_storage_orchestrator.api.handlers import MIGRATION_PATHS, MIGRATIONS_PATHS
from ai_storage_orchestrator.api.middlewares import REQUEST_ID_HEADER
from ai_storage_orchestrator.models import Action, ContainerKind, Phase, Status, Strategy

JSON = dict[str, Any]

_ORDERINGS = [Strategy.MAKE_BEFORE_BREAK.value, Strategy.CHECKPOINT_RESTART.value]
_ERROR_DESCRIPTIONS = {
    400: "Malformed JSON (`invalid_json`) or invalid fields (`invalid_request`, `details.fields` names each problem).",
    401: "No bearer token, or one the Kubernetes API server rejects (`unauthorized`). Only with --auth=kubernetes.",
    403: "The caller's RBAC does not allow the operation on pods in that namespace (`forbidden`).",
    404: "Unknown pod (`pod_not_found`) or migration (`migration_not_found`).",
    409: (
        "The pod is not on `source_node` or is terminating, a migration is already active for the pod"
        " (`migration_in_progress`, `details.migration_id`), or a migration can no longer be cancelled."
    ),
    413: "The request body is larger than the configured limit (`payload_too_large`).",
    415: "The request body is not `application/json` (`unsupported_media_type`).",
    422: (
        "The cluster forbids the migration: target not Ready or cordoned, taints not tolerated, not enough"
        " allocatable resources, nothing left to run, a controller-owned pod, unsafe volumes, or `preserve_pv`"
        " without a shared volume. `details.failed_checks` lists every failed check."
    ),
    503: (
        "The orchestrator is not ready (`not_ready`), the API server is unreachable (`api_unavailable`), or"
        " credentials cannot be checked (`auth_unavailable`)."
    ),
}


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: JSON, *, required: list[str] | None = None, nullable: bool = False, **extra: Any) -> JSON:
    names = list(properties) if required is None else required
    schema: JSON = {"type": "object", "properties": properties, **extra}
    if names:  # OpenAPI 3.0 forbids an empty `required`
        schema["required"] = names
    if nullable:
        schema["nullable"] = True
    return schema


def _string(*, nullable: bool = False, **extra: Any) -> JSON:
    schema: JSON = {"type": "string", **extra}
    if nullable:
        schema["nullable"] = True
    return schema


def _name(pattern: str, max_length: int, description: str) -> JSON:
    return _string(minLength=1, maxLength=max_length, pattern=f"^{pattern}$", description=description)


def _timeout(description: str) -> JSON:
    return {
        "type": "integer",
        "minimum": schemas.TIMEOUT_MIN,
        "maximum": schemas.TIMEOUT_MAX,
        "default": schemas.DEFAULT_TIMEOUT,
        "description": description,
    }


_RESOURCES = _object({"cpu_millicores": {"type": "integer"}, "memory_bytes": {"type": "integer"}})
_DECISION = _object(
    {
        "name": _string(),
        "kind": _string(enum=[k.value for k in ContainerKind]),
        "state": _string(description="The container's state on the source, e.g. `terminated (exit 0, Completed)`."),
        "action": _string(enum=[a.value for a in Action]),
        "reason": _string(),
    }
)
_CHECKPOINT_VOLUME = {
    "volume": _string(description="The pod volume the checkpoint goes to."),
    "mount_path": _string(),
    "container": _string(description="The container that mounts it."),
}

MIGRATION_REQUEST: JSON = _object(
    {
        "pod_name": _name(schemas.DNS1123_SUBDOMAIN.pattern, schemas.SUBDOMAIN_MAX, "The pod to move."),
        "pod_namespace": _name(schemas.DNS1123_LABEL.pattern, schemas.LABEL_MAX, "Its namespace."),
        "source_node": _name(schemas.DNS1123_SUBDOMAIN.pattern, schemas.SUBDOMAIN_MAX, "The node it runs on now."),
        "target_node": _name(schemas.DNS1123_SUBDOMAIN.pattern, schemas.SUBDOMAIN_MAX, "The node to move it to."),
        "preserve_pv": {
            "type": "boolean",
            "default": False,
            "description": "Keep the pod's data on a shared persistent volume (refused when it has none).",
        },
        "timeout_seconds": _timeout("Deadline of the whole migration."),
        "timeout": _timeout("Alias of `timeout_seconds` (the seed's name); give one of the two, not both."),
        "strategy": _string(enum=list(schemas.STRATEGIES), default=Strategy.AUTO.value),
        "dry_run": {
            "type": "boolean",
            "default": False,
            "description": "Answer 200 with the plan and every check, without changing anything.",
        },
    },
    required=list(schemas.NAME_FIELDS),
    additionalProperties=False,
)
# `timeout` and `timeout_seconds` are one setting under two names: not both.
MIGRATION_REQUEST["not"] = {"required": list(schemas.TIMEOUT_FIELDS)}

MIGRATION = _object(
    {
        "migration_id": _string(),
        "status": _string(enum=[s.value for s in Status]),
        "phase": _string(enum=[p.value for p in Phase], description="Fine-grained phase."),
        "message": _string(nullable=True),
        "pod_name": _string(),
        "pod_namespace": _string(),
        "source_node": _string(),
        "target_node": _string(),
        "preserve_pv": {"type": "boolean"},
        "timeout_seconds": {"type": "integer"},
        "strategy": _string(enum=list(schemas.STRATEGIES), description="As requested."),
        "ordering": _string(nullable=True, enum=_ORDERINGS, description="What `strategy` resolved to, once planned."),
        "triggered_by": _string(description="`api`, `annotation` or `cli`."),
        "cancel_requested": {"type": "boolean"},
        "new_pod_name": _string(nullable=True),
        "containers": {"type": "array", "items": _DECISION},
        "checkpoint": _object(
            {"volume": _object(_CHECKPOINT_VOLUME), "saved": {"type": "boolean"}},
            required=[],
            nullable=True,
            description="Where the checkpoint goes and what was saved there.",
        ),
        "resources": _object(
            {"before": _RESOURCES, "after": _RESOURCES, "freed": _RESOURCES},
            required=["before", "after"],
            nullable=True,
            description="Summed container requests of the source pod and of the target pod.",
        ),
        "phase_transitions": {
            "type": "array",
            "items": _object(
                {
                    "phase": _string(enum=[p.value for p in Phase]),
                    "time": _string(format="date-time"),
                    "message": _string(),
                }
            ),
        },
        "created_at": _string(nullable=True, format="date-time"),
        "started_at": _string(nullable=True, format="date-time"),
        "finished_at": _string(nullable=True, format="date-time"),
        "duration_seconds": {"type": "number", "nullable": True},
        "error": _object(
            {"reason": _string(nullable=True), "message": _string(nullable=True)},
            nullable=True,
            description="Why the migration failed.",
        ),
    }
)

MIGRATION_PLAN = _object(
    {
        "dry_run": {"type": "boolean", "enum": [True]},
        "strategy": _string(enum=_ORDERINGS, description="What `auto` resolved to (or the requested strategy)."),
        "strategy_reason": _string(),
        "new_pod_name": _string(),
        "containers": {"type": "array", "items": _DECISION},
        "resources": _object({"before": _RESOURCES, "after": _RESOURCES}),
        "checkpoint_volume": _object(_CHECKPOINT_VOLUME, nullable=True),
        "checks": {
            "type": "array",
            "items": _object(
                {
                    "name": _string(),
                    "passed": {"type": "boolean"},
                    "reason": _string(description="The error reason this check gives when it fails."),
                    "message": _string(),
                    "details": {"type": "object"},
                }
            ),
        },
        "ok": {"type": "boolean", "description": "True when a submit would be accepted."},
        "active_migration": _string(nullable=True, description="The id of a migration already active for the pod."),
        "request": _object(
            {
                "pod_name": _string(),
                "pod_namespace": _string(),
                "source_node": _string(),
                "target_node": _string(),
                "preserve_pv": {"type": "boolean"},
                "timeout_seconds": {"type": "integer"},
                "strategy": _string(enum=list(schemas.STRATEGIES)),
            },
            additionalProperties=False,
        ),
    }
)

MIGRATION_LIST = _object({"migrations": {"type": "array", "items": _ref("Migration")}, "count": {"type": "integer"}})
ERROR = _object(
    {
        "error": _string(description="Stable machine-readable reason."),
        "message": _string(description="A sentence for humans."),
        "details": {"type": "object"},
    },
    additionalProperties=False,
)
HEALTH = _object({"status": _string(enum=["ok"])}, additionalProperties=False)
READY = _object({"status": _string(enum=["ready"]), "message": _string()}, additionalProperties=False)


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


def _migration_paths(collection: str, item: str, suffix: str) -> JSON:
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
            503,
            ok={
                **_ok(200, "dry_run: the plan with every check; nothing was changed.", _ref("MigrationPlan")),
                **_ok(202, "Accepted: the migration object.", _ref("Migration"), Location=location),
            },
        ),
        secured=True,
        requestBody={"required": True, "content": _json_content(_ref("MigrationRequest"))},
        description="Needs `create` and `delete` on pods in `pod_namespace`.",
    )
    listing = _operation(
        f"listMigrations{suffix}",
        f"List migrations, newest first{legacy}",
        _responses(400, 401, 403, 503, ok=_ok(200, "The matching migrations.", _ref("MigrationList"))),
        secured=True,
        parameters=[{"$ref": f"#/components/parameters/{name}"} for name in ("Status", "Namespace", "Pod")],
        description="Needs `list` on pods in `namespace`, or cluster-wide without that filter.",
    )
    item_parameters = [{"$ref": "#/components/parameters/MigrationId"}]
    get = _operation(
        f"getMigration{suffix}",
        f"One migration{legacy}",
        _responses(401, 403, 404, 503, ok=_ok(200, "The migration object.", _ref("Migration"))),
        secured=True,
        parameters=item_parameters,
        description="Needs `get` on pods in the migration's namespace.",
    )
    cancel = _operation(
        f"cancelMigration{suffix}",
        f"Cancel a migration; it rolls back to the source pod{legacy}",
        _responses(401, 403, 404, 409, 503, ok=_ok(202, "Cancel requested: the migration object.", _ref("Migration"))),
        secured=True,
        parameters=item_parameters,
        description="Needs `delete` on pods in the migration's namespace. 409 when it ended or is removing the source.",
    )
    return {collection: {"post": create, "get": listing}, item: {"get": get, "delete": cancel}}


def _service_paths() -> JSON:
    return {
        "/healthz": {
            "get": _operation(
                "healthz", "Liveness: 200 while the process serves", _ok(200, "Alive.", _ref("Health")), secured=False
            )
        },
        "/readyz": {
            "get": _operation(
                "readyz",
                "Readiness: caches synced and the API server reachable",
                {
                    **_ok(200, "Ready.", _ref("Ready")),
                    "503": {"description": "Not ready (`not_ready`).", "content": _json_content(_ref("Error"))},
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
            "description": "A migration id; one that cannot exist is answered 404.",
            "schema": {"type": "string", "pattern": f"^{schemas.MIGRATION_ID.pattern}$"},
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
    }


def build_openapi(*, authenticated: bool = True) -> JSON:
    """The document of this server; with `authenticated=False` (--auth=none) no operation asks for credentials."""
    paths: JSON = {}
    for collection, item in zip(MIGRATIONS_PATHS, MIGRATION_PATHS, strict=True):
        paths |= _migration_paths(collection, item, "" if collection == MIGRATIONS_PATHS[0] else "V1")
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
                f" `{REQUEST_ID_HEADER}`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {
                "MigrationRequest": MIGRATION_REQUEST,
                "Migration": MIGRATION,
                "MigrationPlan": MIGRATION_PLAN,
                "MigrationList": MIGRATION_LIST,
                "Error": ERROR,
                "Health": HEALTH,
                "Ready": READY,
            },
            "responses": {
                f"Error{code}": {"description": text, "content": _json_content(_ref("Error"))}
                for code, text in _ERROR_DESCRIPTIONS.items()
            },
            "parameters": _parameters(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A Kubernetes token (service account or user), checked with a TokenReview and"
                        " SubjectAccessReviews on pods. Applies when the orchestrator runs with --auth=kubernetes;"
                        " with --auth=none (loopback only) no credentials are needed."
                    ),
                }
            },
        },
    }
