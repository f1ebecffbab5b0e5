"""A synthetic comparison for the chart and report.html tests: per-container counters through the real sampler maths
(``measuring.interval_between``), the native's steps recorded, its trainer downtime measured, the orchestrator's not,
and two orchestrator samples invalid (a failed read)."""

from __future__ import annotations

import itertools

from ai_storage_orchestrator.compare.cluster import NodeInfo
from ai_storage_orchestrator.compare.measuring import (
    MIB,
    NS_PER_SECOND,
    CounterRead,
    ReadFailed,
    SamplingLog,
    Snapshot,
    figures,
    interval_between,
    iso_time,
)
from ai_storage_orchestrator.compare.results import MEASURED, Comparison, Measurement, MethodResult
from ai_storage_orchestrator.compare.timing import Span, not_measured
from ai_storage_orchestrator.models import Resources

T0 = 1_700_000_000.0  # the native's DELETE
T1 = T0 + 60.0  # the orchestrator's POST
SETTINGS = {"samples": 10, "trim": 2, "interval": 1.0, "window_start": "ready"}
NATIVE_RATES = {"tensorflow-trainer": 700.0, "data-processor": 250.0, "model-monitor": 30.0}
ORCHESTRATOR_RATES = {"tensorflow-trainer": 700.0, "model-monitor": 30.0}
MEMORY_MIB = {"tensorflow-trainer": 45, "data-processor": 60, "model-monitor": 5}
DOWNTIME_REASON = "the watch of the source pod failed"


def sampled(rates: dict[str, float], start: float, count: int, *, fail_at: int | None = None) -> SamplingLog:
    """``count`` + 1 rounds of reads 1 s apart, each container's counter growing at its rate (millicores)."""
    snapshots = []
    for k in range(count + 1):
        wall = start + k
        reads: dict[str, CounterRead | ReadFailed] = {}
        for name, rate in rates.items():
            if k == fail_at and name == "model-monitor":
                reads[name] = ReadFailed("exec timed out")
                continue
            stamp = round((wall + 0.05) * NS_PER_SECOND)
            reads[name] = CounterRead(stamp, round(rate * 1e6 * k), (MEMORY_MIB[name] + k) * MIB, "cgroup v2")
        snapshots.append(Snapshot(k, wall, reads))
    return SamplingLog(snapshots, [interval_between(a, b) for a, b in itertools.pairwise(snapshots)])


def _measurement(log: SamplingLog, start: float) -> Measurement:
    valid = log.valid_count
    return Measurement(
        MEASURED, None, "cgroup", "ready", start, start + len(log.intervals),
        figures(log.intervals, samples=valid, trim=2), log,
    )  # fmt: skip


def _method(key: str, started: float, wall: float, log: SamplingLog, containers: list[str]) -> MethodResult:
    return MethodResult(
        key=key,
        title="K8S NATIVE" if key == "native" else "AI ORCHESTRATOR",
        from_node="node-a" if key == "native" else "node-b",
        to_node="node-b" if key == "native" else "node-a",
        pod="tensorflow-ai-workload",
        started_at=started,
        wall_seconds=wall,
        ready_at=started + wall,
        containers=containers,
        started=containers,
        restarts=0,
        requests=Resources(1100 if key == "native" else 850, 5 << 30),
        measurement=_measurement(log, started + wall),
    )


def comparison() -> Comparison:
    c = Comparison("cmp-charts", T0 - 5, dict(SETTINGS), namespace="ml", workload="numpy")
    c.source_node = c.target_node = NodeInfo("node-a", False, True, True, "v1.30", "containerd://2", "6.1", "Debian")
    native = _method("native", T0, 3.0, sampled(NATIVE_RATES, T0 + 3.0, 10), list(NATIVE_RATES))
    native.events = [("pod gone", T0 + 1.0), ("created", T0 + 1.2)]
    native.downtime = Span(4.0, 1.0, iso_time(T0 + 0.5).replace(".000", ""), iso_time(T0 + 4.5).replace(".000", ""))
    native.request_to_ready = Span(2.5, 0.5, iso_time(T0), "2023-11-14T22:13:22Z")
    orchestrator = _method(
        "orchestrator", T1, 2.5, sampled(ORCHESTRATOR_RATES, T1 + 2.5, 12, fail_at=5), list(ORCHESTRATOR_RATES)
    )
    phases = [("Validating", 0.02), ("Checkpointing", 0.05), ("StoppingSource", 0.7), ("CreatingTarget", 1.8),
              ("WaitingForTarget", 1.9), ("Completed", 2.4)]  # fmt: skip
    orchestrator.migration = {
        "status": "completed",
        "containers": [{"name": "data-processor", "action": "skip", "reason": "completed"}],
        "phase_transitions": [{"phase": p, "time": iso_time(T1 + at), "message": ""} for p, at in phases],
    }
    orchestrator.downtime = not_measured(DOWNTIME_REASON)
    orchestrator.request_to_ready = not_measured("the new pod has no Ready=True condition with a lastTransitionTime")
    c.native, c.orchestrator, c.finished = native, orchestrator, T1 + 30
    return c


def document() -> dict[str, object]:
    return comparison().to_json(threshold=20, allow_unmeasured=False)
