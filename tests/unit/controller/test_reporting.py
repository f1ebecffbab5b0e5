"""PhaseReporter: each phase a step left is timed from its own transition entry to the next one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Coroutine
from typing import Any

import pytest

from ai_storage_orchestrator.controller.ports import JSON
from ai_storage_orchestrator.controller.reporting import PhaseReporter
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import Phase

pytestmark = pytest.mark.unit

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class SilentRecorder:
    def record(self, obj: JSON, *, reason: str, message: str, warning: bool = False) -> None:
        pass

    def run_in_background(self, work: Coroutine[Any, Any, None]) -> None:
        work.close()


async def _no_annotation(_text: str) -> None:
    pass


def _at(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _entry(phase: Phase, seconds: float) -> JSON:
    return {"phase": phase.value, "time": _at(seconds), "message": phase.value}


def _observed(metrics: Metrics, phase: Phase) -> tuple[float | None, float | None]:
    """(count, sum) of the phase-duration histogram for `phase`."""
    labels = {"phase": phase.value}
    name = "ai_storage_migration_phase_duration_seconds"
    return (
        metrics.registry.get_sample_value(f"{name}_count", labels),
        metrics.registry.get_sample_value(f"{name}_sum", labels),
    )


def test_a_step_through_several_phases_times_each_phase_it_left() -> None:
    metrics = Metrics()
    reporter = PhaseReporter(metrics=metrics, recorder=SilentRecorder(), notify=lambda: None)
    # As ctx.transition patches it: the step left StoppingSource, passed CreatingTarget, reached WaitingForTarget.
    transitions = [
        _entry(Phase.VALIDATING, -10),
        _entry(Phase.STOPPING_SOURCE, 0),
        _entry(Phase.CREATING_TARGET, 90),
        _entry(Phase.WAITING_FOR_TARGET, 90),
    ]
    reporter.phase_changed(
        migration={"metadata": {"name": "m"}, "status": {"phaseTransitions": transitions}},
        source_pod=None,
        target_pod=None,
        previous=Phase.STOPPING_SOURCE,
        phase=Phase.WAITING_FOR_TARGET,
        message="waiting",
        annotate_source=_no_annotation,
        passed=[(Phase.CREATING_TARGET, _at(90), "created")],
    )
    assert _observed(metrics, Phase.STOPPING_SOURCE) == (1.0, 90.0)
    assert _observed(metrics, Phase.CREATING_TARGET) == (1.0, 0.0)
    assert _observed(metrics, Phase.VALIDATING) == (None, None), "timed by the step that left it"
