"""Reading a pod's counters (cgroup through exec, or the kubelet's stats summary) and the sampling loop.

The maths lives in ``measuring``; this module only gathers snapshots on a fixed schedule and hands them over."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ai_storage_orchestrator.compare import spec_output as spec
from ai_storage_orchestrator.compare.cluster import CompareError, container_runs, container_states
from ai_storage_orchestrator.compare.measuring import (
    CGROUP_READ_ARGV,
    MIB,
    ContainerRead,
    CounterRead,
    InsufficientSamples,
    Interval,
    NotRunning,
    ParseError,
    ReadFailed,
    SamplingLog,
    Snapshot,
    cgroup_refusal,
    figures,
    interval_between,
    parse_cgroup_read,
    parse_kubelet_summary,
    restarts,
    zero_baseline,
)
from ai_storage_orchestrator.compare.results import INSUFFICIENT, MEASURED, NOT_MEASURED, Measurement, Probe
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.exec import STDOUT_CHANNEL, ExecError, KubeExec
from ai_storage_orchestrator.kube.resources import NODES, PODS, KubeApi

JSON = dict[str, Any]
READ_TIMEOUT = 15.0
_OUTPUT_LIMIT = 64 * 1024


class PathApi(KubeApi):
    """KubeApi plus GET of an arbitrary API path (node proxy, /version)."""

    async def get_path(self, path: str) -> JSON:
        return await self._json("GET", path)


class PodReader(Protocol):
    """Takes one snapshot of a pod: every container read concurrently."""

    source: str

    async def read(self, *, index: int) -> Snapshot: ...


def _classify(
    names: Sequence[str], states: Mapping[str, str], reads: Mapping[str, CounterRead | str]
) -> dict[str, ContainerRead]:
    """A container that is not running counts as NotRunning whatever its read said; a running one needs its read."""
    result: dict[str, ContainerRead] = {}
    for name in names:
        state = states.get(name, "no status")
        read = reads.get(name)
        if state != "running":
            result[name] = NotRunning(state)
        elif isinstance(read, CounterRead):
            result[name] = read
        else:
            result[name] = ReadFailed(read or "no read")
    return result


class CgroupReader:
    """Execs ``sh -c CGROUP_READ_SCRIPT`` in every container at once, while reading the pod's container states."""

    source = "cgroup"

    def __init__(self, kube: KubeApi, execs: KubeExec, *, namespace: str, pod: str, containers: Sequence[str]) -> None:
        self.kube, self.execs, self.namespace, self.pod = kube, execs, namespace, pod
        self.containers = list(containers)

    async def _exec(self, container: str) -> CounterRead | str:
        chunks: list[bytes] = []
        size = 0
        try:
            async with (
                asyncio.timeout(READ_TIMEOUT),
                self.execs.session(
                    namespace=self.namespace, pod=self.pod, container=container, argv=CGROUP_READ_ARGV
                ) as session,
            ):
                async for channel, data in session.output():
                    if channel == STDOUT_CHANNEL and size < _OUTPUT_LIMIT:
                        chunks.append(data)
                        size += len(data)
                status = session.status
        except TimeoutError:
            return f"no answer within {READ_TIMEOUT:g}s"
        except ExecError as error:
            return str(error)
        output = b"".join(chunks).decode(errors="replace")
        if status is None or not status.success:
            return (
                cgroup_refusal(output)
                or f"the read command failed: {status.describe() if status else 'no exit status'}"
            )
        try:
            return parse_cgroup_read(output)
        except ParseError as error:
            return str(error)

    async def read(self, *, index: int) -> Snapshot:
        wall = time.time()
        pod_task = asyncio.ensure_future(self.kube.get(PODS, self.pod, namespace=self.namespace))
        reads = await asyncio.gather(*(self._exec(name) for name in self.containers))
        try:
            pod = await pod_task
        except KubeApiError as error:
            failed: dict[str, ContainerRead] = {
                n: ReadFailed(f"pod status unreadable: {error}") for n in self.containers
            }
            return Snapshot(index, wall, failed)
        states = container_states(pod)
        classified = _classify(self.containers, states, dict(zip(self.containers, reads, strict=True)))
        return Snapshot(index, wall, classified, runs=container_runs(pod))


