"""The measurement maths of the comparison, free of I/O: parsing counter reads, rates between reads, trimming.

A CPU figure is a rate: the change of a cumulative counter divided by the time between the two reads, with each time
stamp taken in the same read as its counter (inside the container for cgroup reads, by the kubelet for its summary).
A pod's rate over an interval is the sum of its containers' rates. An interval is *valid* only when every container's
CPU use over it is known; otherwise it is kept with the reason and left out of the figures. Nothing here fills a gap
with a guess: too few valid intervals give no figure at all (``InsufficientSamples``)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ai_storage_orchestrator.compare.cluster import HOPELESS, ContainerRun

NS_PER_SECOND = 1_000_000_000
MIB = 1 << 20

# Shell run by `sh -c` inside each container: the CPU counter, the time stamp right after it, then memory. Labelled
# lines, so the parser needs no guessing. cgroup v2 first; v1 paths for both the split and the joint cpu,cpuacct mount.
# cgroup v2's /sys/fs/cgroup is the container's own cgroup only in a private cgroup namespace, where the reading process
# sees its own cgroup as the root: /proc/self/cgroup is exactly `0::/`. Otherwise (a runtime or pod sharing the host's
# cgroup namespace) it is the node's root cgroup, whose cpu.stat counts every process of the node: the script refuses,
# printing what /proc/self/cgroup said, and the read is a failed one (``cgroup_refusal``).
CGROUP_REFUSED = "cgroup v2 refused"


def cgroup_read_script(*, proc_self_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> str:
    """``CGROUP_READ_SCRIPT``; the paths are parameters for tests only."""
    return (
        f"if [ -r {root}/cpu.stat ]; then "
        f"own=$(cat {proc_self_cgroup} 2>/dev/null); "
        f'if [ "$own" != "0::/" ]; then echo "{CGROUP_REFUSED}"; echo "$own"; exit 3; fi; '
        f"echo cgroup v2; cat {root}/cpu.stat; echo timestamp_ns $(date +%s%N); "
        f"echo memory.current $(cat {root}/memory.current); "
        "else "
        "echo cgroup v1; "
        f"echo cpuacct.usage $(cat {root}/cpuacct/cpuacct.usage 2>/dev/null"
        f" || cat {root}/cpu,cpuacct/cpuacct.usage); "
        "echo timestamp_ns $(date +%s%N); "
        f"echo memory.usage_in_bytes $(cat {root}/memory/memory.usage_in_bytes); "
        "fi"
    )


CGROUP_READ_SCRIPT = cgroup_read_script()
CGROUP_READ_ARGV = ("sh", "-c", CGROUP_READ_SCRIPT)


class ParseError(ValueError):
    """A read whose output does not hold the counters it should."""


class InsufficientSamples(ValueError):
    """Fewer values than a figure needs."""


# Reads ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CounterRead:
    """One container's counters at one moment. ``cpu_ns``: cumulative CPU time; ``timestamp_ns``: when it was read
    (Unix time, nanoseconds, the node's clock); ``memory_bytes``: memory.current / memory.usage_in_bytes (cgroup) or
    workingSetBytes (kubelet), None when not reported."""

    timestamp_ns: int
    cpu_ns: int
    memory_bytes: int | None
    origin: str  # "cgroup v2", "cgroup v1", "kubelet", or "zero baseline"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "read",
            "timestamp": iso_time(self.timestamp_ns / NS_PER_SECOND),
            "timestamp_ns": self.timestamp_ns,
            "cpu_ns": self.cpu_ns,
            "memory_bytes": self.memory_bytes,
            "origin": self.origin,
        }


@dataclass(frozen=True, slots=True)
class NotRunning:
    """The container was not running at that moment (completed, or waiting): it used no CPU then."""

    state: str

    @property
    def failed(self) -> bool:
        """Ended with an error, or kept from running by one (a crash loop, an image it cannot get): not the clean
        exit of a finished step, nor a container that is still being created."""
        if self.state.startswith("terminated"):
            return not self.state.startswith("terminated (exit 0,")
        reason = self.state.removeprefix("waiting (").removesuffix(")") if self.state.startswith("waiting") else None
        return reason is not None and ("BackOff" in reason or "Err" in reason or reason in HOPELESS)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "not_running", "state": self.state}


@dataclass(frozen=True, slots=True)
class ReadFailed:
    """The container runs but its counters could not be read: its CPU use around this read is unknown."""

    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": "failed", "reason": self.reason}


ContainerRead = CounterRead | NotRunning | ReadFailed


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The reads of every container of a pod in one round (taken concurrently). ``wall_time`` is this machine's Unix
    time when the round started. ``runs``: which run of each container the pod status read in the same round showed
    (restartCount, containerID); empty when that status was not read."""

    index: int
    wall_time: float
    reads: Mapping[str, ContainerRead]
    synthetic: bool = False
    runs: Mapping[str, ContainerRun] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "index": self.index,
            "wall_time": iso_time(self.wall_time),
            "synthetic": self.synthetic,
            "containers": {name: read.to_json() for name, read in self.reads.items()},
        }
        if self.runs and not self.synthetic:  # a zero baseline's runs are all 0 by definition
            found["runs"] = {name: run.to_json() for name, run in self.runs.items()}
        return found


