"""The schemas of the OpenAPI document (components) and its error responses' descriptions.

Every component schema is generated from a pydantic model: the request from ``schema.request`` (the model requests
are validated with), the responses from ``schema.responses``; the target choice they show is ``schema.resource``'s,
the one the PodMigration CRD's schema is generated from."""

from __future__ import annotations

from typing import Any

from ai_storage_orchestrator.schema.dialects import openapi_schema
from ai_storage_orchestrator.schema.request import MigrationRequestBody
from ai_storage_orchestrator.schema.responses import RESPONSES, MigrationList

JSON = dict[str, Any]

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


MIGRATION_REQUEST: JSON = openapi_schema(MigrationRequestBody)


def component_schemas() -> JSON:
    """The document's ``components.schemas``, each generated from its model; a listing refers to `Migration`.

    Property names are the models' field names, but for the listing's `continue` (an alias: a Python keyword); the
    target choice's camelCase aliases are the PodMigration resource's, not the REST view's."""
    schemas: JSON = {"MigrationRequest": MIGRATION_REQUEST}
    for model in RESPONSES:
        schemas[model.__name__] = openapi_schema(
            model, by_alias=model is MigrationList, components={"Migration"} - {model.__name__}
        )
    return schemas
