"""The schemas of the OpenAPI document (components): request, migration object, plan, list, errors, health.

The request and the target choice are generated from their pydantic models (``schema.request``, ``schema.resource``),
the models requests are validated with and the PodMigration CRD's schema is generated from."""

from __future__ import annotations

from typing import Any

from ai_storage_orchestrator.models import Action, ContainerKind, Phase, Status, Strategy
from ai_storage_orchestrator.schema.dialects import openapi_schema
from ai_storage_orchestrator.schema.request import STRATEGIES, MigrationRequestBody
from ai_storage_orchestrator.schema.resource import TargetChoice

JSON = dict[str, Any]

_ORDERINGS = [Strategy.MAKE_BEFORE_BREAK.value, Strategy.CHECKPOINT_RESTART.value]
ERROR_DESCRIPTIONS = {
    400: (
        "Malformed JSON (`invalid_json`), invalid fields or query parameters (`invalid_request`), or a `continue`"
        " token this server did not issue (`invalid_continue`); `details.fields` names each problem."
    ),
    401: (
        "No bearer token, or one the Kubernetes API server rejects or did not issue for this service's audience"
        " (`unauthorized`). Only with --auth=kubernetes."
    ),
    403: "The caller's RBAC does not allow the operation on pods in that namespace (`forbidden`).",
    404: (
        "Unknown pod (`pod_not_found`) or migration (`migration_not_found`). A migration in a namespace where the"
        " caller may not `get` pods is answered exactly like an unknown one."
    ),
    409: (
        "The pod is not on `source_node` or is terminating, a migration is already active for the pod"
        " (`migration_in_progress`, `details.migration_id`), or a migration can no longer be cancelled."
    ),
    413: "The request body is larger than the configured limit (`payload_too_large`).",
    415: "The request body is not `application/json` (`unsupported_media_type`).",
    422: (
        "The cluster forbids the migration: target not Ready or cordoned, taints not tolerated, not enough"
        " allocatable resources, nothing left to run, a controller-owned pod, or unsafe volumes; with no"
        " `target_node`, no node passes every fit check (`no_target_node`, each node's first reason in"
        " `details.refused`). `details.failed_checks` lists every failed check. (`preserve_pv` without a shared"
        " volume is accepted with a warning.)"
    ),
    429: (
        "Too many failed authentications from the caller's address (`auth_rate_limited`): `Retry-After` (and"
        " `details.retry_after_seconds`) says when to try again. Only with --auth=kubernetes."
    ),
    503: (
        "The orchestrator is not ready (`not_ready`), the API server is unreachable (`api_unavailable`), or"
        " credentials cannot be checked (`auth_unavailable`)."
    ),
}


def ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def object_schema(properties: JSON, *, required: list[str] | None = None, nullable: bool = False, **extra: Any) -> JSON:
    names = list(properties) if required is None else required
    schema: JSON = {"type": "object", "properties": properties, **extra}
    if names:  # OpenAPI 3.0 forbids an empty `required`
        schema["required"] = names
    if nullable:
        schema["nullable"] = True
    return schema


def string(*, nullable: bool = False, **extra: Any) -> JSON:
    schema: JSON = {"type": "string", **extra}
    if nullable:
        schema["nullable"] = True
    return schema


_RESOURCES = object_schema({"cpu_millicores": {"type": "integer"}, "memory_bytes": {"type": "integer"}})
_DECISION = object_schema(
    {
        "name": string(),
        "kind": string(enum=[k.value for k in ContainerKind]),
        "state": string(description="The container's state on the source, e.g. `terminated (exit 0, Completed)`."),
        "action": string(enum=[a.value for a in Action]),
        "reason": string(),
    }
)
TARGET_CHOICE = openapi_schema(TargetChoice)
_CHECKPOINT_VOLUME = {
    "volume": string(description="The pod volume the checkpoint goes to."),
    "mount_path": string(),
    "container": string(description="The container that mounts it."),
}

MIGRATION_REQUEST: JSON = openapi_schema(MigrationRequestBody)

CONTAINER_STATE_WORDS = ["running", "completed", "failed", "waiting", "unknown"]
_SEED_DETAILS = object_schema(
    {
        "new_pod_name": string(nullable=True, description="As `new_pod_name`."),
        "start_time": string(nullable=True, format="date-time", description="As `started_at`."),
        "end_time": string(nullable=True, format="date-time", description="As `finished_at`."),
        "duration": {"type": "number", "nullable": True, "description": "Seconds, as `duration_seconds`."},
        "container_states": {
            "type": "object",
            "additionalProperties": string(enum=CONTAINER_STATE_WORDS),
            "description": (
                "Container name -> its state on the source as the analysis recorded it, in one word (`completed`:"
                " exited 0; `failed`: exited otherwise). Empty until the migration is planned."
            ),
        },
    },
    description=(
        "The seed's field names for what this object also says in its own (compatibility with the seed's original"
        " clients). Not to be confused with the `details` of an error body."
    ),
)

