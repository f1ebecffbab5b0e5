"""The sampling loop with a scripted reader: it stops at the asked number of valid samples, drops stale reads, gives
up after its read budget, and reads every container of a pod concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from ai_storage_orchestrator.compare.cluster import CompareError, ContainerRun, container_states
from ai_storage_orchestrator.compare.measuring import (
    CGROUP_READ_ARGV,
    CounterRead,
    NotRunning,
    ReadFailed,
    Snapshot,
    zero_baseline,
)
from ai_storage_orchestrator.compare.results import INSUFFICIENT, MEASURED, NOT_MEASURED
from ai_storage_orchestrator.compare.sampling import CgroupReader, KubeletReader, PodMeter, SamplingPlan, sample

pytestmark = pytest.mark.unit

S = 1_000_000_000
T0 = 1_700_000_000 * S


class ScriptedReader:
    source = "scripted"

    def __init__(
        self,
        reads: Sequence[Mapping[str, CounterRead | NotRunning | ReadFailed]],
        runs: Sequence[Mapping[str, ContainerRun]] = (),
    ) -> None:
        self.reads = list(reads)
        self.runs = list(runs)
        self.calls = 0

    async def read(self, *, index: int) -> Snapshot:
        reads = self.reads[min(self.calls, len(self.reads) - 1)]
        runs = self.runs[min(self.calls, len(self.runs) - 1)] if self.runs else {}
        self.calls += 1
        return Snapshot(index, 1_700_000_000.0 + index, reads, runs=runs)


def _steady(count: int, *, step_ns: int = S, cores: float = 1.5) -> list[dict[str, CounterRead | NotRunning]]:
    return [{"a": CounterRead(T0 + i * step_ns, round(i * step_ns * cores), 10, "cgroup v2")} for i in range(count)]


async def test_sampling_stops_after_the_asked_number_of_valid_intervals() -> None:
    reader = ScriptedReader(_steady(30))
    seen: list[int] = []
    log = await sample(
        reader, SamplingPlan(samples=20, interval=0.0, max_reads=42), on_interval=lambda n, _: seen.append(n)
    )
    assert reader.calls == 21  # 20 intervals need 21 reads
    assert log.valid_count == 20
    assert seen == list(range(1, 21))
    assert all(i.cpu_millicores == pytest.approx(1500.0) for i in log.intervals)


async def test_stale_reads_are_dropped_and_measured_from_the_same_start() -> None:
    fresh = _steady(4, step_ns=10 * S)
    script = [fresh[0], fresh[0], fresh[0], fresh[1], fresh[1], fresh[2], fresh[3]]
    log = await sample(ScriptedReader(script), SamplingPlan(samples=3, interval=0.0, max_reads=20))
    assert log.dropped_stale == 3
    assert [i.duration_seconds for i in log.intervals] == [pytest.approx(10.0)] * 3
    assert log.valid_count == 3


async def test_sampling_gives_up_after_its_read_budget() -> None:
    log = await sample(ScriptedReader(_steady(1)), SamplingPlan(samples=20, interval=0.0, max_reads=5))
    assert log.valid_count == 0
    assert log.dropped_stale == 4
    assert len(log.snapshots) == 5


async def test_a_baseline_counts_as_the_first_read() -> None:
    baseline = zero_baseline(["a"], T0 / S - 2)
    reader = ScriptedReader(_steady(5))
    log = await sample(reader, SamplingPlan(samples=3, interval=0.0, max_reads=10), baseline=baseline)
    assert reader.calls == 3
    assert log.snapshots[0] is baseline
    assert log.intervals[0].cpu_millicores == pytest.approx(0.0)  # counter 0 at T0: the pod had just started
    assert log.intervals[1].cpu_millicores == pytest.approx(1500.0)


def test_container_states() -> None:
    pod = {
        "status": {
            "containerStatuses": [
                {"name": "a", "state": {"running": {}}},
                {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}},
            ]
        }
    }
    assert container_states(pod) == {
        "a": "running",
        "b": "terminated (exit 0, Completed)",
        "c": "waiting (ContainerCreating)",
    }


class FakeKube:
    def __init__(self, pod: dict[str, Any], summary: dict[str, Any] | None = None) -> None:
        self.pod, self.summary = pod, summary or {}
        self.paths: list[str] = []

    async def get(self, resource: Any, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        return self.pod

    async def get_path(self, path: str) -> dict[str, Any]:
        self.paths.append(path)
        return self.summary


class FakeSession:
    def __init__(self, output: bytes, exit_code: int = 0) -> None:
        self._output = output
        self._exit_code = exit_code
        self.status: Any = None

    async def output(self) -> Any:
        from ai_storage_orchestrator.kube.exec import ExecStatus

        yield 1, self._output
        self.status = ExecStatus(self._exit_code)


class FakeExec:
    """Holds every exec open until all containers are being read: proof the reads run concurrently."""

    def __init__(self, outputs: dict[str, bytes], expected: int, exit_codes: dict[str, int] | None = None) -> None:
        self.outputs = outputs
        self.exit_codes = exit_codes or {}
        self.argvs: list[Sequence[str]] = []
        self.everyone = asyncio.Event()
        self.expected = expected

    def session(self, *, namespace: str, pod: str, container: str, argv: Sequence[str], stdin: bool = False) -> Any:
        fake = self

        class Context:
            async def __aenter__(self) -> FakeSession:
                fake.argvs.append(argv)
                if len(fake.argvs) == fake.expected:
                    fake.everyone.set()
                await asyncio.wait_for(fake.everyone.wait(), timeout=5)
                return FakeSession(fake.outputs[container], fake.exit_codes.get(container, 0))

            async def __aexit__(self, *exc: object) -> None:
                return None

        return Context()


def _pod(states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "spec": {"containers": [{"name": n} for n in states]},
        "status": {"containerStatuses": [{"name": n, "state": s} for n, s in states.items()]},
    }


def _cgroup_output(timestamp_ns: int, usage_usec: int) -> bytes:
    return f"cgroup v2\nusage_usec {usage_usec}\ntimestamp_ns {timestamp_ns}\nmemory.current 2048\n".encode()


async def test_cgroup_reader_reads_running_containers_concurrently() -> None:
    pod = _pod({"a": {"running": {}}, "b": {"running": {}}, "c": {"terminated": {"exitCode": 0}}})
    execs = FakeExec({"a": _cgroup_output(T0, 5), "b": _cgroup_output(T0 + 1, 6), "c": b""}, expected=3)
    reader = CgroupReader(FakeKube(pod), execs, namespace="ml", pod="p", containers=["a", "b", "c"])  # type: ignore[arg-type]
    snapshot = await reader.read(index=0)
    assert snapshot.reads["a"] == CounterRead(T0, 5000, 2048, "cgroup v2")
    assert snapshot.reads["b"] == CounterRead(T0 + 1, 6000, 2048, "cgroup v2")
    assert snapshot.reads["c"] == NotRunning("terminated (exit 0, no reason)")
    assert execs.argvs == [CGROUP_READ_ARGV] * 3


async def test_a_cgroup_read_refused_for_want_of_a_cgroup_namespace_is_a_failed_read_with_the_reason() -> None:
    pod = _pod({"a": {"running": {}}, "b": {"running": {}}})
    refused = b"cgroup v2 refused\n0::/kubepods.slice/cri-containerd-abc.scope\n"
    execs = FakeExec({"a": refused, "b": _cgroup_output(T0, 6)}, expected=2, exit_codes={"a": 3})
    reader = CgroupReader(FakeKube(pod), execs, namespace="ml", pod="p", containers=["a", "b"])  # type: ignore[arg-type]
    snapshot = await reader.read(index=0)
    failed = snapshot.reads["a"]
    assert isinstance(failed, ReadFailed)
    assert failed.reason.startswith(
        "not read: the container has no private cgroup namespace (its /proc/self/cgroup is"
        " '0::/kubepods.slice/cri-containerd-abc.scope', not '0::/')"
    )
    assert snapshot.reads["b"] == CounterRead(T0, 6000, 2048, "cgroup v2")


async def test_each_read_keeps_the_run_of_every_container_from_the_pod_status_read_with_it() -> None:
    pod = _pod({"a": {"running": {}}})
    pod["status"]["containerStatuses"][0].update(restartCount=1, containerID="containerd://abc")
    execs = FakeExec({"a": _cgroup_output(T0, 5)}, expected=1)
    reader = CgroupReader(FakeKube(pod), execs, namespace="ml", pod="p", containers=["a"])  # type: ignore[arg-type]
    snapshot = await reader.read(index=0)
    assert snapshot.runs == {"a": ContainerRun(1, "containerd://abc")}
    assert snapshot.to_json()["runs"] == {"a": {"restart_count": 1, "container_id": "containerd://abc"}}
    kubelet = KubeletReader(FakeKube(pod), node="n1", namespace="ml", pod="p", containers=["a"])  # type: ignore[arg-type]
    assert (await kubelet.read(index=0)).runs == {"a": ContainerRun(1, "containerd://abc")}


async def test_kubelet_reader_needs_no_exec() -> None:
    pod = _pod({"a": {"running": {}}, "b": {"running": {}}})
    summary = {
        "pods": [
            {
                "podRef": {"name": "p", "namespace": "ml"},
                "containers": [{"name": "a", "cpu": {"time": "2023-11-14T22:13:20Z", "usageCoreNanoSeconds": 9}}],
            }
        ]
    }
    kube = FakeKube(pod, summary)
    snapshot = await KubeletReader(kube, node="n1", namespace="ml", pod="p", containers=["a", "b"]).read(index=0)  # type: ignore[arg-type]
    assert kube.paths == ["/api/v1/nodes/n1/proxy/stats/summary"]
    assert snapshot.reads["a"] == CounterRead(T0, 9, None, "kubelet")
    assert snapshot.reads["b"].reason == "not in the kubelet summary of node n1"  # type: ignore[union-attr]


class ScriptedMeter(PodMeter):
    def __init__(self, scripts: dict[str, ScriptedReader], **kwargs: Any) -> None:
        self.lines: list[str] = []
        super().__init__(None, None, namespace="ml", say=self.lines.append, **kwargs)  # type: ignore[arg-type]
        self.scripts = scripts

    def reader(self, source: str, *, pod: str, node: str, containers: Sequence[str]) -> ScriptedReader:
        return self.scripts[source]


PLAN = SamplingPlan(samples=4, interval=0.0, max_reads=10)


async def test_auto_falls_back_to_the_kubelet_when_cgroup_reads_fail() -> None:
    meter = ScriptedMeter(
        {"cgroup": ScriptedReader([{"a": ReadFailed("exec refused")}]), "kubelet": ScriptedReader(_steady(6))},
        plan=PLAN, trim=1, window_rule="ready",
    )  # fmt: skip
    why = await meter.choose_source("auto", pod="p", node="n", containers=["a"])
    assert meter.source == "kubelet"
    assert why == "auto: kubelet reads work (cgroup v2) (cgroup failed: a: exec refused)"
    with pytest.raises(CompareError, match="cannot read CPU counters: cgroup failed: a: exec refused"):
        await meter.choose_source("cgroup", pod="p", node="n", containers=["a"])


async def test_measure_gives_figures_or_says_why_not() -> None:
    meter = ScriptedMeter({"cgroup": ScriptedReader(_steady(10))}, plan=PLAN, trim=1, window_rule="ready")
    await meter.choose_source("cgroup", pod="p", node="n", containers=["a"])
    measured = await meter.measure("p", node="n", started_wall=0.0, containers=["a"])
    assert measured.status == MEASURED
    assert measured.cpu_millicores == pytest.approx(1500.0)
    assert measured.window_start == 1_700_000_000.0  # the first read
    assert measured.figures is not None
    assert measured.figures.cpu_seconds == pytest.approx(6.0)  # 4 intervals of 1 s at 1.5 cores

    stuck = ScriptedMeter({"cgroup": ScriptedReader(_steady(1))}, plan=PLAN, trim=1, window_rule="ready")
    stuck.source = "cgroup"
    short = await stuck.measure("p", node="n", started_wall=0.0, containers=["a"])
    assert short.status == INSUFFICIENT
    assert short.figures is None
    assert short.reason == "0 of 4 valid samples"

    simulated = ScriptedMeter({}, plan=PLAN, trim=1, window_rule="ready", unmeasured="simulated node (no cgroups)")
    skipped = await simulated.measure("p", node="n", started_wall=0.0, containers=["a"])
    assert (skipped.status, skipped.reason, skipped.log) == (NOT_MEASURED, "simulated node (no cgroups)", None)


async def test_migration_start_window_begins_at_the_migration_with_zero_counters() -> None:
    meter = ScriptedMeter({"cgroup": ScriptedReader(_steady(10))}, plan=PLAN, trim=1, window_rule="migration-start")
    meter.source = "cgroup"
    started = T0 / S - 3  # three seconds before the first read
    measured = await meter.measure("p", node="n", started_wall=started, containers=["a"])
    assert measured.window_start == started
    assert measured.log is not None
    assert measured.log.snapshots[0].synthetic
    assert measured.log.intervals[0].duration_seconds == pytest.approx(3.0)


async def test_the_probe_is_the_minimum_of_three_real_samples_or_no_figure() -> None:
    plan = SamplingPlan(samples=20, interval=0.0, max_reads=42)
    varied = [
        {"a": CounterRead(T0 + i * S, sum((1000, 900, 1100)[:i]) * 1_000_000, 10 * (1 << 20), "cgroup v2")}
        for i in range(4)
    ]
    meter = ScriptedMeter({"cgroup": ScriptedReader(varied)}, plan=plan, trim=3, window_rule="ready")
    meter.source = "cgroup"
    probe = await meter.probe("p", node="n", containers=["a"])
    assert (probe.status, probe.minimum_cpu_millicores, probe.memory_mib) == (MEASURED, 900.0, 10.0)
    assert meter.lines[:5] == [
        "# Pod p: measuring 1 containers (3 samples)",
        "# Sample 1: 1000m",
        "# Sample 2: 900m",
        "# Sample 3: 1100m",
        "# Minimum CPU usage (of 3 samples): 900m",
    ]
    assert meter.lines[5:] == [
        "",
        "# Pod p: measuring 1 containers",
        "# Container a: 10MB",
        "# Total Memory usage: 10MB",
    ]

    stuck = ScriptedMeter({"cgroup": ScriptedReader(_steady(1))}, plan=plan, trim=3, window_rule="ready")
    stuck.source = "cgroup"
    short = await stuck.probe("p", node="n", containers=["a"])
    assert (short.status, short.minimum_cpu_millicores, short.reason) == (
        INSUFFICIENT,
        None,
        "0 of 3 valid samples (after 8 reads)",
    )
    assert "# Minimum CPU usage (of 3 samples): insufficient: 0 of 3 valid samples (after 8 reads)" in stuck.lines
    assert "# Total Memory usage: not measured: 0 of 3 valid samples (after 8 reads)" in stuck.lines


def _runs(*counts: int) -> list[dict[str, ContainerRun]]:
    return [{"a": ContainerRun(count, f"containerd://{count}")} for count in counts]


async def test_a_restart_in_the_window_ends_the_measurement_insufficient_and_is_said() -> None:
    """Counters that keep rising across the crash (the kubelet's, or a new run that caught up) give plausible
    samples: only the run (restartCount, containerID) shows the window spans two runs of the container."""
    reader = ScriptedReader(_steady(30), runs=_runs(0, 0, 0, 1))
    meter = ScriptedMeter({"cgroup": reader}, plan=PLAN, trim=1, window_rule="ready")
    meter.source = "cgroup"
    measured = await meter.measure("p", node="n", started_wall=0.0, containers=["a"])
    assert measured.status == INSUFFICIENT
    assert measured.figures is None
    assert measured.restarts == ["a (restartCount 0 -> 1)"]
    assert measured.reason == (
        "a (restartCount 0 -> 1) restarted during the measurement window: the measurement is invalid (a crashed"
        " container's missing CPU is no saving)"
    )
    assert reader.calls == 4, "sampling stops at the restart: more reads would not give a figure"
    assert (
        "# Sample 3: not valid: a: restarted (restartCount 0 -> 1): its counters are those of two different runs"
        in (meter.lines)
    )
    assert "# Restarted during the measurement window: a (restartCount 0 -> 1)" in meter.lines
    assert any(line.startswith("# Trimmed mean CPU usage (of 4 samples") and "insufficient: a (restartCount" in line
               for line in meter.lines)  # fmt: skip


async def test_a_restart_after_the_windows_last_sample_is_not_in_it() -> None:
    """The window ends with its last sample: a restart after it is not in it."""
    reader = ScriptedReader(_steady(30), runs=_runs(0, 0, 0, 0, 0, 1))
    meter = ScriptedMeter({"cgroup": reader}, plan=PLAN, trim=1, window_rule="ready")
    meter.source = "cgroup"
    measured = await meter.measure("p", node="n", started_wall=0.0, containers=["a"])
    assert measured.status == MEASURED
    assert measured.restarts == []
    assert reader.calls == 5


async def test_a_restart_since_the_migration_started_counts_in_a_migration_start_window() -> None:
    reader = ScriptedReader(_steady(30), runs=_runs(1))  # it crashed once before the first read
    meter = ScriptedMeter({"cgroup": reader}, plan=PLAN, trim=1, window_rule="migration-start")
    meter.source = "cgroup"
    measured = await meter.measure("p", node="n", started_wall=T0 / S - 3, containers=["a"])
    assert measured.status == INSUFFICIENT
    assert measured.restarts == ["a (restartCount 0 -> 1)"]


async def test_a_restart_during_the_probe_gives_it_no_figure() -> None:
    reader = ScriptedReader(_steady(30), runs=_runs(0, 0, 1))
    meter = ScriptedMeter({"cgroup": reader}, plan=PLAN, trim=1, window_rule="ready")
    meter.source = "cgroup"
    probe = await meter.probe("p", node="n", containers=["a"])
    assert (probe.status, probe.minimum_cpu_millicores) == (INSUFFICIENT, None)
    assert (probe.reason or "").startswith("a (restartCount 0 -> 1) restarted during the measurement window")
