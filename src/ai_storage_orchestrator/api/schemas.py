"""Request bodies and query strings of the REST API, parsed and validated into core models (DESIGN.md §3).

Every problem is collected before anything is raised, so one 400 names them all in ``details.fields``. The body of a
migration request is validated by its pydantic model (``schema.request``, which also words the problems); JSON types
are taken literally: ``"true"`` or ``1`` is not a boolean, ``true`` is not an integer."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping
from pydantic import ValidationError

from ai_storage_orchestrator.controller.records import FORCE_RESTART
from ai_storage_orchestrator.errors import InvalidRequest, NotFound
from ai_storage_orchestrator.models import MigrationRequest, Status
from ai_storage_orchestrator.schema.names import (  # re-exported: the OpenAPI document and clients use them
    DNS1123_LABEL as DNS1123_LABEL,
)
from ai_storage_orchestrator.schema.names import (
    DNS1123_SUBDOMAIN as DNS1123_SUBDOMAIN,
)
from ai_storage_orchestrator.schema.names import (
    LABEL_MAX as LABEL_MAX,
)
from ai_storage_orchestrator.schema.names import (
    LABEL_PROBLEM as LABEL_PROBLEM,
)
from ai_storage_orchestrator.schema.names import (
    MIGRATION_ID as MIGRATION_ID,
)
from ai_storage_orchestrator.schema.names import (
    SUBDOMAIN_MAX as SUBDOMAIN_MAX,
)
from ai_storage_orchestrator.schema.names import (
    SUBDOMAIN_PROBLEM as SUBDOMAIN_PROBLEM,
)
from ai_storage_orchestrator.schema.names import is_name
from ai_storage_orchestrator.schema.request import STRATEGIES as STRATEGIES
from ai_storage_orchestrator.schema.request import MigrationRequestBody, json_type
from ai_storage_orchestrator.schema.request import problems as request_problems

JSON = dict[str, Any]

# The request body's fields, in the order problems are listed (``schema.request.MigrationRequestBody``).
REQUEST_FIELDS = tuple(MigrationRequestBody.model_fields)
REQUIRED_NAME_FIELDS = tuple(name for name, field in MigrationRequestBody.model_fields.items() if field.is_required())
STATUSES = tuple(s.value for s in Status)
LIST_FILTERS = ("status", "namespace", "pod")
LIST_PAGING = ("limit", "continue")
LIST_PARAMETERS = (*LIST_FILTERS, *LIST_PAGING)
LIMIT_MIN = 1
LIMIT_MAX = 1000
CONTINUE_MAX = 1024  # characters; a token this server issues has about a hundred
_LABEL = DNS1123_LABEL.pattern
_BASE64URL = r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?"  # URL-safe base64 without padding: always decodes
# Every string this matches (within CONTINUE_MAX) decodes to a listing key, so the OpenAPI document can state exactly
# which tokens are well formed: "1" (the format), then the creation time, the migration id and the namespace.
# Version 2 carries the migration's name in base64 too: a PodMigration made with kubectl may have dots in its name.
# Version 1 (the id as it is) is still read: a token issued by a replica before an upgrade.
CONTINUE_TOKEN = re.compile(
    rf"(?:1\.{_BASE64URL}\.{MIGRATION_ID.pattern}|2\.{_BASE64URL}\.{_BASE64URL})\.(?:{_LABEL})?"
)


def parse_json_object(raw: bytes) -> JSON:
    """The body as a JSON object; anything else (empty, not UTF-8, malformed, NaN, an array...) is `invalid_json`."""
    if not raw.strip():
        raise InvalidRequest("the request body is empty: expected a JSON object", reason="invalid_json")
    try:
        parsed = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as error:
        raise InvalidRequest("the request body is not valid UTF-8", reason="invalid_json") from error
    except ValueError as error:
        raise InvalidRequest(f"the request body is not valid JSON: {error}", reason="invalid_json") from error
    except RecursionError as error:
        raise InvalidRequest("the request body is nested too deeply", reason="invalid_json") from error
    if not isinstance(parsed, dict):
        raise InvalidRequest(
            f"the request body must be a JSON object, not {json_type(parsed)}",
            reason="invalid_json",
            details={"type": json_type(parsed)},
        )
    return parsed


def parse_migration_request(body: Mapping[str, Any]) -> MigrationRequest:
    """A validated ``MigrationRequest`` (triggered by the API), or ``InvalidRequest`` listing every problem."""
    try:
        given = MigrationRequestBody.model_validate(dict(body))
    except ValidationError as error:
        problems = request_problems(error)
        raise InvalidRequest(
            f"invalid migration request: {'; '.join(f'{k} {v}' for k, v in problems.items())}",
            reason="invalid_request",
            details={"fields": problems},
        ) from None
    return MigrationRequest(
        pod_name=given.pod_name,
        pod_namespace=given.pod_namespace,
        source_node=given.source_node,
        target_node=given.target,
        preserve_pv=given.preserve_pv,
        timeout_seconds=given.timeout_value,
        strategy=given.strategy,
        dry_run=given.dry_run,
        triggered_by="api",
        ignore_pdb=given.ignore_pdb,
        extra={FORCE_RESTART: "true"} if given.force_restart else {},
    )


@dataclass(frozen=True, order=True, slots=True)
class ListKey:
    """Where a migration sits in the listing, which is newest first: these three fields, compared in this order,
    descending. The last one only separates two migrations created in the same second under the same id in
    different namespaces."""

    created_at: str
    migration_id: str
    namespace: str


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogateescape")).decode("ascii").rstrip("=")


def _unb64(part: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):  # cannot happen for a string the pattern matched; never a 500 anyway
        raise ValueError("is not a continue token this server issued (it does not decode)") from None
    # Only ever compared with listing keys: bytes that are not UTF-8 still sort somewhere, harmlessly.
    return raw.decode("utf-8", "surrogateescape")


def encode_continue(key: ListKey) -> str:
    """The `continue` token that resumes the listing after `key`. Opaque to clients; it is
    ``2.<created_at>.<migration_id>.<namespace>``, the first two as URL-safe base64 (unpadded), which
    ``CONTINUE_TOKEN`` matches."""
    return f"2.{_b64(key.created_at)}.{_b64(key.migration_id)}.{key.namespace}"


def decode_continue(token: str) -> ListKey:
    """The key a token carries; ``ValueError`` (with the problem) for a string that is not a token."""
    if len(token) > CONTINUE_MAX:
        raise ValueError(f"is too long to be a continue token (at most {CONTINUE_MAX} characters)")
    if not CONTINUE_TOKEN.fullmatch(token):
        raise ValueError("is not a continue token this server issued: take it from the previous page as it is")
    version, created_at, migration_id, namespace = token.split(".")
    return ListKey(_unb64(created_at), migration_id if version == "1" else _unb64(migration_id), namespace)


@dataclass(frozen=True, slots=True)
class ListFilters:
    """The query of GET /api/migrations: filters, and paging (`limit`; `after` is the key a `continue` token
    carries). Without `limit` and `after` the whole listing is answered, as before paging existed."""

    status: Status | None = None
    namespace: str | None = None
    pod: str | None = None
    limit: int | None = None
    after: ListKey | None = None

    @property
    def paged(self) -> bool:
        return self.limit is not None or self.after is not None


def refuse_query(query: MultiMapping[str], *, route: str) -> None:
    """A request whose meaning is all in its body takes no query: a parameter it would ignore (`?dry_run=true` on a
    POST that would then move the pod for real) is refused, naming each one."""
    if query:
        problems = dict.fromkeys(query.keys(), f"{route} takes no query parameters")
        raise InvalidRequest(
            f"invalid query: {route} takes no query parameters (got {', '.join(problems)}); "
            "every option, dry_run included, goes in the JSON body",
            reason="invalid_request",
            details={"fields": problems},
        )


def parse_list_filters(query: MultiMapping[str]) -> ListFilters:
    """``?status=&namespace=&pod=&limit=&continue=``: an empty filter (or `continue`) means none; unknown or repeated
    parameters are refused. A malformed `continue` token is `invalid_continue`, any other problem
    `invalid_request`; either way ``details.fields`` names every problem."""
    problems: dict[str, str] = {}
    values: dict[str, str | None] = {}
    for key in dict.fromkeys(query.keys()):
        given = query.getall(key)
        if key not in LIST_PARAMETERS:
            problems[key] = f"unknown query parameter (known: {', '.join(LIST_PARAMETERS)})"
        elif len(given) > 1:
            problems[key] = "given more than once"
        else:
            values[key] = given[0] if key == "limit" else given[0] or None
    status, namespace, pod = values.get("status"), values.get("namespace"), values.get("pod")
    if status is not None and status not in STATUSES:
        problems["status"] = f"must be one of {', '.join(STATUSES)}"
    if namespace is not None and not is_name(namespace, DNS1123_LABEL, LABEL_MAX):
        problems["namespace"] = LABEL_PROBLEM
    if pod is not None and not is_name(pod, DNS1123_SUBDOMAIN, SUBDOMAIN_MAX):
        problems["pod"] = SUBDOMAIN_PROBLEM
    limit = _limit(values.get("limit"), problems)
    after: ListKey | None = None
    bad_token = False
    token = values.get("continue")
    if token is not None:
        try:
            after = decode_continue(token)
        except ValueError as error:
            problems["continue"], bad_token = str(error), True
    if problems:
        raise InvalidRequest(
            f"invalid query: {'; '.join(f'{k} {v}' for k, v in problems.items())}",
            reason="invalid_continue" if bad_token else "invalid_request",
            details={"fields": problems},
        )
    return ListFilters(
        status=Status(status) if status else None, namespace=namespace, pod=pod, limit=limit, after=after
    )


def _limit(value: str | None, problems: dict[str, str]) -> int | None:
    if value is None:
        return None
    problem = f"must be an integer from {LIMIT_MIN} to {LIMIT_MAX}"
    if not (value.isascii() and value.isdigit()):
        problems["limit"] = f"{problem} (got {value[:20]!r})"
        return None
    # Leading zeros are harmless; the length cap keeps int() away from arbitrarily long strings.
    digits = value.lstrip("0") or "0"
    if len(digits) > len(str(LIMIT_MAX)) or not LIMIT_MIN <= int(digits) <= LIMIT_MAX:
        problems["limit"] = f"{problem} (got {value[:20]})"
        return None
    return int(digits)


def require_migration_id(value: str) -> str:
    """The id from a URL path; one that cannot be a migration's name is simply unknown (404, not 400)."""
    if not is_name(value, DNS1123_SUBDOMAIN, SUBDOMAIN_MAX):  # ours are shorter; one made with kubectl may not be
        raise NotFound(f"no migration with id {value[:80]!r}", reason="migration_not_found")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A key given twice is refused: a proxy or audit log that read the first value would see another request."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
