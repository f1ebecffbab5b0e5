"""The measurement maths: parsing counter reads, rates between reads, trimming, and refusing to invent figures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ai_storage_orchestrator.compare.cluster import ContainerRun, container_runs
from ai_storage_orchestrator.compare.measuring import (
    MIB,
    CounterRead,
    InsufficientSamples,
    Interval,
    NotRunning,
    ParseError,
    ReadFailed,
    Snapshot,
    cgroup_read_script,
    cgroup_refusal,
    figures,
    interval_between,
    parse_cgroup_read,
    parse_kubelet_summary,
    parse_rfc3339_ns,
    rates_from_counters,
    restarts,
    saving_percent,
    trimmed_mean,
    zero_baseline,
)

pytestmark = pytest.mark.unit

S = 1_000_000_000  # nanoseconds per second
T0 = 1_700_000_000 * S


# rates ---------------------------------------------------------------------------------------------------------------
def test_rates_use_each_reads_own_time_stamp_whatever_the_gaps() -> None:
    # 1.5 cores for 1 s, then 1.5 cores over a slow 3.2 s gap, then 0.5 cores over 0.25 s.
    timestamps = [T0, T0 + S, T0 + S + 3_200_000_000, T0 + S + 3_450_000_000]
    counters = [0, 1_500_000_000, 1_500_000_000 + 4_800_000_000, 6_300_000_000 + 125_000_000]
    assert rates_from_counters(timestamps, counters) == pytest.approx([1500.0, 1500.0, 500.0])


def test_assuming_one_second_per_read_would_have_been_wrong() -> None:
    # The certification's procedure as written divides by 1 s; a 2 s exec gap would double the figure.
    rates = rates_from_counters([T0, T0 + 2 * S], [0, 2 * S])
    assert rates == [pytest.approx(1000.0)]


def test_rates_refuse_time_stamps_that_do_not_increase() -> None:
    with pytest.raises(ValueError, match="increase"):
        rates_from_counters([T0, T0], [0, 10])
    with pytest.raises(ValueError, match="time stamp"):
        rates_from_counters([T0], [0, 10])


# trimming ------------------------------------------------------------------------------------------------------------
def test_trimmed_mean_of_20_drops_3_highest_and_3_lowest_and_averages_14() -> None:
    values = [float(v) for v in range(1, 21)]  # 1..20
    middle = list(range(4, 18))  # 4..17: 14 values
    assert len(middle) == 14
    assert trimmed_mean(values, 3) == pytest.approx(sum(middle) / 14)
    outliers = [*values[:17], 10_000.0, 20_000.0, 30_000.0]
    assert trimmed_mean(outliers, 3) == pytest.approx(sum(range(4, 18)) / 14)


def test_trimmed_mean_of_14_keeps_the_middle_8() -> None:
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 10.0, 12.0, 11.0, 14.0, 13.0]
    assert trimmed_mean(values, 3) == pytest.approx(sum(range(4, 12)) / 8)


def test_trimmed_mean_refuses_too_few_values() -> None:
    with pytest.raises(InsufficientSamples):
        trimmed_mean([1.0] * 6, 3)
    with pytest.raises(InsufficientSamples):
        trimmed_mean([], 0)
    assert trimmed_mean([4.0], 0) == 4.0


# parsing -------------------------------------------------------------------------------------------------------------
V2 = """cgroup v2
usage_usec 5000000
user_usec 4000000
system_usec 1000000
nr_periods 0
nr_throttled 0
throttled_usec 0
timestamp_ns 1700000001123456789
memory.current 1073741824
"""
V1 = """cgroup v1
cpuacct.usage 7000000123
timestamp_ns 1700000001000000001
memory.usage_in_bytes 536870912
"""


def test_cgroup_v2_usage_usec_is_microseconds_and_memory_current_bytes() -> None:
    read = parse_cgroup_read(V2)
    assert read == CounterRead(1_700_000_001_123_456_789, 5_000_000_000, 1 << 30, "cgroup v2")


def test_cgroup_v1_cpuacct_usage_is_nanoseconds_and_usage_in_bytes() -> None:
    read = parse_cgroup_read(V1)
    assert read == CounterRead(1_700_000_001_000_000_001, 7_000_000_123, 512 * MIB, "cgroup v1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a cgroup read"),
        ("cgroup v2\nuser_usec 1\ntimestamp_ns 1700000001123456789\nmemory.current 1\n", "no usage_usec"),
        ("cgroup v2\nusage_usec 12\ntimestamp_ns 1700000001N\nmemory.current 1\n", "nanosecond"),
        ("cgroup v2\nusage_usec 12\ntimestamp_ns %N\nmemory.current 1\n", "nanosecond"),
        ("cgroup v1\ncpuacct.usage\ntimestamp_ns 1700000001000000001\nmemory.usage_in_bytes 1\n", "no cpuacct"),
        ("cgroup v1\ncpuacct.usage -5\ntimestamp_ns 1700000001000000001\nmemory.usage_in_bytes 1\n", "whole number"),
    ],
)
def test_cgroup_reads_without_their_counters_are_refused(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_cgroup_read(text)


POD_CGROUP = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope"


def test_a_refused_cgroup_read_is_an_error_with_its_reason_never_a_figure() -> None:
    text = f"cgroup v2 refused\n{POD_CGROUP}\n"
    reason = cgroup_refusal(text)
    assert reason is not None
    assert reason.startswith(
        f"not read: the container has no private cgroup namespace (its /proc/self/cgroup is {POD_CGROUP!r}"
    )
    with pytest.raises(ParseError, match="no private cgroup namespace"):
        parse_cgroup_read(text)
    assert cgroup_refusal(V2) is None


@pytest.mark.tools  # runs sh
@pytest.mark.parametrize(
    ("own", "seen"),
    [
        (f"{POD_CGROUP}\n", repr(POD_CGROUP)),
        ("12:cpu,cpuacct:/x\n0::/x\n", "'12:cpu,cpuacct:/x | 0::/x'"),
        (None, "empty or unreadable"),
    ],
)
def test_the_read_script_refuses_cgroup_v2_without_a_private_cgroup_namespace(
    tmp_path: Path, own: str | None, seen: str
) -> None:
    """Without its own cgroup namespace a container's /sys/fs/cgroup is the node's root: cpu.stat would be node-wide."""
    root = tmp_path / "sys-fs-cgroup"
    root.mkdir()
    (root / "cpu.stat").write_text("usage_usec 5000000\nuser_usec 4000000\nsystem_usec 1000000\n")
    (root / "memory.current").write_text("4096\n")
    proc = tmp_path / "proc-self-cgroup"
    if own is not None:
        proc.write_text(own)
    script = cgroup_read_script(proc_self_cgroup=str(proc), root=str(root))
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 3
    assert "usage_usec" not in done.stdout
    assert f"(its /proc/self/cgroup is {seen}, not '0::/')" in (cgroup_refusal(done.stdout) or "")

    proc.write_text("0::/\n")  # its own cgroup namespace: /sys/fs/cgroup is the container's cgroup
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    read = parse_cgroup_read(done.stdout)
    assert (read.cpu_ns, read.memory_bytes, read.origin) == (5_000_000_000, 4096, "cgroup v2")


def test_rfc3339_keeps_nanoseconds() -> None:
    assert parse_rfc3339_ns("2023-11-14T22:13:20Z") == 1_700_000_000 * S
    assert parse_rfc3339_ns("2023-11-14T22:13:20.123456789Z") == 1_700_000_000 * S + 123_456_789
    assert parse_rfc3339_ns("2023-11-14T23:13:20.5+01:00") == 1_700_000_000 * S + 500_000_000
    with pytest.raises(ParseError):
        parse_rfc3339_ns("yesterday")


def test_kubelet_summary_gives_the_pods_containers_with_their_own_times() -> None:
    summary = {
        "pods": [
            {"podRef": {"name": "other", "namespace": "ml"}, "containers": [{"name": "x"}]},
            {
                "podRef": {"name": "trainer", "namespace": "ml"},
                "containers": [
                    {
                        "name": "tensorflow-trainer",
                        "cpu": {"time": "2023-11-14T22:13:20.25Z", "usageCoreNanoSeconds": 42},
                        "memory": {"time": "2023-11-14T22:13:20Z", "workingSetBytes": 1024},
                    },
                    {"name": "model-monitor", "cpu": {"time": "2023-11-14T22:13:21Z", "usageCoreNanoSeconds": 7}},
                    {"name": "no-cpu", "memory": {"workingSetBytes": 1}},
                ],
            },
        ]
    }
    reads = parse_kubelet_summary(summary, namespace="ml", pod="trainer")
    assert reads == {
        "tensorflow-trainer": CounterRead(1_700_000_000 * S + 250_000_000, 42, 1024, "kubelet"),
        "model-monitor": CounterRead(1_700_000_001 * S, 7, None, "kubelet"),
    }
    assert parse_kubelet_summary(summary, namespace="other-ns", pod="trainer") == {}


# intervals -----------------------------------------------------------------------------------------------------------
def _read(seconds: float, cpu_seconds: float, memory_mib: int = 100) -> CounterRead:
    return CounterRead(T0 + round(seconds * S), round(cpu_seconds * S), memory_mib * MIB, "cgroup v2")


def _snapshot(index: int, **reads: CounterRead | NotRunning | ReadFailed) -> Snapshot:
    return Snapshot(index, 1_700_000_000 + index, {k.replace("_", "-"): v for k, v in reads.items()})


def test_pod_rate_sums_container_rates_each_over_its_own_time_stamps() -> None:
    done = NotRunning("terminated (exit 0, Completed)")
    before = _snapshot(0, trainer=_read(0.0, 10.0), monitor=_read(0.01, 1.0), processor=done)
    after = _snapshot(1, trainer=_read(2.0, 13.0, 300), monitor=_read(1.51, 1.3, 50), processor=done)
    interval = interval_between(before, after)
    assert interval.valid
    assert interval.cpu_millicores == pytest.approx(1500.0 + 200.0)
    assert interval.cpu_seconds == pytest.approx(3.3)
    assert interval.memory_bytes == 350 * MIB
    assert interval.duration_seconds == pytest.approx((2.0 + 1.5) / 2)


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        (NotRunning("waiting"), _read(1, 1), "started during the interval"),
        (_read(0, 1), NotRunning("terminated (exit 0, Completed)"), "stopped during the interval"),
        (_read(0, 1), ReadFailed("exec refused"), "read failed: exec refused"),
        (ReadFailed("timeout"), _read(1, 1), "read failed: timeout"),
        (_read(0, 5), _read(1, 1), "went back"),
    ],
)
def test_an_interval_with_unknown_use_is_invalid_and_says_why(
    start: CounterRead | NotRunning | ReadFailed, end: CounterRead | NotRunning | ReadFailed, reason: str
) -> None:
    interval = interval_between(_snapshot(0, a=_read(0, 0), b=start), _snapshot(1, a=_read(1, 1), b=end))
    assert not interval.valid
    assert reason in (interval.reason or "")
    assert interval.cpu_millicores is None
    assert interval.cpu_seconds is None


def test_a_counter_that_was_not_refreshed_makes_the_interval_stale() -> None:
    interval = interval_between(_snapshot(0, a=_read(0, 0)), _snapshot(1, a=_read(0, 0)))
    assert interval.stale
    assert not interval.valid
    assert interval.reason == "no fresh counter for a"


def test_zero_baseline_counts_everything_since_the_migration_started() -> None:
    baseline = zero_baseline(["a"], 1_700_000_000.0)
    assert baseline.synthetic
    interval = interval_between(baseline, _snapshot(1, a=_read(4.0, 2.0)))
    assert interval.cpu_millicores == pytest.approx(500.0)
    assert interval.cpu_seconds == pytest.approx(2.0)


# figures -------------------------------------------------------------------------------------------------------------
def _interval(number: int, millicores: float | None, *, reason: str | None = None) -> Interval:
    return Interval(
        start_index=number - 1,
        end_index=number,
        start_wall_time=100.0 + number - 1,
        end_wall_time=100.0 + number,
        duration_seconds=1.0,
        cpu_millicores=millicores,
        cpu_seconds=millicores / 1000 if millicores is not None else None,
        memory_bytes=(500 + number) * MIB if millicores is not None else None,
        reason=reason,
    )


def test_figures_of_20_valid_samples() -> None:
    intervals = [_interval(n, 1000.0 + n) for n in range(1, 21)]
    found = figures(intervals, samples=20, trim=3)
    assert found.cpu_millicores == pytest.approx(1000 + sum(range(4, 18)) / 14)
    assert found.memory_mib == pytest.approx(500 + sum(range(4, 18)) / 14)
    assert found.cpu_seconds == pytest.approx(sum(1 + n / 1000 for n in range(1, 21)))
    assert found.window_seconds == pytest.approx(20.0)


def test_figures_skip_invalid_intervals_but_need_the_full_count() -> None:
    intervals = [_interval(n, 1000.0) for n in range(1, 21)]
    intervals[4] = _interval(5, None, reason="data-processor: stopped during the interval")
    with pytest.raises(InsufficientSamples, match=r"19 of 20 valid samples: data-processor: stopped"):
        figures(intervals, samples=20, trim=3)
    found = figures([*intervals, _interval(21, 1000.0)], samples=20, trim=3)
    assert found.cpu_millicores == pytest.approx(1000.0)


def test_figures_refuse_when_there_are_too_few_samples() -> None:
    with pytest.raises(InsufficientSamples, match="3 of 20"):
        figures([_interval(n, 900.0) for n in range(1, 4)], samples=20, trim=3)
    with pytest.raises(InsufficientSamples, match="0 of 1"):
        figures([], samples=1, trim=0)


def test_saving_percent() -> None:
    assert saving_percent(2500.0, 1800.0) == pytest.approx(28.0)
    assert saving_percent(1000.0, 1200.0) == pytest.approx(-20.0)
    assert saving_percent(0.0, 10.0) is None
    assert saving_percent(None, 10.0) is None


def test_an_interval_without_a_memory_reading_has_no_memory_figure() -> None:
    """A container whose end read reports no memory makes the pod's memory unknown: never 0 MiB for it."""
    before = _snapshot(0, trainer=_read(0.0, 1.0), monitor=_read(0.0, 0.0))
    unknown = CounterRead(T0 + 2 * S, S // 2, None, "kubelet")
    interval = interval_between(before, _snapshot(1, trainer=_read(2.0, 2.0, 300), monitor=unknown))
    assert interval.valid
    assert interval.cpu_millicores == pytest.approx(750.0)
    assert interval.memory_bytes is None
    assert interval.to_json()["memory_mib"] is None


def test_figures_give_no_memory_when_a_sample_lacks_it() -> None:
    intervals = [_interval(n, 1000.0) for n in range(1, 6)]
    intervals[2] = Interval(2, 3, 102.0, 103.0, 1.0, 1000.0, 1.0, None)
    found = figures(intervals, samples=5, trim=1)
    assert found.cpu_millicores == pytest.approx(1000.0)
    assert found.memory_mib is None
    assert found.memory_reason == "memory reported in 4 of 5 samples"


@pytest.mark.parametrize(
    "state",
    [
        "terminated (exit 1, Error)",
        "terminated (exit 137, OOMKilled)",
        "waiting (CrashLoopBackOff)",
        "waiting (ImagePullBackOff)",
        "waiting (InvalidImageName)",
        "waiting (CreateContainerConfigError)",
    ],
)
def test_a_crashed_container_makes_every_interval_it_is_seen_in_invalid(state: str) -> None:
    """Its CPU is missing because the workload broke, not because the move saved it: never counted as 0."""
    crashed = NotRunning(state)
    interval = interval_between(_snapshot(0, a=_read(0, 0), b=crashed), _snapshot(1, a=_read(1, 1), b=crashed))
    assert not interval.valid
    assert interval.reason == f"b: failed ({state}): a crashed container's missing CPU is no saving"


@pytest.mark.parametrize("state", ["terminated (exit 0, Completed)", "waiting (ContainerCreating)", "no status"])
def test_a_finished_or_starting_container_is_not_a_failure(state: str) -> None:
    assert not NotRunning(state).failed


def test_the_cpu_seconds_are_over_the_time_of_the_samples_they_count() -> None:
    """An interval left out (a read failed) is neither in the CPU-seconds nor in the time they are over."""
    intervals = [_interval(n, 1000.0) for n in range(1, 23)]
    intervals[3] = _interval(4, None, reason="trainer: read failed: timeout")
    intervals[7] = _interval(8, None, reason="trainer: read failed: timeout")
    found = figures(intervals, samples=20, trim=3)
    assert found.cpu_seconds == pytest.approx(20.0)
    assert found.window_seconds == pytest.approx(20.0), "not the 22 s from the first sample to the last"


# restarts ------------------------------------------------------------------------------------------------------------
def _run_of(count: int, container_id: str = "containerd://aaaaaaaaaaaaaaaa") -> ContainerRun:
    return ContainerRun(count, container_id)


def _with_runs(snapshot: Snapshot, **runs: ContainerRun) -> Snapshot:
    return Snapshot(snapshot.index, snapshot.wall_time, snapshot.reads, runs=runs)


def test_container_runs_are_read_from_the_pod_status() -> None:
    pod = {
        "status": {
            "containerStatuses": [
                {"name": "a", "restartCount": 2, "containerID": "containerd://abc"},
                {"name": "b", "state": {"waiting": {"reason": "ContainerCreating"}}},
            ]
        }
    }
    assert container_runs(pod) == {"a": ContainerRun(2, "containerd://abc"), "b": ContainerRun(0, "")}


@pytest.mark.parametrize(
    ("later", "change"),
    [
        (_run_of(1), "restartCount 0 -> 1"),
        (_run_of(0, "containerd://bbbbbbbbbbbbbbbb"), "containerID containerd://aaaaaaaaaaaa -> containerd://bbbbbbbbbbbb"),
    ],
)  # fmt: skip
def test_a_restart_between_two_reads_invalidates_the_interval_even_when_the_counters_look_right(
    later: ContainerRun, change: str
) -> None:
    """The new run's counter (kubelet) already passed the old run's: only the run tells the two apart."""
    before = _with_runs(_snapshot(0, a=_read(0, 10.0)), a=_run_of(0))
    after = _with_runs(_snapshot(1, a=_read(1, 10.5)), a=later)
    interval = interval_between(before, after)
    assert not interval.valid
    assert interval.reason == f"a: restarted ({change}): its counters are those of two different runs"
    assert restarts([before, after]) == [f"a ({change})"]


def test_a_container_created_meanwhile_is_not_a_restart() -> None:
    before = _with_runs(_snapshot(0, a=NotRunning("waiting (ContainerCreating)")), a=_run_of(0, ""))
    after = _with_runs(_snapshot(1, a=_read(1, 1.0)), a=_run_of(0))
    assert restarts([before, after]) == []
    assert "restarted" not in (interval_between(before, after).reason or "")


def test_restarts_are_counted_from_the_windows_first_read_and_a_zero_baseline_counts_as_run_zero() -> None:
    reads = [_with_runs(_snapshot(n, a=_read(n, n)), a=_run_of(count)) for n, count in enumerate((0, 0, 1, 2))]
    assert restarts(reads) == ["a (restartCount 0 -> 2)"]
    assert restarts(reads[2:3]) == []
    baseline = zero_baseline(["a"], 1_700_000_000.0)
    assert restarts([baseline, reads[2]]) == ["a (restartCount 0 -> 1)"]  # restarted after the migration started
    assert restarts([baseline, _snapshot(1, a=_read(1, 1))]) == []  # no pod status read: nothing to say
