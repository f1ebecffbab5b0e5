"""What the comparison's charts show, read from the report's JSON document (report.json): pure, no drawing library.

Every value comes from a read or a time stamp the run recorded; what was not recorded stays ``None`` (or is left out
with its reason), so a chart can never show a value that was not measured:

* CPU per container: the rate of each container's own counter between the two reads that bound a *valid* sample
  (``samples[i].start_snapshot`` → ``end_snapshot`` in ``reads``), Δcpu_ns / Δtimestamp_ns, the same arithmetic as
  ``measuring.interval_between``; their sum is the pod's sample. A container not running at either read used none.
* Memory per container: each read's ``memory_bytes`` (cgroup memory.current / usage_in_bytes, or the kubelet's
  working set); a synthetic zero-baseline read is not a measurement and is left out.
* The migration timeline: seconds since each method's request (native: the DELETE, orchestrator: the POST); the
  orchestrator's ``phase_transitions``, the native's recorded ``events`` (pod gone, created) when the run recorded
  them, and the trainer's downtime and Ready time stamp from ``compare/timing.py``'s figures when measured.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ai_storage_orchestrator.compare.measuring import MIB, NS_PER_SECOND, ParseError, parse_rfc3339_ns

JSON = Mapping[str, Any]
NOT_IN_REPORT = "not in this report: an older compare wrote it"


def unix_seconds(stamp: object) -> float | None:
    """An RFC 3339 time stamp as Unix seconds; None for anything else."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return parse_rfc3339_ns(stamp) / NS_PER_SECOND
    except ParseError:
        return None


@dataclass(frozen=True, slots=True)
class ChartFile:
    """One drawn chart: its name (the files' stem), title, and the PNG and SVG written."""

    name: str
    title: str
    png: Path
    svg: Path


@dataclass(frozen=True, slots=True)
class CpuInterval:
    """One valid sample: seconds since the request, and each container's rate over it (millicores)."""

    start: float
    end: float
    millicores: Mapping[str, float]

    @property
    def total(self) -> float:
        return sum(self.millicores.values())


@dataclass(frozen=True, slots=True)
class MemoryPoint:
    """One round of reads: seconds since the request, each container's memory in MiB (None: not read then)."""

    time: float
    mib: Mapping[str, float | None]


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of a migration on the timeline, seconds since the request."""

    label: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Mark:
    label: str
    time: float
    error: float = 0.0  # ± seconds (the resolution of the time stamp)


@dataclass(frozen=True, slots=True)
class Downtime:
    """The trainer's downtime on the timeline, or why it is not there (``start`` None)."""

    start: float | None
    end: float | None
    seconds: float | None
    error: float | None
    reason: str | None

    def label(self) -> str:
        if self.seconds is None:
            return f"not measured ({self.reason})"
        text = f"{self.seconds:.0f}s" if (self.error or 0) >= 1 else f"{self.seconds:.1f}s"
        return f"{text} ± {self.error:g}s" if self.error else text


@dataclass(slots=True)
class MethodChart:
    key: str
    title: str
    started: float  # Unix seconds of the request: time 0 of this method's charts
    wall_seconds: float | None
    containers: list[str]
    status: str  # the measurement's status
    reason: str | None  # why it was not measured
    cpu: list[CpuInterval] = field(default_factory=list)
    invalid_samples: int = 0
    cpu_figure: float | None = None  # the report's trimmed mean (millicores)
    memory: list[MemoryPoint] = field(default_factory=list)
    memory_figure: float | None = None  # the report's trimmed mean (MiB)
    segments: list[Segment] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    downtime: Downtime = field(default_factory=lambda: Downtime(None, None, None, None, NOT_IN_REPORT))
    missing: list[str] = field(default_factory=list)  # what the timeline cannot show, and why

    @property
    def pod_cpu(self) -> list[float]:
        return [i.total for i in self.cpu]


@dataclass(slots=True)
class ChartData:
    test_id: str
    workload: str
    methods: list[MethodChart]

    @property
    def containers(self) -> list[str]:
        """Every container of either pod, in the order of first appearance (one colour each across charts)."""
        names: list[str] = []
        for method in self.methods:
            names += [n for n in method.containers if n not in names]
        return names


def _container_rate(before: JSON | None, after: JSON | None) -> float | None:
    if before is None or after is None:
        return None
    if before.get("kind") == "not_running" and after.get("kind") == "not_running":
        return 0.0
    if before.get("kind") != "read" or after.get("kind") != "read":
        return None
    elapsed = int(after["timestamp_ns"]) - int(before["timestamp_ns"])
    used = int(after["cpu_ns"]) - int(before["cpu_ns"])
    if elapsed <= 0 or used < 0:
        return None
    return used / elapsed * 1000


def _cpu(measurement: JSON, t0: float, containers: Sequence[str]) -> tuple[list[CpuInterval], int]:
    reads = {int(r["index"]): r.get("containers") or {} for r in measurement.get("reads") or []}
    intervals: list[CpuInterval] = []
    invalid = 0
    for sample in measurement.get("samples") or []:
        start, end = unix_seconds(sample.get("start")), unix_seconds(sample.get("end"))
        before, after = reads.get(int(sample["start_snapshot"])), reads.get(int(sample["end_snapshot"]))
        if not sample.get("valid") or start is None or end is None or before is None or after is None:
            invalid += 1
            continue
        names = [n for n in containers if n in before or n in after] or sorted(set(before) | set(after))
        rates = {name: _container_rate(before.get(name), after.get(name)) for name in names}
        known = {name: rate for name, rate in rates.items() if rate is not None}
        if len(known) != len(rates):  # the report calls it valid, but a container's reads do not give its rate
            invalid += 1
            continue
        intervals.append(CpuInterval(start - t0, end - t0, known))
    return intervals, invalid


