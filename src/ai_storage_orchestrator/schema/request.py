"""The body of POST /api/migrations: the model requests are validated with and the OpenAPI schema is generated from.

JSON types are taken literally (strict mode): ``"true"`` or ``1`` is not a boolean, ``true`` is not an integer.
``problems`` turns pydantic's errors into the API's sentences, field by field (DESIGN.md §3): this is the one place
that wording lives."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ai_storage_orchestrator.models import AUTO_TARGET, DEFAULT_TIMEOUT, TIMEOUT_MAX, TIMEOUT_MIN, Strategy
from ai_storage_orchestrator.schema.names import PATTERN_PROBLEMS, Label, Subdomain

TIMEOUT_ALIAS_CONFLICT = "is an alias of timeout_seconds: give one of the two, not both"
SAME_NODE = "is the source_node: the pod is already there (give another node, or omit target_node)"
STRATEGIES = tuple(s.value for s in Strategy)


def _timeout(description: str) -> Any:
    # 0 = the default, as for the seed's clients
    return Field(default=DEFAULT_TIMEOUT, ge=0, le=TIMEOUT_MAX, description=description)


class MigrationRequestBody(BaseModel):
    """A migration request as a client sends it."""

    # Declaration order is the order problems are listed in.

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        title="MigrationRequest",
        json_schema_extra={"not": {"required": ["timeout_seconds", "timeout"]}},  # one setting, two names: not both
    )

    pod_name: Subdomain = Field(description="The pod to move.")
    pod_namespace: Label = Field(description="Its namespace.")
    source_node: Subdomain = Field(description="The node it runs on now.")
    target_node: Subdomain | None = Field(
        default=AUTO_TARGET,
        description=(
            f"The node to move it to. Optional: omitted, null or `{AUTO_TARGET}`, the orchestrator chooses"
            " the node (every fit check passed; images already there, least allocated after the move, spread,"
            " name) and explains the choice in the migration's `target_choice`; when no node fits, 422"
            " `no_target_node` with each node's reason in `details.refused`. Never `source_node` (400)."
        ),
    )
    preserve_pv: bool = Field(
        default=False,
        description=(
            "Keep the pod's data on its shared persistent volume. A pod without one is accepted with a warning"
            " in `warnings` (nothing to preserve; completed containers whose results would be lost run again)."
        ),
    )
    dry_run: bool = Field(
        default=False, description="Answer 200 with the plan and every check, without changing anything."
    )
    ignore_pdb: bool = Field(
        default=False,
        description=(
            "Remove the source pod with a delete instead of an eviction, so no PodDisruptionBudget applies."
            " Without it, a migration a budget keeps blocked fails at its timeout with"
            " `blocked_by_disruption_budget` (and rolls back)."
        ),
    )
    force_restart: bool = Field(
        default=False,
        description=(
            "The seed's field, accepted for its clients: recorded on the migration (`force_restart`) and without"
            " effect on the plan. Every container's action follows the decision table, which already runs again"
            " each container whose work or results the move would lose (running, waiting, failed, or completed"
            " with results off shared storage) and leaves out only completed ones whose results are safe."
        ),
    )
    timeout_seconds: int = _timeout(
        f"Deadline of the whole migration, {TIMEOUT_MIN} to {TIMEOUT_MAX} seconds;"
        f" 0 means the default ({DEFAULT_TIMEOUT})."
    )
    timeout: int = _timeout("Alias of `timeout_seconds` (the seed's name); give one of the two, not both.")
    strategy: Annotated[Strategy, Field(strict=False)] = Strategy.AUTO  # JSON gives the value, never the enum

    @model_validator(mode="wrap")
    @classmethod
    def _two_fields_together(cls, data: Any, handler: Any) -> Any:
        """Problems of two fields together, listed with every other problem (not instead of them): both names of
        the timeout (a problem of `timeout`), the pod's own node as the target (a problem of `target_node`)."""
        conflicts = _conflicts(data)
        try:
            model = handler(data)
        except ValidationError as error:
            if not conflicts:
                raise
            raise ValidationError.from_exception_data(error.title, [*_details(error), *conflicts]) from None
        if conflicts:
            raise ValidationError.from_exception_data(cls.__name__, conflicts)
        return model

    @property
    def target(self) -> str:
        return AUTO_TARGET if self.target_node is None else self.target_node

    @property
    def timeout_value(self) -> int:
        """The timeout under whichever name was given; 0 (or neither name) means the default."""
        seconds = self.timeout if "timeout" in self.model_fields_set else self.timeout_seconds
        return seconds or DEFAULT_TIMEOUT


def _conflicts(data: Any) -> list[InitErrorDetails]:
    if not isinstance(data, dict):
        return []
    conflicts: list[InitErrorDetails] = []
    if "timeout_seconds" in data and "timeout" in data:
        conflicts.append(
            {
                "type": PydanticCustomError("timeout_alias_conflict", TIMEOUT_ALIAS_CONFLICT),
                "loc": ("timeout",),
                "input": data.get("timeout"),
            }
        )
    source, target = data.get("source_node"), data.get("target_node")
    if isinstance(source, str) and source and source == target and target != AUTO_TARGET:
        conflicts.append(
            {"type": PydanticCustomError("source_equals_target", SAME_NODE), "loc": ("target_node",), "input": target}
        )
    return conflicts


def _details(error: ValidationError) -> list[InitErrorDetails]:
    """The errors pydantic found, in a form that can be raised again (type, context and sentence kept)."""
    return [
        {
            "type": PydanticCustomError(line["type"], line["msg"], line.get("ctx")),
            "loc": line["loc"],
            "input": line["input"],
        }
        for line in error.errors(include_url=False)
    ]


def problems(error: ValidationError) -> dict[str, str]:
    """Field -> the API's sentence for each problem pydantic found: unknown fields first, then in field order.
    A later problem of a field replaces an earlier one (the alias conflict wins over the alias's own type)."""
    fields = MigrationRequestBody.model_fields
    found: dict[str, str] = {}
    for line in error.errors(include_url=False):
        field = str(line["loc"][0]) if line["loc"] else ""
        found[field] = _sentence(line["type"], line["input"], line.get("ctx") or {}, line["msg"], fields.get(field))
    order = {name: i for i, name in enumerate(fields)}
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], -1)))


def _sentence(kind: str, value: Any, ctx: dict[str, Any], msg: str, field: Any) -> str:
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing" or (kind == "string_type" and value is None and field is not None and field.is_required()):
        return "is required"
    if kind == "string_type":
        return f"must be a string (got {json_type(value)})"
    if kind == "string_too_short":
        return "is required (empty string)"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters (got {len(value)})"
    if kind == "string_pattern_mismatch":
        return PATTERN_PROBLEMS[ctx["pattern"]]
    if kind == "bool_type":
        return f"must be a boolean, true or false (got {json_type(value)})"
    if kind == "int_type":
        return f"must be an integer number of seconds (got {json_type(value)})"
    if kind in ("greater_than_equal", "less_than_equal"):
        return (
            f"must be between {TIMEOUT_MIN} and {TIMEOUT_MAX} seconds, or 0 for the default {DEFAULT_TIMEOUT}"
            f" (got {value})"
        )
    if kind == "enum":
        return f"must be one of {', '.join(STRATEGIES)}"
    return msg  # a custom error (the alias conflict): its message is the sentence


def json_type(value: object) -> str:
    """The JSON name of a parsed JSON value's type."""
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
