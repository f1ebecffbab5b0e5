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
    # No Validating: Pending's step validates and records the plan in one write (Validating is passed through).
    Strategy.MAKE_BEFORE_BREAK: (
        Phase.PENDING,
        Phase.CREATING_TARGET,
        Phase.WAITING_FOR_TARGET,
        Phase.REMOVING_SOURCE,
        Phase.ROLLING_BACK,
    ),
    # No CreatingTarget: the StoppingSource step creates the target as soon as the source is gone (same step).
    Strategy.CHECKPOINT_RESTART: (
        Phase.PENDING,
        Phase.CHECKPOINTING,
        Phase.STOPPING_SOURCE,
        Phase.WAITING_FOR_TARGET,
        Phase.ROLLING_BACK,
    ),
}

WHEN = ("before", "after")  # the fault strikes right before the phase's first step, or right after it acted

GRID = [
    (strategy, phase, when, fault)
    for strategy, phases in PHASES.items()
    for phase in phases
    for when in WHEN
    for fault in Fault
]


@dataclass(frozen=True)
class Scenario:
    number: int
    strategy: Strategy
    phase: Phase  # the phase whose first step the fault meets (ROLLING_BACK: after a cancel got it there)
    when: str  # "before" that step runs, or "after" it acted (before its result is acted on)
    fault: Fault

    @property
    def label(self) -> str:
        return f"#{self.number} {self.strategy.value} {self.fault.value} {self.when} {self.phase.value}"


def plan(count: int, seed: int) -> list[Scenario]:
    """`count` scenarios: whole passes over the grid, each pass in its own seeded order, so any count of at least
    len(GRID) covers every (ordering, phase, before/after, fault) cell."""
    rng = random.Random(seed)
    cells: list[tuple[Strategy, Phase, str, Fault]] = []
    while len(cells) < count:
        shuffled = list(GRID)
        rng.shuffle(shuffled)
        cells.extend(shuffled)
    return [Scenario(number, *cell) for number, cell in enumerate(cells[:count])]