def _memory(measurement: JSON, t0: float, containers: Sequence[str]) -> list[MemoryPoint]:
    points = []
    for snapshot in measurement.get("reads") or []:
        wall = unix_seconds(snapshot.get("wall_time"))
        if snapshot.get("synthetic") or wall is None:
            continue
        reads = snapshot.get("containers") or {}
        mib: dict[str, float | None] = {}
        for name in containers:
            read = reads.get(name) or {}
            value = read.get("memory_bytes") if read.get("kind") == "read" else None
            mib[name] = value / MIB if isinstance(value, int) else None
        points.append(MemoryPoint(wall - t0, mib))
    return points


def _downtime(method: JSON, t0: float) -> Downtime:
    span = method.get("trainer_downtime")
    if not isinstance(span, Mapping):
        return Downtime(None, None, None, None, NOT_IN_REPORT)
    seconds = span.get("seconds")
    start, end = unix_seconds(span.get("start")), unix_seconds(span.get("end"))
    if seconds is None:
        return Downtime(None, None, None, None, str(span.get("reason") or "no reason recorded"))
    if start is None or end is None:
        return Downtime(None, None, None, None, "its time stamps are not in the report")
    return Downtime(start - t0, end - t0, float(seconds), float(span.get("plus_minus_seconds") or 0), None)


NATIVE_STEPS = ("pod gone", "created")  # the native's events between the DELETE and Ready, when recorded
NATIVE_SEGMENTS = ("deleting (old pod terminating)", "recreating (create sent)", "new pod starting")


def _timeline(method: JSON, chart: MethodChart) -> None:
    t0, wall = chart.started, chart.wall_seconds
    if chart.key == "orchestrator":
        chart.marks.append(Mark("request sent (DELETE / POST)", 0.0))
        transitions = ((method.get("orchestrator_migration") or {}).get("phase_transitions")) or []
        times = [(str(t.get("phase")), unix_seconds(t.get("time"))) for t in transitions]
        known = [(phase, at - t0) for phase, at in times if at is not None]
        for (phase, start), (_, end) in itertools.pairwise(known):
            chart.segments.append(Segment(phase, start, end))
        if known:
            chart.marks.append(Mark(f"phase {known[-1][0]} (orchestrator)", known[-1][1]))
        else:
            chart.missing.append("phases: no phase_transitions in the report")
        if wall is not None:
            chart.marks.append(Mark("completed seen by compare", wall))
    else:
        chart.marks.append(Mark("request sent (DELETE / POST)", 0.0))
        events = {str(e.get("event")): unix_seconds(e.get("time")) for e in method.get("events") or []}
        steps = [events.get(name) for name in NATIVE_STEPS]
        if wall is not None and all(at is not None for at in steps):
            edges = [0.0, *(at - t0 for at in steps if at is not None), wall]
            spans = zip(NATIVE_SEGMENTS, itertools.pairwise(edges), strict=True)
            chart.segments += [Segment(label, a, b) for label, (a, b) in spans]
        elif wall is not None:
            chart.segments.append(Segment("DELETE → Ready (steps not recorded)", 0.0, wall))
            chart.missing.append("pod gone / created: " + ("not recorded" if "events" in method else NOT_IN_REPORT))
        if wall is not None:
            chart.marks.append(Mark("Ready seen by compare", wall))
    ready = method.get("request_to_ready")
    if isinstance(ready, Mapping) and ready.get("seconds") is not None:
        chart.marks.append(
            Mark("Ready (kubelet)", float(ready["seconds"]), float(ready.get("plus_minus_seconds") or 0))
        )
    else:
        reason = ready.get("reason") if isinstance(ready, Mapping) else NOT_IN_REPORT
        chart.missing.append(f"Ready (kubelet): not measured ({reason})")
    chart.downtime = _downtime(method, t0)


def method_chart(method: JSON) -> MethodChart | None:
    t0 = unix_seconds(method.get("migration_started"))
    if t0 is None:
        return None
    measurement = method.get("measurement") or {}
    containers = [str(c) for c in method.get("containers") or []]
    wall = method.get("migration_seconds")
    chart = MethodChart(
        key=str(method.get("method")),
        title=str(method.get("title") or method.get("method")),
        started=t0,
        wall_seconds=float(wall) if isinstance(wall, int | float) else None,
        containers=containers,
        status=str(measurement.get("status")),
        reason=measurement.get("reason"),
        cpu_figure=measurement.get("cpu_millicores"),
        memory_figure=measurement.get("memory_mib"),
    )
    chart.cpu, chart.invalid_samples = _cpu(measurement, t0, containers)
    chart.memory = _memory(measurement, t0, containers)
    _timeline(method, chart)
    return chart


def chart_data(document: JSON) -> ChartData:
    methods = [method_chart(m) for m in (document.get("methods") or {}).values()]
    return ChartData(
        test_id=str(document.get("test_id") or ""),
        workload=str(document.get("workload") or ""),
        methods=[m for m in methods if m is not None],
    )
