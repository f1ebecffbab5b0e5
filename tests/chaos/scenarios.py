"""The scenario grid: every fault kind at every phase boundary of both orderings, cycled in a seeded order."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from ai_storage_orchestrator.models import Phase, Strategy


class Fault(StrEnum):
    CANCEL = "cancel"
    DELETE_TARGET = "target-deleted"
    EVICT_TARGET = "target-evicted"
    SOURCE_NODE_NOT_READY = "source-node-not-ready"
    CRASH = "orchestrator-crash"
    LEADER_SWITCH = "leader-switch"
    API_ERRORS = "api-errors-and-latency"
    DELETE_MIGRATION = "podmigration-deleted"


PHASES: dict[Strategy, tuple[Phase, ...]] = {
    Strategy.MAKE_BEFORE_BREAK: (
        Phase.PENDING,
        Phase.VALIDATING,
        Phase.CREATING_TARGET,
        Phase.WAITING_FOR_TARGET,
        Phase.REMOVING_SOURCE,
        Phase.ROLLING_BACK,
    ),
    # No CreatingTarget: the StoppingSource step creates the target as soon as the source is gone (same step).
    Strategy.CHECKPOINT_RESTART: (
        Phase.PENDING,
        Phase.VALIDATING,
        Phase.CHECKPOINTING,
        Phase.STOPPING_SOURCE,
        Phase.WAITING_FOR_TARGET,
        Phase.ROLLING_BACK,
    ),
}

GRID = [(strategy, phase, fault) for strategy, phases in PHASES.items() for phase in phases for fault in Fault]


@dataclass(frozen=True)
class Scenario:
    number: int
    strategy: Strategy
    phase: Phase  # the fault strikes right before this phase's step runs (ROLLING_BACK: after a cancel got it there)
    fault: Fault

    @property
    def label(self) -> str:
        return f"#{self.number} {self.strategy.value} {self.fault.value} at {self.phase.value}"


def plan(count: int, seed: int) -> list[Scenario]:
    """`count` scenarios: whole passes over the grid, each pass in its own seeded order, so any count of at least
    len(GRID) covers every (ordering, phase, fault) cell."""
    rng = random.Random(seed)
    cells: list[tuple[Strategy, Phase, Fault]] = []
    while len(cells) < count:
        shuffled = list(GRID)
        rng.shuffle(shuffled)
        cells.extend(shuffled)
    return [Scenario(number, *cell) for number, cell in enumerate(cells[:count])]
