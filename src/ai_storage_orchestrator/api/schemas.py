"""Request bodies and query strings of the REST API, parsed and validated into core models (DESIGN.md §3).

Every problem is collected before anything is raised, so one 400 names them all in ``details.fields``.
JSON types are taken literally: ``"true"`` or ``1`` is not a boolean, ``true`` is not an integer."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from ai_storage_orchestrator.controller.records import FORCE_RESTART
from ai_storage_orchestrator.errors import InvalidRequest, NotFound
from ai_storage_orchestrator.models import (
    AUTO_TARGET,
    DEFAULT_TIMEOUT,
    TIMEOUT_MAX,
    TIMEOUT_MIN,
    MigrationRequest,
    Status,
    Strategy,
)

JSON = dict[str, Any]

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(_LABEL)
DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
MIGRATION_ID = re.compile(r"[a-z0-9-]{1,63}")

LABEL_MAX = 63
SUBDOMAIN_MAX = 253

LABEL_PROBLEM = (
    "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit,"
    f" at most {LABEL_MAX} characters"
)
SUBDOMAIN_PROBLEM = (
    "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or"
    f" digit, at most {SUBDOMAIN_MAX} characters"
)

# Request field -> (pattern, maximum length, problem text). The namespace is a label, every other name a subdomain.
# `target_node` may be omitted (or null, or "auto"): the orchestrator chooses the node (models.AUTO_TARGET).
NAME_FIELDS: dict[str, tuple[re.Pattern[str], int, str]] = {
    "pod_name": (DNS1123_SUBDOMAIN, SUBDOMAIN_MAX, SUBDOMAIN_PROBLEM),
    "pod_namespace": (DNS1123_LABEL, LABEL_MAX, LABEL_PROBLEM),
    "source_node": (DNS1123_SUBDOMAIN, SUBDOMAIN_MAX, SUBDOMAIN_PROBLEM),
    "target_node": (DNS1123_SUBDOMAIN, SUBDOMAIN_MAX, SUBDOMAIN_PROBLEM),
}
# `force_restart` is the seed's: accepted, recorded and shown, without effect on the plan (see MIGRATION_REQUEST).
BOOL_FIELDS = ("preserve_pv", "dry_run", "ignore_pdb", "force_restart")
TIMEOUT_FIELDS = ("timeout_seconds", "timeout")  # `timeout` is the alias
REQUIRED_NAME_FIELDS = ("pod_name", "pod_namespace", "source_node")
OPTIONAL_NAME_FIELDS = {"target_node": AUTO_TARGET}  # field -> its value when omitted or null
REQUEST_FIELDS = (*NAME_FIELDS, *BOOL_FIELDS, *TIMEOUT_FIELDS, "strategy")
STRATEGIES = tuple(s.value for s in Strategy)
STATUSES = tuple(s.value for s in Status)
LIST_FILTERS = ("status", "namespace", "pod")
LIST_PAGING = ("limit", "continue")
LIST_PARAMETERS = (*LIST_FILTERS, *LIST_PAGING)
LIMIT_MIN = 1
LIMIT_MAX = 1000
CONTINUE_MAX = 1024  # characters; a token this server issues has about a hundred
_BASE64URL = r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?"  # URL-safe base64 without padding: always decodes
# Every string this matches (within CONTINUE_MAX) decodes to a listing key, so the OpenAPI document can state exactly
# which tokens are well formed: "1" (the format), then the creation time, the migration id and the namespace.
CONTINUE_TOKEN = re.compile(rf"1\.{_BASE64URL}\.{MIGRATION_ID.pattern}\.(?:{_LABEL})?")


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
            f"the request body must be a JSON object, not {_json_type(parsed)}",
            reason="invalid_json",
            details={"type": _json_type(parsed)},
        )
    return parsed


def parse_migration_request(body: Mapping[str, Any]) -> MigrationRequest:
    """A validated ``MigrationRequest`` (triggered by the API), or ``InvalidRequest`` listing every problem."""
    problems: dict[str, str] = {}
    for key in body:
        if key not in REQUEST_FIELDS:
            problems[str(key)] = "unknown field"
    names = {field: _name(body, field, problems) for field in NAME_FIELDS}
    flags = {field: _boolean(body, field, problems) for field in BOOL_FIELDS}
    timeout = _timeout(body, problems)
    strategy = _strategy(body, problems)
    if problems:
        raise InvalidRequest(
            f"invalid migration request: {'; '.join(f'{k} {v}' for k, v in problems.items())}",
            reason="invalid_request",
            details={"fields": problems},
        )
    return MigrationRequest(
        pod_name=names["pod_name"],
        pod_namespace=names["pod_namespace"],
        source_node=names["source_node"],
        target_node=names["target_node"],
        preserve_pv=flags["preserve_pv"],
        timeout_seconds=timeout,
        strategy=strategy,
        dry_run=flags["dry_run"],
        triggered_by="api",
        ignore_pdb=flags["ignore_pdb"],
        extra={FORCE_RESTART: "true"} if flags["force_restart"] else {},
    )


@dataclass(frozen=True, order=True, slots=True)
class ListKey:
    """Where a migration sits in the listing, which is newest first: these three fields, compared in this order,
    descending. The last one only separates two migrations created in the same second under the same id in
    different namespaces."""

    created_at: str
    migration_id: str
    namespace: str


def encode_continue(key: ListKey) -> str:
    """The `continue` token that resumes the listing after `key`. Opaque to clients; it is
    ``1.<created_at as URL-safe base64, unpadded>.<migration_id>.<namespace>``, which ``CONTINUE_TOKEN`` matches."""
    created_at = base64.urlsafe_b64encode(key.created_at.encode("utf-8")).decode("ascii").rstrip("=")
    return f"1.{created_at}.{key.migration_id}.{key.namespace}"


def decode_continue(token: str) -> ListKey:
    """The key a token carries; ``ValueError`` (with the problem) for a string that is not a token."""
    if len(token) > CONTINUE_MAX:
        raise ValueError(f"is too long to be a continue token (at most {CONTINUE_MAX} characters)")
    if not CONTINUE_TOKEN.fullmatch(token):
        raise ValueError("is not a continue token this server issued: take it from the previous page as it is")
    _version, created_at, migration_id, namespace = token.split(".")
    try:
        raw = base64.urlsafe_b64decode(created_at + "=" * (-len(created_at) % 4))
    except (binascii.Error, ValueError):  # cannot happen for a string the pattern matched; never a 500 anyway
        raise ValueError("is not a continue token this server issued (it does not decode)") from None
    # Only ever compared with creation times: bytes that are not UTF-8 still sort somewhere, harmlessly.
    return ListKey(raw.decode("utf-8", "surrogateescape"), migration_id, namespace)


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
    if namespace is not None and not _is_name(namespace, DNS1123_LABEL, LABEL_MAX):
        problems["namespace"] = LABEL_PROBLEM
    if pod is not None and not _is_name(pod, DNS1123_SUBDOMAIN, SUBDOMAIN_MAX):
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
    if not MIGRATION_ID.fullmatch(value):
        raise NotFound(f"no migration with id {value[:80]!r}", reason="migration_not_found")
    return value


def _is_name(value: str, pattern: re.Pattern[str], max_length: int) -> bool:
    return len(value) <= max_length and pattern.fullmatch(value) is not None


def _name(body: Mapping[str, Any], field: str, problems: dict[str, str]) -> str:
    pattern, max_length, problem = NAME_FIELDS[field]
    if field not in body or body[field] is None:
        if field in OPTIONAL_NAME_FIELDS:
            return OPTIONAL_NAME_FIELDS[field]
        problems[field] = "is required"
        return ""
    value = body[field]
    if not isinstance(value, str):
        problems[field] = f"must be a string (got {_json_type(value)})"
        return ""
    if not value:
        problems[field] = "is required (empty string)"
    elif len(value) > max_length:
        problems[field] = f"must be at most {max_length} characters (got {len(value)})"
    elif not pattern.fullmatch(value):
        problems[field] = problem
    return value


def _boolean(body: Mapping[str, Any], field: str, problems: dict[str, str]) -> bool:
    value = body.get(field, False)
    if type(value) is not bool:
        problems[field] = f"must be a boolean, true or false (got {_json_type(value)})"
        return False
    return value


def _integer(body: Mapping[str, Any], field: str, problems: dict[str, str]) -> int | None:
    """The timeout given under `field`; 0 means the default, as it did for the seed's clients."""
    if field not in body:
        return None
    value = body[field]
    if type(value) is not int:
        problems[field] = f"must be an integer number of seconds (got {_json_type(value)})"
        return None
    if value == 0:
        return DEFAULT_TIMEOUT
    if not TIMEOUT_MIN <= value <= TIMEOUT_MAX:
        problems[field] = (
            f"must be between {TIMEOUT_MIN} and {TIMEOUT_MAX} seconds, or 0 for the default {DEFAULT_TIMEOUT}"
            f" (got {value})"
        )
        return None
    return value


def _timeout(body: Mapping[str, Any], problems: dict[str, str]) -> int:
    seconds = _integer(body, "timeout_seconds", problems)
    alias = _integer(body, "timeout", problems)
    if "timeout_seconds" in body and "timeout" in body:
        problems["timeout"] = "is an alias of timeout_seconds: give one of the two, not both"
    for value in (seconds, alias):
        if value is not None:
            return value
    return DEFAULT_TIMEOUT


def _strategy(body: Mapping[str, Any], problems: dict[str, str]) -> Strategy:
    value = body.get("strategy", Strategy.AUTO.value)
    if not isinstance(value, str) or value not in STRATEGIES:
        problems["strategy"] = f"must be one of {', '.join(STRATEGIES)}"
        return Strategy.AUTO
    return Strategy(value)


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


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