class KubeletReader:
    """GETs ``/api/v1/nodes/<node>/proxy/stats/summary`` (one request for every container: no exec needed)."""

    source = "kubelet"

    def __init__(self, kube: PathApi, *, node: str, namespace: str, pod: str, containers: Sequence[str]) -> None:
        self.kube, self.node, self.namespace, self.pod = kube, node, namespace, pod
        self.containers = list(containers)

    async def read(self, *, index: int) -> Snapshot:
        wall = time.time()
        path = NODES.path(name=self.node, subresource="proxy/stats/summary")
        try:
            summary, pod = await asyncio.gather(
                self.kube.get_path(path), self.kube.get(PODS, self.pod, namespace=self.namespace)
            )
        except KubeApiError as error:
            failed: dict[str, ContainerRead] = {n: ReadFailed(str(error)) for n in self.containers}
            return Snapshot(index, wall, failed)
        found = parse_kubelet_summary(summary, namespace=self.namespace, pod=self.pod)
        reads: dict[str, CounterRead | str] = {
            name: found.get(name) or f"not in the kubelet summary of node {self.node}" for name in self.containers
        }
        return Snapshot(index, wall, _classify(self.containers, container_states(pod), reads), runs=container_runs(pod))


@dataclass(frozen=True, slots=True)
class SamplingPlan:
    samples: int
    interval: float
    max_reads: int


async def sample(
    reader: PodReader,
    plan: SamplingPlan,
    *,
    baseline: Snapshot | None = None,
    on_interval: Callable[[int, Interval], None] | None = None,
) -> SamplingLog:
    """Snapshots every ``plan.interval`` seconds (a fixed schedule: a slow read shortens the next pause) until
    ``plan.samples`` valid intervals, or ``plan.max_reads`` reads, or a container restarted (``restarts``: the window
    has no figure then, more reads would not give one). A snapshot whose counters were not refreshed yet (stale) is
    dropped and the next one is measured from the same start."""
    log = SamplingLog()
    index = 1 if baseline is not None else 0
    current = baseline
    if baseline is not None:
        log.snapshots.append(baseline)
    loop = asyncio.get_running_loop()
    next_tick = loop.time()
    reads = 0
    while reads < plan.max_reads and log.valid_count < plan.samples:
        pause = next_tick - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)  # the sampling schedule itself, not a wait for a condition
        next_tick = max(next_tick + plan.interval, loop.time())
        snapshot = await reader.read(index=index)
        reads += 1
        index += 1
        log.snapshots.append(snapshot)
        if current is None:
            current = snapshot
            continue
        interval = interval_between(current, snapshot)
        if interval.stale and interval.reason and interval.reason.startswith("no fresh counter"):
            log.dropped_stale += 1
            continue
        log.intervals.append(interval)
        current = snapshot
        if on_interval is not None:
            on_interval(len(log.intervals), interval)
        if restarts(log.snapshots):
            break
    return log


