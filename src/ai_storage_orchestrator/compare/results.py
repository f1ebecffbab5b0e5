"""What a comparison found, the verdict and its exit code, and the JSON form of it all (pure: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ai_storage_orchestrator.compare.cluster import NodeInfo
from ai_storage_orchestrator.compare.measuring import MIB, Figures, SamplingLog, iso_time, saving_percent
from ai_storage_orchestrator.compare.timing import DOWNTIME_RULE, READY_RULE, Span, TimingRun, not_measured
from ai_storage_orchestrator.controller.planning.quantities import format_cpu, format_memory
from ai_storage_orchestrator.models import Resources

JSON = dict[str, Any]

EXIT_PASS = 0
EXIT_BELOW_THRESHOLD = 1
EXIT_ERROR = 2

MEASURED = "measured"
NOT_MEASURED = "not_measured"
INSUFFICIENT = "insufficient"

WINDOW_RULES = {
    "ready": "the first read after the new pod is Ready (the first interval ends one --interval later)",
    "migration-start": (
        "the moment the migration starts (native: the DELETE of the pod; orchestrator: the POST), with every"
        " counter of the new pod at 0 then: its containers did not exist yet"
    ),
}


@dataclass(slots=True)
class Measurement:
    status: str
    reason: str | None = None
    source: str | None = None
    window_rule: str = "ready"
    window_start: float | None = None
    window_end: float | None = None
    figures: Figures | None = None
    log: SamplingLog | None = None
    restarts: list[str] = field(default_factory=list)  # containers that restarted in the window (then INSUFFICIENT)

    @property
    def cpu_millicores(self) -> float | None:
        return self.figures.cpu_millicores if self.figures else None

    @property
    def memory_mib(self) -> float | None:
        return self.figures.memory_mib if self.figures else None

    def to_json(self, *, samples: int, trim: int, interval: float) -> JSON:
        figures = self.figures
        log = self.log
        return {
            "status": self.status,
            "reason": self.reason,
            "source": self.source,
            "window": {
                "start_rule": self.window_rule,
                "start_rule_meaning": WINDOW_RULES.get(self.window_rule),
                "start": iso_time(self.window_start) if self.window_start is not None else None,
                "end": iso_time(self.window_end) if self.window_end is not None else None,
                "seconds": round(self.window_end - self.window_start, 3)
                if self.window_start is not None and self.window_end is not None
                else None,
            },
            "requested_samples": samples,
            "trim": trim,
            "interval_seconds": interval,
            "valid_samples": log.valid_count if log else 0,
            "stale_reads_dropped": log.dropped_stale if log else 0,
            "restarts_in_window": self.restarts,
            "cpu_millicores": round(figures.cpu_millicores, 1) if figures else None,
            "memory_mib": round(figures.memory_mib, 1) if figures and figures.memory_mib is not None else None,
            "memory_reason": figures.memory_reason if figures else None,
            "cpu_seconds": round(figures.cpu_seconds, 3) if figures else None,
            "samples": [i.to_json() for i in log.intervals] if log else [],
            "reads": [s.to_json() for s in log.snapshots] if log else [],
        }


@dataclass(slots=True)
class Probe:
    """The specification's quick measurement of the pod just before it moves: ``samples`` real samples through the
    same sampler and source; its CPU figure is their minimum (the specification's rule), its memory their mean. It
    does not enter the comparison's figures (those are the windows after the migrations)."""

    status: str
    pod: str
    samples: int
    reason: str | None = None
    minimum_cpu_millicores: float | None = None
    memory_mib: float | None = None
    memory_reason: str | None = None
    log: SamplingLog | None = None

    def to_json(self) -> JSON:
        log = self.log
        return {
            "status": self.status,
            "reason": self.reason,
            "pod": self.pod,
            "requested_samples": self.samples,
            "valid_samples": log.valid_count if log else 0,
            "cpu_rule": f"minimum of {self.samples} samples",
            "minimum_cpu_millicores": _round(self.minimum_cpu_millicores, 1),
            "memory_rule": f"mean of {self.samples} samples",
            "memory_mib": _round(self.memory_mib, 1),
            "memory_reason": self.memory_reason,
            "samples": [i.to_json() for i in log.intervals] if log else [],
            "reads": [s.to_json() for s in log.snapshots] if log else [],
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(slots=True)
class MethodResult:
    key: str  # "native" | "orchestrator"
    title: str
    from_node: str
    to_node: str
    pod: str
    started_at: float  # Unix time the migration started
    wall_seconds: float
    ready_at: float
    containers: list[str]  # of the new pod's spec
    started: list[str]  # of those, the ones that started
    restarts: int
    requests: Resources
    measurement: Measurement
    migration: JSON | None = None
    final_node: str | None = None  # spec.nodeName of the new pod, read after its window
    probe: Probe | None = None  # the pre-migration probe of the pod it moved
    # From the kubelet's time stamps (compare/timing.py): the trainer's downtime, request sent → new pod Ready.
    downtime: Span = field(default_factory=lambda: not_measured("not timed"))
    request_to_ready: Span = field(default_factory=lambda: not_measured("not timed"))
    # Moments between the request and Ready (Unix time on this machine), e.g. ("pod gone", t), ("created", t) of the
    # native method: the report's migration timeline draws them (compare/chart.py); empty when not recorded.
    events: list[tuple[str, float]] = field(default_factory=list)

    def to_json(self, *, samples: int, trim: int, interval: float) -> JSON:
        return {
            "method": self.key,
            "title": self.title,
            "from_node": self.from_node,
            "to_node": self.to_node,
            "pod": self.pod,
            "migration_started": iso_time(self.started_at),
            "pod_ready": iso_time(self.ready_at),
            "migration_seconds": round(self.wall_seconds, 3),
            "containers": self.containers,
            "containers_started": len(self.started),
            "started_containers": self.started,
            "restarts": self.restarts,
            "requests": {
                "cpu_millicores": self.requests.cpu_millicores,
                "memory_bytes": self.requests.memory_bytes,
                "memory_mib": round(self.requests.memory_bytes / MIB, 1),
            },
            "measurement": self.measurement.to_json(samples=samples, trim=trim, interval=interval),
            "orchestrator_migration": self.migration,
            "final_node": self.final_node,
            "pre_migration_probe": self.probe.to_json() if self.probe else None,
            "trainer_downtime": {**self.downtime.to_json(), "rule": DOWNTIME_RULE},
            "request_to_ready": {**self.request_to_ready.to_json(), "rule": READY_RULE},
            "events": [{"event": name, "time": iso_time(at)} for name, at in self.events],
        }


@dataclass(slots=True)
class Verdict:
    exit_code: int
    passed: bool | None
    line: str
    headline: str = ""  # the specification's RESULT line, when the run has one; ``line`` = headline + detail
    detail: str = ""

    @property
    def console_lines(self) -> list[str]:
        return [self.headline, f"# {self.detail}"] if self.headline else [self.line]


@dataclass(slots=True)
class Comparison:
    test_id: str
    started: float
    settings: JSON
    namespace: str = ""
    workload: str = ""
    source_node: NodeInfo | None = None
    target_node: NodeInfo | None = None
    versions: JSON = field(default_factory=dict)
    measurement_source: str | None = None
    measurement_source_reason: str | None = None
    native: MethodResult | None = None
    orchestrator: MethodResult | None = None
    error: str | None = None
    cleanup: list[str] = field(default_factory=list)
    finished: float | None = None
    timing: TimingRun | None = None  # --timing-pairs

    @property
    def methods(self) -> list[MethodResult]:
        return [m for m in (self.native, self.orchestrator) if m is not None]

    def cpu_saving(self) -> float | None:
        if self.native is None or self.orchestrator is None:
            return None
        return saving_percent(self.native.measurement.cpu_millicores, self.orchestrator.measurement.cpu_millicores)

    def memory_saving(self) -> float | None:
        if self.native is None or self.orchestrator is None:
            return None
        return saving_percent(self.native.measurement.memory_mib, self.orchestrator.measurement.memory_mib)

    def requests_freed(self) -> Resources | None:
        if self.native is None or self.orchestrator is None:
            return None
        return self.native.requests - self.orchestrator.requests

    def verdict(self, *, threshold: float, allow_unmeasured: bool) -> Verdict:
        if self.error is not None:
            return Verdict(EXIT_ERROR, None, f"ERROR: {self.error}")
        if self.native is None or self.orchestrator is None:
            return Verdict(EXIT_ERROR, None, "ERROR: the comparison did not finish")
        statuses = {self.native.measurement.status, self.orchestrator.measurement.status}
        facts = self._facts()
        if NOT_MEASURED in statuses:
            reason = self.native.measurement.reason or self.orchestrator.measurement.reason
            line = f"RESULT: CPU and memory not measured: {reason}; {facts}"
            if allow_unmeasured:
                return Verdict(EXIT_PASS, None, line)
            return Verdict(EXIT_ERROR, None, line + " -- pass --allow-unmeasured to accept a run without CPU figures")
        if INSUFFICIENT in statuses:
            reasons = "; ".join(
                f"{m.title}: {m.measurement.reason}" for m in self.methods if m.measurement.status == INSUFFICIENT
            )
            if any(m.measurement.restarts for m in self.methods):
                return Verdict(
                    EXIT_ERROR, None, f"ERROR: a container restarted in its window, no CPU figure ({reasons}); {facts}"
                )
            return Verdict(EXIT_ERROR, None, f"ERROR: too few valid samples, no CPU figure ({reasons}); {facts}")
        cpu = self.cpu_saving()
        if cpu is None:
            return Verdict(EXIT_ERROR, None, "ERROR: no CPU saving can be computed (the native pod used no CPU)")
        memory = self.memory_saving()
        memory_text = f"{memory:.1f}% memory reduction" if memory is not None else "no memory figure"
        passed = cpu >= threshold
        headline = f"RESULT: AI Orchestrator achieved {cpu:.1f}% CPU reduction and {memory_text}"
        outcome = f"{'PASS' if passed else 'FAIL'}: threshold {threshold:g}% CPU"
        line = f"{headline} ({outcome}); {facts}"
        return Verdict(
            EXIT_PASS if passed else EXIT_BELOW_THRESHOLD, passed, line, headline=headline, detail=f"{outcome}; {facts}"
        )

    def _facts(self) -> str:
        assert self.native is not None
        assert self.orchestrator is not None
        freed = self.requests_freed()
        assert freed is not None
        return (
            f"the orchestrator started {len(self.orchestrator.started)} containers instead of"
            f" {len(self.native.started)}, freed {format_cpu(freed.cpu_millicores)} CPU and"
            f" {format_memory(freed.memory_bytes)} memory requests, and moved the pod in"
            f" {self.orchestrator.wall_seconds:.2f}s (native: {self.native.wall_seconds:.2f}s)"
        )

    def to_json(self, *, threshold: float, allow_unmeasured: bool) -> JSON:
        samples, trim, interval = (int(self.settings["samples"]), int(self.settings["trim"]), self.settings["interval"])
        verdict = self.verdict(threshold=threshold, allow_unmeasured=allow_unmeasured)
        freed = self.requests_freed()
        cpu, memory = self.cpu_saving(), self.memory_saving()
        return {
            "test_id": self.test_id,
            "date": iso_time(self.started),
            "finished": iso_time(self.finished) if self.finished else None,
            "namespace": self.namespace,
            "workload": self.workload,
            "settings": self.settings,
            "versions": self.versions,
            "nodes": {
                "source": self.source_node.to_json() if self.source_node else None,
                "target": self.target_node.to_json() if self.target_node else None,
            },
            "measurement_source": {"source": self.measurement_source, "why": self.measurement_source_reason},
            "methods": {m.key: m.to_json(samples=samples, trim=trim, interval=interval) for m in self.methods},
            "comparison": {
                "cpu_saving_percent": round(cpu, 2) if cpu is not None else None,
                "memory_saving_percent": round(memory, 2) if memory is not None else None,
                "cpu_requests_freed_millicores": freed.cpu_millicores if freed else None,
                "memory_requests_freed_bytes": freed.memory_bytes if freed else None,
                "containers_started": {m.key: len(m.started) for m in self.methods},
                "migration_seconds": {m.key: round(m.wall_seconds, 3) for m in self.methods},
                "trainer_downtime_seconds": {m.key: _round(m.downtime.seconds, 3) for m in self.methods},
                "request_to_ready_seconds": {m.key: _round(m.request_to_ready.seconds, 3) for m in self.methods},
                "cpu_seconds": {
                    m.key: round(m.measurement.figures.cpu_seconds, 3) if m.measurement.figures else None
                    for m in self.methods
                },
            },
            "result": {
                "exit_code": verdict.exit_code,
                "passed": verdict.passed,
                "threshold_percent": threshold,
                "line": verdict.line,
                "error": self.error,
            },
            "timing": self.timing.to_json() if self.timing else None,
            "cleanup": self.cleanup,
        }
