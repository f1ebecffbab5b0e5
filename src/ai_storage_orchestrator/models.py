"""Core vocabulary shared by every layer: migration phases, container actions, strategies."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Action(StrEnum):
    """What happens to a container when its pod moves."""

    MIGRATE = "migrate"  # runs again on the target
    SKIP = "skip"  # finished and its results are safe: left out of the target pod
    RESTART = "restart"  # failed: runs again on the target


class ContainerKind(StrEnum):
    CONTAINER = "container"
    INIT = "init"
    SIDECAR = "sidecar"  # init container with restartPolicy: Always


class ContainerPhase(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"  # no status reported yet


class Strategy(StrEnum):
    AUTO = "auto"
    MAKE_BEFORE_BREAK = "make-before-break"
    CHECKPOINT_RESTART = "checkpoint-restart"


class Status(StrEnum):
    """Coarse migration status of the public REST contract."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Phase(StrEnum):
    """Fine-grained migration phase, recorded in the PodMigration status."""

    PENDING = "Pending"
    VALIDATING = "Validating"
    CHECKPOINTING = "Checkpointing"
    STOPPING_SOURCE = "StoppingSource"  # checkpoint-restart only: the source goes before the target exists
    CREATING_TARGET = "CreatingTarget"
    WAITING_FOR_TARGET = "WaitingForTarget"
    REMOVING_SOURCE = "RemovingSource"
    ROLLING_BACK = "RollingBack"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_PHASES

    @property
    def status(self) -> Status:
        return _PHASE_STATUS.get(self, Status.RUNNING)


TERMINAL_PHASES = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED})

_PHASE_STATUS = {
    Phase.PENDING: Status.PENDING,
    Phase.COMPLETED: Status.COMPLETED,
    Phase.FAILED: Status.FAILED,
    Phase.CANCELLED: Status.CANCELLED,
}


TIMEOUT_MIN = 1
TIMEOUT_MAX = 86400
DEFAULT_TIMEOUT = 600


@dataclass(frozen=True, slots=True)
class ContainerState:
    """One container of a pod as its status reports it."""

    name: str
    kind: ContainerKind
    phase: ContainerPhase
    reason: str | None = None
    exit_code: int | None = None
    finished_at: str | None = None
    restart_count: int = 0
    ready: bool = False

    @property
    def completed(self) -> bool:
        return self.phase is ContainerPhase.TERMINATED and self.exit_code == 0

    @property
    def failed(self) -> bool:
        return self.phase is ContainerPhase.TERMINATED and self.exit_code not in (None, 0)

    def describe(self) -> str:
        if self.phase is ContainerPhase.TERMINATED:
            return f"terminated (exit {self.exit_code}, {self.reason or 'no reason'})"
        if self.phase is ContainerPhase.WAITING:
            return f"waiting ({self.reason or 'no reason'})"
        return self.phase.value


@dataclass(frozen=True, slots=True)
class ContainerDecision:
    """The plan for one container, with the reason shown to users."""

    name: str
    kind: ContainerKind
    state: str
    action: Action
    reason: str


@dataclass(frozen=True, slots=True)
class Resources:
    """Summed CPU (millicores) and memory (bytes) requests."""

    cpu_millicores: int = 0
    memory_bytes: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millicores + other.cpu_millicores, self.memory_bytes + other.memory_bytes)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millicores - other.cpu_millicores, self.memory_bytes - other.memory_bytes)

    def fits_in(self, other: Resources) -> bool:
        return self.cpu_millicores <= other.cpu_millicores and self.memory_bytes <= other.memory_bytes

    def to_json(self) -> dict[str, int]:
        return {"cpu_millicores": self.cpu_millicores, "memory_bytes": self.memory_bytes}


# `target_node` of a request that leaves the choice of the node to the orchestrator (REST: omitted, null or "auto";
# annotation `ai-storage.io/migrate-to: auto`; CLI: no --to, or --to auto).
AUTO_TARGET = "auto"


@dataclass(frozen=True, slots=True)
class MigrationRequest:
    """A validated migration request, whatever triggered it (REST, annotation, CLI). `timeout_seconds` lies in
    TIMEOUT_MIN..TIMEOUT_MAX (the PodMigration CRD enforces the same range). `ignore_pdb` removes the source pod with
    a delete instead of an eviction, so no PodDisruptionBudget can hold the migration back. `target_node` is
    ``AUTO_TARGET`` when the orchestrator chooses the node (controller/planning/choice.py); the PodMigration it
    records always names a concrete node."""

    pod_name: str
    pod_namespace: str
    source_node: str
    target_node: str
    preserve_pv: bool = False
    timeout_seconds: int = 600
    strategy: Strategy = Strategy.AUTO
    dry_run: bool = False
    triggered_by: str = "api"
    ignore_pdb: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def chooses_target(self) -> bool:
        """The orchestrator picks the target node (``target_node`` is ``AUTO_TARGET``)."""
        return self.target_node == AUTO_TARGET