class PodMeter:
    """Measures each new pod the same way: one counter source, chosen once for both methods, and one sampling plan.

    ``unmeasured`` (e.g. simulated nodes) makes every measurement "not measured" with that reason, without a read."""

    def __init__(
        self,
        kube: PathApi,
        execs: KubeExec,
        *,
        namespace: str,
        plan: SamplingPlan,
        trim: int,
        window_rule: str,
        say: Callable[[str], None],
        unmeasured: str | None = None,
    ) -> None:
        self.kube, self.execs, self.namespace = kube, execs, namespace
        self.plan, self.trim, self.window_rule, self.say = plan, trim, window_rule, say
        self.unmeasured = unmeasured
        self.source: str | None = None

    def reader(self, source: str, *, pod: str, node: str, containers: Sequence[str]) -> PodReader:
        if source == "cgroup":
            return CgroupReader(self.kube, self.execs, namespace=self.namespace, pod=pod, containers=containers)
        return KubeletReader(self.kube, node=node, namespace=self.namespace, pod=pod, containers=containers)

    async def choose_source(self, wanted: str, *, pod: str, node: str, containers: Sequence[str]) -> str:
        """Try one read of ``pod`` through each candidate source (auto: cgroup, then kubelet); the first whose reads
        all work is used for both methods. Returns why; CompareError when none works."""
        problems: list[str] = []
        for source in ("cgroup", "kubelet") if wanted == "auto" else (wanted,):
            snapshot = await self.reader(source, pod=pod, node=node, containers=containers).read(index=0)
            failed = [f"{n}: {r.reason}" for n, r in snapshot.reads.items() if isinstance(r, ReadFailed)]
            reads = [r for r in snapshot.reads.values() if isinstance(r, CounterRead)]
            if reads and not failed:
                self.source = source
                tried = f" ({'; '.join(problems)})" if problems else ""
                return f"{wanted}: {source} reads work ({reads[0].origin}){tried}"
            problems.append(f"{source} failed: {'; '.join(failed) or 'no running container to read'}")
        raise CompareError("cannot read CPU counters: " + "; ".join(problems))

    def _show(self, number: int, interval: Interval) -> None:
        self.say(spec.sample_line(number, interval))

    def _restarts(self, log: SamplingLog) -> str:
        """Says which containers restarted during the window, if any, and returns it as the reason it has no figure
        ("" when none did): their counters span two runs, and a crashed container's missing CPU is no saving."""
        crashed = restarts(log.snapshots)
        if not crashed:
            return ""
        self.say(f"# Restarted during the measurement window: {', '.join(crashed)}")
        return (
            f"{', '.join(crashed)} restarted during the measurement window: the measurement is invalid (a crashed"
            " container's missing CPU is no saving)"
        )

    def _memory(
        self, pod: str, containers: Sequence[str], log: SamplingLog | None, total: float | None, *, samples: int,
        trim: int, restarted: Collection[str], reason: str | None,
    ) -> None:  # fmt: skip
        memory = (
            spec.container_memory(log, containers, samples=samples, trim=trim) if log and total is not None else None
        )
        self.say("")
        for line in spec.memory_block(pod, containers, memory, total, restarted=restarted, total_reason=reason):
            self.say(line)

    async def probe(
        self, pod: str, *, node: str, containers: Sequence[str], samples: int = spec.PROBE_SAMPLES
    ) -> Probe:
        """The specification's quick measurement before a migration: ``samples`` samples of ``pod`` through the chosen
        source, every ``plan.interval``; CPU is their minimum, memory their mean. Fewer valid samples: no figure."""
        self.say(spec.cpu_block_head(pod, len(containers), samples))
        if self.unmeasured or self.source is None:
            reason = self.unmeasured or "no counter source chosen"
            self.say(spec.samples_not_measured_line(reason))
            self.say(spec.minimum_line(samples, f"{spec.NOT_MEASURED_TEXT}: {reason}"))
            self._memory(pod, containers, None, None, samples=samples, trim=0, restarted=(), reason=reason)
            return Probe(NOT_MEASURED, pod, samples, reason=reason)
        plan = SamplingPlan(samples=samples, interval=self.plan.interval, max_reads=2 * (samples + 1))
        reader = self.reader(self.source, pod=pod, node=node, containers=containers)
        log = await sample(reader, plan, on_interval=self._show)
        valid = [i for i in log.intervals if i.valid][:samples]
        cpu = [i.cpu_millicores for i in valid if i.cpu_millicores is not None]
        crashed = self._restarts(log)
        if crashed or len(cpu) < samples:
            reason = crashed or f"{len(cpu)} of {samples} valid samples (after {len(log.snapshots)} reads)"
            self.say(spec.minimum_line(samples, f"insufficient: {reason}"))
            self._memory(pod, containers, None, None, samples=samples, trim=0, restarted=(), reason=reason)
            return Probe(INSUFFICIENT, pod, samples, reason=reason, log=log)
        memory_values = [i.memory_bytes / MIB for i in valid if i.memory_bytes is not None]
        memory = math.fsum(memory_values) / len(memory_values) if len(memory_values) == len(valid) else None
        memory_reason = (
            None if memory is not None else f"memory reported in {len(memory_values)} of {len(valid)} samples"
        )
        self.say(spec.minimum_line(samples, spec.cpu_text(min(cpu))))
        self._memory(pod, containers, log, memory, samples=samples, trim=0, restarted=(), reason=memory_reason)
        return Probe(MEASURED, pod, samples, None, min(cpu), memory, memory_reason, log)

    async def measure(
        self, pod: str, *, node: str, started_wall: float, containers: Sequence[str], restarted: Collection[str] = ()
    ) -> Measurement:
        """The window of ``pod``: from its first read (``ready``) or from the migration's start with zero counters
        (``migration-start``), until ``plan.samples`` valid intervals; too few give INSUFFICIENT and no figure.
        ``restarted``: containers that had completed before the migration and run again in ``pod``."""
        samples, trim = self.plan.samples, self.trim
        self.say(spec.cpu_block_head(pod, len(containers), samples))
        if self.unmeasured or self.source is None:
            reason = self.unmeasured or "no counter source chosen"
            self.say(spec.samples_not_measured_line(reason))
            self.say(spec.trimmed_mean_line(samples, trim, f"{spec.NOT_MEASURED_TEXT}: {reason}"))
            self._memory(pod, containers, None, None, samples=samples, trim=trim, restarted=restarted, reason=reason)
            return Measurement(NOT_MEASURED, reason=reason, window_rule=self.window_rule)
        baseline = zero_baseline(containers, started_wall) if self.window_rule == "migration-start" else None
        self.say(
            f"  through {self.source} on {node}: one sample every {self.plan.interval:g}s (CPU = change of the"
            f" counter / change of its time stamp); window starts at {self.window_rule}"
        )
        reader = self.reader(self.source, pod=pod, node=node, containers=containers)
        log = await sample(reader, self.plan, baseline=baseline, on_interval=self._show)
        start = baseline.wall_time if baseline else (log.snapshots[0].wall_time if log.snapshots else None)
        end = log.snapshots[-1].wall_time if log.snapshots else None
        crashed = restarts(log.snapshots)
        try:
            if crashed:
                raise InsufficientSamples(self._restarts(log))
            found = figures(log.intervals, samples=samples, trim=trim)
        except InsufficientSamples as error:
            reason = f"{error} (after {len(log.snapshots)} reads)"
            self.say(spec.trimmed_mean_line(samples, trim, f"insufficient: {reason}"))
            self._memory(pod, containers, None, None, samples=samples, trim=trim, restarted=restarted, reason=reason)
            return Measurement(
                INSUFFICIENT, str(error), self.source, self.window_rule, start, end, None, log, restarts=crashed
            )
        self.say(spec.trimmed_mean_line(samples, trim, spec.cpu_text(found.cpu_millicores)))
        self.say(
            f"  {pod}: CPU {found.cpu_millicores:.1f}m, {found.cpu_seconds:.2f} CPU-seconds over its {samples}"
            f" samples ({found.window_seconds:.1f}s)"
        )
        self._memory(
            pod, containers, log, found.memory_mib, samples=samples, trim=trim, restarted=restarted,
            reason=found.memory_reason,
        )  # fmt: skip
        return Measurement(MEASURED, None, self.source, self.window_rule, start, end, found, log)
