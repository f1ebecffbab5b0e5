"""What a migration tells the outside world as it moves: the log line, metrics, and Kubernetes Events — every phase
change on the PodMigration, but on the pod only its start, completion, failure and rollback (DESIGN.md §3: operators
watch the pod; the full story is on the PodMigration)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from itertools import pairwise
from typing import Any

import structlog

from ai_storage_orchestrator.controller.planning import MigrationPlan
from ai_storage_orchestrator.controller.ports import JSON, EventSink
from ai_storage_orchestrator.controller.records import parse_time
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import Phase

log = structlog.get_logger("ai_storage_orchestrator.migration")

# Phases worth an Event on the pod itself (Validating is where a migration starts acting).
POD_EVENT_PHASES = frozenset({Phase.VALIDATING, Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED, Phase.ROLLING_BACK})
Annotate = Callable[[str], Coroutine[Any, Any, None]]
Passed = tuple[Phase, str, str]  # a phase a step went through on the way: (phase, time, message)


class PhaseReporter:
    def __init__(self, *, metrics: Metrics, recorder: EventSink, notify: Callable[[], None]) -> None:
        self.metrics = metrics
        self.recorder = recorder
        self.notify = notify

    def planned(self, plan: MigrationPlan) -> None:
        for decision in plan.decisions:
            self.metrics.containers_total.labels(action=decision.action.value).inc()
        freed = plan.requests_before - plan.requests_after
        self.metrics.cpu_requests_freed.inc(max(0, freed.cpu_millicores))
        self.metrics.memory_requests_freed.inc(max(0, freed.memory_bytes))

    def phase_changed(
        self,
        *,
        migration: JSON,
        source_pod: JSON | None,
        target_pod: JSON | None,
        previous: Phase,
        phase: Phase,
        message: str,
        annotate_source: Annotate,
        passed: Sequence[Passed] = (),
    ) -> None:
        """`passed`: (phase, time, message) of the phases the step went through on the way to `phase`."""
        status = migration.get("status") or {}
        self._record_phase_durations(status.get("phaseTransitions") or [], [previous, *(p for p, _, _ in passed)])
        failed = phase in (Phase.FAILED, Phase.ROLLING_BACK)
        log.info("migration.phase_changed", previous=previous.value, new_phase=phase.value, message=message)
        name = migration["metadata"]["name"]
        for step, text, warning in [*((p, m, False) for p, _, m in passed), (phase, message, failed)]:
            reason = f"Migration{step.value}"
            self.recorder.record(migration, reason=reason, message=text, warning=warning)
            # Completion is told on the pod that now runs the work; everything else on the pod being moved.
            pod = target_pod if step is Phase.COMPLETED else source_pod
            if pod is not None and step in POD_EVENT_PHASES:
                self.recorder.record(pod, reason=reason, message=f"migration {name}: {text}", warning=warning)
        if phase.is_terminal:
            self.metrics.migrations_total.labels(result=phase.status.value).inc()
            start = parse_time(status.get("startedAt") or migration["metadata"].get("creationTimestamp"))
            end = parse_time(status.get("finishedAt"))
            if start and end:
                self.metrics.migration_duration.labels(result=phase.status.value).observe((end - start).total_seconds())
            if phase is not Phase.COMPLETED:
                error = (status.get("error") or {}).get("reason")
                self.recorder.run_in_background(annotate_source(f"{phase.value}: {error}" if error else phase.value))
        self.notify()  # waiters on "phase X and its metrics/events recorded" see both

    def _record_phase_durations(self, transitions: Sequence[JSON], left: Sequence[Phase]) -> None:
        """Each phase `left` by this step, in order, lasted from its own transition entry to the next one: the
        last len(left) + 1 entries. Pending, where every migration starts, has no entry: its time is not observed."""
        entries = transitions[-(len(left) + 1) :]
        for phase, (entered, exited) in zip(reversed(left), reversed(list(pairwise(entries))), strict=False):
            start, end = parse_time(entered.get("time")), parse_time(exited.get("time"))
            if start and end:
                self.metrics.phase_duration.labels(phase=phase.value).observe((end - start).total_seconds())