MIGRATION = object_schema(
    {
        "migration_id": string(),
        "status": string(enum=[s.value for s in Status]),
        "phase": string(enum=[p.value for p in Phase], description="Fine-grained phase."),
        "message": string(nullable=True),
        "pod_name": string(),
        "pod_namespace": string(),
        "source_node": string(),
        "target_node": string(),
        "preserve_pv": {"type": "boolean"},
        "ignore_pdb": {"type": "boolean", "description": "PodDisruptionBudgets are ignored: the source is deleted."},
        "timeout_seconds": {"type": "integer"},
        "strategy": string(enum=list(STRATEGIES), description="As requested."),
        "ordering": string(nullable=True, enum=_ORDERINGS, description="What `strategy` resolved to, once planned."),
        "triggered_by": string(description="`api`, `annotation` or `cli`."),
        "cancel_requested": {"type": "boolean"},
        "force_restart": {"type": "boolean", "description": "As requested (the seed's field; no effect on the plan)."},
        "warnings": {
            "type": "array",
            "items": string(),
            "description": "Sentences on what was accepted but cannot be done as asked (preserve_pv, nothing shared).",
        },
        "new_pod_name": string(nullable=True),
        "containers": {"type": "array", "items": _DECISION},
        "checkpoint": object_schema(
            {"volume": object_schema(_CHECKPOINT_VOLUME), "saved": {"type": "boolean"}},
            required=[],
            nullable=True,
            description="Where the checkpoint goes and what was saved there.",
        ),
        "resources": object_schema(
            {"before": _RESOURCES, "after": _RESOURCES, "freed": _RESOURCES},
            required=["before", "after"],
            nullable=True,
            description="Summed container requests of the source pod and of the target pod.",
        ),
        "phase_transitions": {
            "type": "array",
            "items": object_schema(
                {
                    "phase": string(enum=[p.value for p in Phase]),
                    "time": string(format="date-time"),
                    "message": string(),
                }
            ),
        },
        "created_at": string(nullable=True, format="date-time"),
        "started_at": string(nullable=True, format="date-time"),
        "finished_at": string(nullable=True, format="date-time"),
        "duration_seconds": {"type": "number", "nullable": True},
        "error": object_schema(
            {"reason": string(nullable=True), "message": string(nullable=True)},
            nullable=True,
            description="Why the migration failed.",
        ),
        "details": _SEED_DETAILS,
        "target_choice": {**TARGET_CHOICE, "description": "Present only when the orchestrator chose the node."},
    }
)

MIGRATION_PLAN = object_schema(
    {
        "dry_run": {"type": "boolean", "enum": [True]},
        "strategy": string(enum=_ORDERINGS, description="What `auto` resolved to (or the requested strategy)."),
        "strategy_reason": string(),
        "new_pod_name": string(),
        "containers": {"type": "array", "items": _DECISION},
        "resources": object_schema({"before": _RESOURCES, "after": _RESOURCES}),
        "checkpoint_volume": object_schema(_CHECKPOINT_VOLUME, nullable=True),
        "checks": {
            "type": "array",
            "items": object_schema(
                {
                    "name": string(),
                    "passed": {"type": "boolean"},
                    "reason": string(description="The error reason this check gives when it fails."),
                    "message": string(),
                    "details": {"type": "object"},
                }
            ),
        },
        "ok": {"type": "boolean", "description": "True when a submit would be accepted."},
        "warnings": {
            "type": "array",
            "items": string(),
            "description": "What a submit would accept but not do as asked; recorded in the migration's `warnings`.",
        },
        "active_migration": string(nullable=True, description="The id of a migration already active for the pod."),
        "request": object_schema(
            {
                "pod_name": string(),
                "pod_namespace": string(),
                "source_node": string(),
                "target_node": string(),
                "preserve_pv": {"type": "boolean"},
                "timeout_seconds": {"type": "integer"},
                "strategy": string(enum=list(STRATEGIES)),
                "ignore_pdb": {"type": "boolean"},
            },
            additionalProperties=False,
        ),
        "target_choice": {**TARGET_CHOICE, "description": "Present only when the orchestrator chose the node."},
    }
)

# Named targets answer exactly as before the choice existed: no `target_choice` key.
MIGRATION["required"].remove("target_choice")
MIGRATION_PLAN["required"].remove("target_choice")

MIGRATION_LIST = object_schema(
    {
        "migrations": {"type": "array", "items": ref("Migration"), "description": "Newest first."},
        "count": {"type": "integer", "description": "How many migrations this answer (page) holds."},
        "continue": string(
            description="Present when `limit` cut the listing short: pass it as `continue` for the next page."
        ),
    },
    required=["migrations", "count"],
)
ERROR = object_schema(
    {
        "error": string(description="Stable machine-readable reason."),
        "message": string(description="A sentence for humans."),
        "details": {"type": "object"},
    },
    additionalProperties=False,
)
HEALTH = object_schema({"status": string(enum=["ok"])}, additionalProperties=False)
READY = object_schema({"status": string(enum=["ready"]), "message": string()}, additionalProperties=False)