def zero_baseline(containers: Iterable[str], wall_time: float) -> Snapshot:
    """The counters of containers that did not exist yet at ``wall_time`` (a migration's start): all zero.

    Every container of a newly created pod starts its cgroup (and the kubelet its counter) at 0 after that moment, so
    the first interval measured from here counts all the CPU the new pod used while starting. Its time stamp comes from
    this machine's clock, the later reads from the node's: keep the two in sync (NTP)."""
    timestamp_ns = round(wall_time * NS_PER_SECOND)
    names = list(containers)
    reads = {name: CounterRead(timestamp_ns, 0, 0, "zero baseline") for name in names}
    runs = {name: ContainerRun(0) for name in names}  # not created yet: any restart seen later is in the window
    return Snapshot(index=0, wall_time=wall_time, reads=reads, synthetic=True, runs=runs)


def _key_values(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            values[parts[0]] = parts[1]
        elif len(parts) == 1:
            values.setdefault(parts[0], "")
    return values


def _integer(values: Mapping[str, str], key: str, what: str) -> int:
    raw = values.get(key)
    if raw is None or raw == "":
        raise ParseError(f"no {key} in the output ({what})")
    if not raw.isdigit():
        raise ParseError(f"{key} is not a whole number: {raw!r} ({what})")
    return int(raw)


def parse_cgroup_read(text: str) -> CounterRead:
    """The output of ``CGROUP_READ_SCRIPT``: cgroup v2 (``usage_usec`` in µs, ``memory.current``) or v1
    (``cpuacct.usage`` in ns, ``memory.usage_in_bytes``), and ``timestamp_ns`` from ``date +%s%N``."""
    refused = cgroup_refusal(text)
    if refused is not None:
        raise ParseError(refused)
    values = _key_values(text)
    version = values.get("cgroup")
    if version == "v2":
        cpu_ns = _integer(values, "usage_usec", "cgroup v2 cpu.stat") * 1000
        memory = _integer(values, "memory.current", "cgroup v2")
    elif version == "v1":
        cpu_ns = _integer(values, "cpuacct.usage", "cgroup v1 cpuacct")
        memory = _integer(values, "memory.usage_in_bytes", "cgroup v1 memory")
    else:
        raise ParseError(f"not a cgroup read: {text[:200]!r}")
    timestamp = values.get("timestamp_ns", "")
    if not timestamp.isdigit() or len(timestamp) < 16:  # `date` without %N support prints "%N" or "N"
        raise ParseError(f"`date +%s%N` gave no nanosecond time stamp: {timestamp!r}")
    return CounterRead(int(timestamp), cpu_ns, memory, f"cgroup {version}")


def cgroup_refusal(text: str) -> str | None:
    """Why ``CGROUP_READ_SCRIPT`` refused to read (no private cgroup namespace), or None when it did not refuse."""
    head, found, own = text.partition(CGROUP_REFUSED + "\n")
    if not found or head.strip():
        return None
    lines = " | ".join(line.strip() for line in own.strip().splitlines())
    seen = repr(lines[:200]) if lines else "empty or unreadable"
    return (
        f"not read: the container has no private cgroup namespace (its /proc/self/cgroup is {seen}, not"
        " '0::/'), so /sys/fs/cgroup is not its own cgroup and its cpu.stat would count the node's (or a parent"
        " cgroup's) CPU"
    )


def parse_rfc3339_ns(value: str) -> int:
    """``2024-05-01T10:00:00.123456789Z`` → Unix nanoseconds, keeping every digit of the fraction."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, offset = text[:19], text[19:]
    fraction = ""
    if offset.startswith("."):
        digits = len(offset) - len(offset[1:].lstrip("0123456789"))
        fraction, offset = offset[1:digits], offset[digits:]
    try:
        moment = dt.datetime.fromisoformat(head + (offset or "+00:00"))
    except ValueError:
        raise ParseError(f"not an RFC 3339 time: {value!r}") from None
    seconds = int(moment.timestamp())
    return seconds * NS_PER_SECOND + int((fraction + "000000000")[:9] or 0)


def parse_kubelet_summary(summary: Mapping[str, Any], *, namespace: str, pod: str) -> dict[str, CounterRead]:
    """The containers of one pod in the kubelet's ``/stats/summary``: ``usageCoreNanoSeconds`` with its ``time``,
    and ``workingSetBytes``. A container without a CPU counter is left out (the caller decides what that means)."""
    reads: dict[str, CounterRead] = {}
    for entry in summary.get("pods") or []:
        ref = entry.get("podRef") or {}
        if ref.get("name") != pod or ref.get("namespace") != namespace:
            continue
        for container in entry.get("containers") or []:
            cpu = container.get("cpu") or {}
            usage, time = cpu.get("usageCoreNanoSeconds"), cpu.get("time")
            if not isinstance(usage, int) or not isinstance(time, str):
                continue
            working_set = (container.get("memory") or {}).get("workingSetBytes")
            memory = working_set if isinstance(working_set, int) else None
            reads[str(container.get("name"))] = CounterRead(parse_rfc3339_ns(time), usage, memory, "kubelet")
    return reads


# Intervals -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Interval:
    """The pod between two snapshots. ``stale``: some counter had not been refreshed since the earlier snapshot
    (the kubelet updates its stats every few seconds); the sampler then drops the later snapshot and waits for a
    fresh one."""

    start_index: int
    end_index: int
    start_wall_time: float
    end_wall_time: float
    duration_seconds: float | None
    cpu_millicores: float | None
    cpu_seconds: float | None
    memory_bytes: int | None
    reason: str | None = None
    stale: bool = False

    @property
    def valid(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        return {
            "start_snapshot": self.start_index,
            "end_snapshot": self.end_index,
            "start": iso_time(self.start_wall_time),
            "end": iso_time(self.end_wall_time),
            "duration_seconds": _round(self.duration_seconds, 6),
            "cpu_millicores": _round(self.cpu_millicores, 3),
            "cpu_seconds": _round(self.cpu_seconds, 6),
            "memory_mib": _round(self.memory_bytes / MIB if self.memory_bytes is not None else None, 3),
            "valid": self.valid,
            "reason": self.reason,
        }


def interval_between(before: Snapshot, after: Snapshot) -> Interval:
    """The pod's CPU rate (sum over containers of Δcpu/Δt, each container over its own pair of time stamps), the CPU
    time used, and the memory at the end. Invalid, with the reason, when any container's use is unknown."""
    problems: list[str] = []
    stale: list[str] = []
    rate = 0.0
    cpu_ns = 0
    memory = 0
    memory_known = True
    durations: list[float] = []
    for name in sorted(set(before.reads) | set(after.reads)):
        start, end = before.reads.get(name), after.reads.get(name)
        if (restart := _restart(name, before, after)) is not None:
            problems.append(f"{name}: restarted ({restart}): its counters are those of two different runs")
        elif isinstance(start, ReadFailed) or isinstance(end, ReadFailed):
            failed = end if isinstance(end, ReadFailed) else start
            assert isinstance(failed, ReadFailed)
            problems.append(f"{name}: read failed: {failed.reason}")
        elif start is None or end is None:
            problems.append(f"{name}: not in both reads")
        elif (crashed := next((r for r in (end, start) if isinstance(r, NotRunning) and r.failed), None)) is not None:
            problems.append(f"{name}: failed ({crashed.state}): a crashed container's missing CPU is no saving")
        elif isinstance(start, NotRunning) and isinstance(end, NotRunning):
            continue  # not running at either end: it used no CPU in between
        elif isinstance(start, NotRunning):
            problems.append(f"{name}: started during the interval ({start.state} before)")
        elif isinstance(end, NotRunning):
            problems.append(f"{name}: stopped during the interval ({end.state} after)")
        else:
            elapsed = end.timestamp_ns - start.timestamp_ns
            used = end.cpu_ns - start.cpu_ns
            if elapsed <= 0:
                stale.append(name)
            elif used < 0:
                problems.append(f"{name}: CPU counter went back (the container restarted)")
            else:
                rate += millicores(used, elapsed)
                cpu_ns += used
                durations.append(elapsed / NS_PER_SECOND)
                if end.memory_bytes is None:
                    memory_known = False
                else:
                    memory += end.memory_bytes
    if stale and not problems:
        problems.append("no fresh counter for " + ", ".join(stale))
    valid = not problems
    return Interval(
        start_index=before.index,
        end_index=after.index,
        start_wall_time=before.wall_time,
        end_wall_time=after.wall_time,
        duration_seconds=sum(durations) / len(durations) if durations else None,
        cpu_millicores=rate if valid else None,
        cpu_seconds=cpu_ns / NS_PER_SECOND if valid else None,
        memory_bytes=memory if valid and memory_known else None,
        reason="; ".join(problems) if problems else None,
        stale=bool(stale),
    )


def _restart(name: str, before: Snapshot, after: Snapshot) -> str | None:
    earlier, later = before.runs.get(name), after.runs.get(name)
    return later.change_since(earlier) if earlier is not None and later is not None else None


def restarts(snapshots: Sequence[Snapshot]) -> list[str]:
    """The containers that restarted between the first and the last of ``snapshots`` (a window's reads), each with
    what changed from its first run seen to its last: ``"tensorflow-trainer (restartCount 0 -> 1)"``. A snapshot
    without a container's run (its pod status was not read) is skipped for that container."""
    first: dict[str, ContainerRun] = {}
    last: dict[str, ContainerRun] = {}
    restarted: list[str] = []
    for snapshot in snapshots:
        for name, run in snapshot.runs.items():
            first.setdefault(name, run)
            if name in last and name not in restarted and run.change_since(last[name]) is not None:
                restarted.append(name)
            last[name] = run
    return [f"{name} ({last[name].change_since(first[name]) or 'containerID changed'})" for name in restarted]


def rates_from_counters(timestamps_ns: Sequence[int], counters_ns: Sequence[int]) -> list[float]:
    """Millicores between consecutive reads of one counter: Δcounter/Δt, whatever the gaps between the reads."""
    if len(timestamps_ns) != len(counters_ns):
        raise ValueError("every counter needs its time stamp")
    reads = list(zip(timestamps_ns, counters_ns, strict=True))
    rates = []
    for (t0, c0), (t1, c1) in itertools.pairwise(reads):
        if t1 <= t0:
            raise ValueError(f"time stamps must increase: {t0} then {t1}")
        rates.append(millicores(c1 - c0, t1 - t0))
    return rates


def millicores(cpu_ns: int, elapsed_ns: int) -> float:
    """CPU nanoseconds used over elapsed nanoseconds, in millicores (1 core = 1000m)."""
    return cpu_ns / elapsed_ns * 1000


# Figures -------------------------------------------------------------------------------------------------------------
def trimmed_mean(values: Sequence[float], trim: int) -> float:
    """Sort, drop the ``trim`` highest and ``trim`` lowest, average the rest (20 values, trim 3 → the middle 14)."""
    if trim < 0:
        raise ValueError("trim must not be negative")
    if len(values) <= 2 * trim:
        raise InsufficientSamples(f"{len(values)} values cannot lose {trim} highest and {trim} lowest")
    kept = sorted(values)[trim : len(values) - trim]
    return math.fsum(kept) / len(kept)


@dataclass(frozen=True, slots=True)
class Figures:
    """What a measurement window gives: trimmed means of the valid intervals (``samples`` of them), the CPU-seconds
    used over those intervals and their total length (``window_seconds``: intervals left out are not in it)."""

    cpu_millicores: float
    memory_mib: float | None
    cpu_seconds: float
    window_seconds: float
    memory_reason: str | None = None


def figures(intervals: Sequence[Interval], *, samples: int, trim: int) -> Figures:
    """The figures of exactly ``samples`` valid intervals (the first ones); InsufficientSamples when there are fewer.

    CPU: trimmed mean of the interval rates (millicores). Memory: trimmed mean of the pod's memory at the end of each
    interval (MiB). CPU-seconds: the CPU time the pod used over those intervals."""
    valid = [i for i in intervals if i.valid][:samples]
    if len(valid) < samples:
        reasons = sorted({i.reason for i in intervals if i.reason and not i.stale})
        detail = f": {'; '.join(reasons[:3])}" if reasons else ""
        raise InsufficientSamples(f"{len(valid)} of {samples} valid samples{detail}")
    cpu = trimmed_mean([i.cpu_millicores for i in valid if i.cpu_millicores is not None], trim)
    memory_values = [i.memory_bytes for i in valid if i.memory_bytes is not None]
    memory: float | None = None
    memory_reason = None
    if len(memory_values) == len(valid):
        memory = trimmed_mean([m / MIB for m in memory_values], trim)
    else:
        memory_reason = f"memory reported in {len(memory_values)} of {len(valid)} samples"
    cpu_seconds = math.fsum(i.cpu_seconds for i in valid if i.cpu_seconds is not None)
    sampled = math.fsum(i.end_wall_time - i.start_wall_time for i in valid)  # the time the CPU-seconds were counted in
    return Figures(cpu, memory, cpu_seconds, sampled, memory_reason)


def saving_percent(native: float | None, orchestrator: float | None) -> float | None:
    """(native - orchestrator) / native * 100; None when either is missing or native is 0 (no basis to compare)."""
    if native is None or orchestrator is None or native == 0:
        return None
    return (native - orchestrator) / native * 100


# Formatting helpers shared by the report -----------------------------------------------------------------------------
def iso_time(unix_seconds: float) -> str:
    return dt.datetime.fromtimestamp(unix_seconds, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(slots=True)
class SamplingLog:
    """Everything a window produced, kept for the JSON report (all reads with their time stamps)."""

    snapshots: list[Snapshot] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)
    dropped_stale: int = 0

    @property
    def valid_count(self) -> int:
        return sum(1 for i in self.intervals if i.valid)
