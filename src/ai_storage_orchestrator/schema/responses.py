"""The bodies the REST API answers: the models the OpenAPI document's response schemas are generated from.

They describe the JSON the handlers write (``api.views``, the service's dicts); responses are not built from them.
A field that may be absent from an answer is typed ``X | Absent = None``: optional, and not nullable in the schema
(``SkipJsonSchema`` keeps the ``None`` out of it); a field typed ``X | None`` without a default is always present and
may be null. Every other field is always present."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from ai_storage_orchestrator.models import Action, ContainerKind, Phase, Status, Strategy
from ai_storage_orchestrator.schema.resource import TargetChoice

Absent = SkipJsonSchema[None]
# What `auto` resolves to: the two orderings a migration runs in.
Ordering = Literal[Strategy.MAKE_BEFORE_BREAK, Strategy.CHECKPOINT_RESTART]
# A container's state on the source in one word, as the seed's `details.container_states[].state` gives it.
ContainerStateWord = Literal["running", "completed", "failed", "waiting", "unknown"]

TARGET_CHOICE_PRESENT = "Present only when the orchestrator chose the node."


class _Closed(BaseModel):
    """No property beyond the declared ones (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid")


class Resources(BaseModel):
    cpu_millicores: int
    memory_bytes: int


class ContainerDecision(BaseModel):
    name: str
    kind: ContainerKind
    state: str = Field(description="The container's state on the source, e.g. `terminated (exit 0, Completed)`.")
    action: Action
    reason: str


class CheckpointVolume(BaseModel):
    volume: str = Field(description="The pod volume the checkpoint goes to.")
    mount_path: str
    container: str = Field(description="The container that mounts it.")


class Checkpoint(BaseModel):
    volume: CheckpointVolume | Absent = None
    saved: bool | Absent = None


class MigrationResources(BaseModel):
    before: Resources
    after: Resources
    freed: Resources | Absent = None


class Transition(BaseModel):
    phase: Phase
    time: datetime
    message: str


class Failure(BaseModel):
    reason: str | None
    message: str | None


class SeedContainerState(BaseModel):
    """One container as the seed's `details.container_states` lists it."""

    name: str
    state: ContainerStateWord = Field(
        description=(
            "Its state on the source as the analysis recorded it, in one word (`completed`: exited 0; `failed`: exited"
            " otherwise)."
        )
    )
    restart_count: int | None = Field(
        description="The restart count the record holds for it; null when it holds none (not recorded by the plan)."
    )
    should_migrate: bool = Field(description="The plan runs it on the target: its action is not `skip`.")


class SeedDetails(BaseModel):
    new_pod_name: str | None = Field(description="As `new_pod_name`.")
    start_time: datetime | None = Field(description="As `start_time`: `started_at`, else `created_at`.")
    end_time: datetime | None = Field(description="As `finished_at`.")
    duration: int | None = Field(
        description=(
            "Nanoseconds (Go's `time.Duration`, as the seed wrote it) from `start_time` to `end_time`; null until the"
            " migration has finished. `duration_seconds` says it in seconds."
        )
    )
    container_states: list[SeedContainerState] = Field(
        description="One entry per container of the plan, in its order. Empty until the migration is planned."
    )


class Migration(BaseModel):
    """A migration as the API shows it (202 of a request or a cancel, 200 of a read)."""

    migration_id: str
    status: Status
    phase: Phase = Field(description="Fine-grained phase.")
    message: str | None
    pod_name: str
    pod_namespace: str
    source_node: str
    target_node: str
    preserve_pv: bool
    ignore_pdb: bool = Field(description="PodDisruptionBudgets are ignored: the source is deleted.")
    timeout_seconds: int
    strategy: Strategy = Field(description="As requested.")
    ordering: Ordering | None = Field(description="What `strategy` resolved to, once planned.")
    triggered_by: str = Field(description="`api`, `annotation`, `cli` or `eviction` (the eviction webhook).")
    cancel_requested: bool
    force_restart: bool = Field(description="As requested (the seed's field; no effect on the plan).")
    warnings: list[str] = Field(
        description="Sentences on what was accepted but cannot be done as asked (preserve_pv, nothing shared)."
    )
    new_pod_name: str | None
    containers: list[ContainerDecision]
    checkpoint: Checkpoint | None = Field(description="Where the checkpoint goes and what was saved there.")
    resources: MigrationResources | None = Field(
        description="Summed container requests of the source pod and of the target pod."
    )
    phase_transitions: list[Transition]
    created_at: datetime | None
    started_at: datetime | None
    start_time: datetime | None = Field(
        description="The seed's name for the start: `started_at`, else `created_at` (the seed set it at creation)."
    )
    finished_at: datetime | None
    # The seed's getMigrationStatus wrote `end_time` only once the migration had ended.
    end_time: datetime | Absent = Field(
        default=None, description="The seed's name for `finished_at`; present only once the migration has ended."
    )
    duration_seconds: float | None
    error: Failure | None = Field(description="Why the migration failed.")
    details: SeedDetails = Field(
        description=(
            "The seed's field names for what this object also says in its own (compatibility with the seed's original"
            " clients). Not to be confused with the `details` of an error body."
        )
    )
    # Named targets answer exactly as before the choice existed: no `target_choice` key.
    target_choice: TargetChoice | Absent = Field(default=None, description=TARGET_CHOICE_PRESENT)


class PlanResources(BaseModel):
    before: Resources
    after: Resources


class Check(BaseModel):
    name: str
    passed: bool
    reason: str = Field(description="The error reason this check gives when it fails.")
    message: str
    details: dict[str, Any]


class PlannedRequest(_Closed):
    pod_name: str
    pod_namespace: str
    source_node: str
    target_node: str
    preserve_pv: bool
    timeout_seconds: int
    strategy: Strategy
    ignore_pdb: bool


class MigrationPlan(BaseModel):
    """The answer of a dry run (200): the plan and every check; nothing was changed."""

    dry_run: Literal[True]
    strategy: Ordering = Field(description="What `auto` resolved to (or the requested strategy).")
    strategy_reason: str
    new_pod_name: str
    containers: list[ContainerDecision]
    resources: PlanResources
    checkpoint_volume: CheckpointVolume | None
    checks: list[Check]
    ok: bool = Field(description="True when a submit would be accepted.")
    warnings: list[str] = Field(
        description="What a submit would accept but not do as asked; recorded in the migration's `warnings`."
    )
    active_migration: str | None = Field(description="The id of a migration already active for the pod.")
    request: PlannedRequest
    target_choice: TargetChoice | Absent = Field(default=None, description=TARGET_CHOICE_PRESENT)


class MigrationList(BaseModel):
    """The answer of a listing (one page with `limit`)."""

    migrations: list[Migration] = Field(description="Newest first.")
    count: int = Field(description="How many migrations this answer (page) holds.")
    # `continue` is a Python keyword: the field has it as its alias (the only alias of these models).
    continue_: str | Absent = Field(
        default=None,
        alias="continue",
        description="Present when `limit` cut the listing short: pass it as `continue` for the next page.",
    )


class Error(_Closed):
    """Every error the API answers."""

    error: str = Field(description="Stable machine-readable reason.")
    message: str = Field(description="A sentence for humans.")
    details: dict[str, Any]


class Health(_Closed):
    """Liveness."""

    status: Literal["ok"]


class SeedHealth(_Closed):
    """Liveness under the seed's name (`/health`), in the seed's words."""

    status: Literal["healthy"]
    service: Literal["ai-storage-orchestrator"]
    version: str = Field(description="This orchestrator's version.")


class SeedMetrics(_Closed):
    """The seed's migration figures, computed from the migrations the caller may list."""

    total_migrations: int
    successful_migrations: int = Field(description="Migrations with status `completed`.")
    failed_migrations: int = Field(description="Migrations with status `failed` (not `cancelled`).")
    average_duration: int | None = Field(
        description=(
            "Nanoseconds (Go's `time.Duration`): the mean `details.duration` of the migrations that have ended; null"
            " when none has."
        )
    )
    cpu_savings_percentage: float | None = Field(
        description=(
            "The mean over completed migrations of (CPU requests before - after) / before x 100, from `resources`;"
            " null when no completed migration records both."
        )
    )
    memory_savings_percentage: float | None = Field(description="As `cpu_savings_percentage`, for memory requests.")


class Ready(_Closed):
    """Readiness."""

    status: Literal["ready"]
    message: str


# The document's component schemas, by name (MigrationRequest is schema.request's).
RESPONSES: tuple[type[BaseModel], ...] = (
    Migration,
    MigrationPlan,
    MigrationList,
    Error,
    Health,
    SeedHealth,
    Ready,
    SeedMetrics,
)
