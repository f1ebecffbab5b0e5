"""The measurement maths as the JSON report records it (every read, snapshot and interval), and the parsers and
figures at their edges: what is refused and why, what counts and what does not."""

from __future__ import annotations

import pytest

from ai_storage_orchestrator.compare.measuring import (
    MIB,
    CounterRead,
    InsufficientSamples,
    Interval,
    NotRunning,
    ParseError,
    ReadFailed,
    Snapshot,
    figures,
    interval_between,
    parse_cgroup_read,
    parse_kubelet_summary,
    parse_rfc3339_ns,
    rates_from_counters,
    trimmed_mean,
    zero_baseline,
)

pytestmark = pytest.mark.unit

S = 1_000_000_000
T0 = 1_700_000_000 * S  # 2023-11-14T22:13:20Z


def test_a_snapshot_in_the_report_holds_every_read_as_it_was() -> None:
    snapshot = Snapshot(
        3,
        1_700_000_000.25,
        {
            "a": CounterRead(T0, 10 * S, 100 * MIB, "cgroup v2"),
            "b": NotRunning("waiting (ContainerCreating)"),
            "c": ReadFailed("exec refused"),
        },
    )
    assert snapshot.to_json() == {
        "index": 3,
        "wall_time": "2023-11-14T22:13:20.250Z",
        "synthetic": False,
        "containers": {
            "a": {
                "kind": "read",
                "timestamp": "2023-11-14T22:13:20.000Z",
                "timestamp_ns": T0,
                "cpu_ns": 10 * S,
                "memory_bytes": 100 * MIB,
                "origin": "cgroup v2",
            },
            "b": {"kind": "not_running", "state": "waiting (ContainerCreating)"},
            "c": {"kind": "failed", "reason": "exec refused"},
        },
    }


def test_an_interval_in_the_report_is_rounded_but_not_altered() -> None:
    before = Snapshot(4, 1_700_000_000.0, {"a": CounterRead(T0, 0, 1, "kubelet")})
    after = Snapshot(
        5, 1_700_000_001.5, {"a": CounterRead(T0 + 1_234_567_891, 617_283_946, 3 * MIB + 12345, "kubelet")}
    )
    interval = interval_between(before, after)
    assert interval.cpu_seconds == 0.617283946
    assert interval.to_json() == {
        "start_snapshot": 4,
        "end_snapshot": 5,
        "start": "2023-11-14T22:13:20.000Z",
        "end": "2023-11-14T22:13:21.500Z",
        "duration_seconds": 1.234568,
        "cpu_millicores": 500.0,
        "cpu_seconds": 0.617284,
        "memory_mib": 3.012,
        "valid": True,
        "reason": None,
    }


def test_an_invalid_interval_in_the_report_has_no_figures_and_every_reason() -> None:
    before = Snapshot(0, 10.0, {"a": ReadFailed("timeout"), "b": CounterRead(T0, 0, 0, "kubelet")})
    after = Snapshot(1, 11.0, {"a": CounterRead(T0 + S, S, 0, "kubelet"), "c": CounterRead(T0 + S, 0, 0, "kubelet")})
    assert interval_between(before, after).to_json() == {
        "start_snapshot": 0,
        "end_snapshot": 1,
        "start": "1970-01-01T00:00:10.000Z",
        "end": "1970-01-01T00:00:11.000Z",
        "duration_seconds": None,
        "cpu_millicores": None,
        "cpu_seconds": None,
        "memory_mib": None,
        "valid": False,
        "reason": "a: read failed: timeout; b: not in both reads; c: not in both reads",
    }


def test_the_zero_baseline_is_index_0_with_zero_counters() -> None:
    baseline = zero_baseline(["a", "b"], 1_700_000_000.5)
    assert baseline.to_json() == {
        "index": 0,
        "wall_time": "2023-11-14T22:13:20.500Z",
        "synthetic": True,
        "containers": {
            name: {
                "kind": "read",
                "timestamp": "2023-11-14T22:13:20.500Z",
                "timestamp_ns": T0 + S // 2,
                "cpu_ns": 0,
                "memory_bytes": 0,
                "origin": "zero baseline",
            }
            for name in ("a", "b")
        },
    }


def test_cpu_seconds_are_exactly_the_counters_difference() -> None:
    before = Snapshot(0, 0.0, {"a": CounterRead(T0, 5, 0, "kubelet"), "b": CounterRead(T0, 7, 0, "kubelet")})
    after = Snapshot(1, 1.0, {"a": CounterRead(T0 + S, 6, 0, "kubelet"), "b": CounterRead(T0 + S, 9, 0, "kubelet")})
    assert interval_between(before, after).cpu_seconds == 3 / S


def test_one_nanosecond_between_reads_is_fresh() -> None:
    interval = interval_between(
        Snapshot(0, 0.0, {"a": CounterRead(T0, 0, 0, "kubelet")}),
        Snapshot(1, 1.0, {"a": CounterRead(T0 + 1, 0, 0, "kubelet")}),
    )
    assert interval.valid
    assert not interval.stale


def test_a_stale_interval_names_every_stale_container() -> None:
    reads = {name: CounterRead(T0, 0, 0, "kubelet") for name in ("a", "b")}
    interval = interval_between(Snapshot(0, 0.0, reads), Snapshot(1, 1.0, reads))
    assert interval.reason == "no fresh counter for a, b"


# parsing -------------------------------------------------------------------------------------------------------------
V2 = "cgroup v2\nusage_usec 12\nuser_usec 10\ntimestamp_ns 1700000001123456789\nmemory.current 4096\n"
V1 = "cgroup v1\ncpuacct.usage 12000\ntimestamp_ns 1700000001123456789\nmemory.usage_in_bytes 4096\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (V2.replace("usage_usec 12\n", ""), "no usage_usec in the output (cgroup v2 cpu.stat)"),
        (V2.replace("memory.current 4096", "memory.current"), "no memory.current in the output (cgroup v2)"),
        (
            V1.replace("cpuacct.usage 12000", "cpuacct.usage x"),
            "cpuacct.usage is not a whole number: 'x' (cgroup v1 cpuacct)",
        ),
        (V1.replace("memory.usage_in_bytes 4096", ""), "no memory.usage_in_bytes in the output (cgroup v1 memory)"),
        (V2.replace("timestamp_ns 1700000001123456789\n", ""), "`date +%s%N` gave no nanosecond time stamp: ''"),
        (
            V2.replace("1700000001123456789", "170000000112345"),
            "`date +%s%N` gave no nanosecond time stamp: '170000000112345'",
        ),
        ("cgroup v3\n" + "x" * 300, "not a cgroup read: 'cgroup v3\\n" + "x" * 190 + "'"),
    ],
)
def test_cgroup_reads_are_refused_with_what_is_missing(text: str, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_cgroup_read(text)
    assert str(caught.value) == message


def test_a_sixteen_digit_time_stamp_is_enough() -> None:
    read = parse_cgroup_read(V2.replace("1700000001123456789", "1700000001123456"))
    assert (read.timestamp_ns, read.cpu_ns, read.memory_bytes, read.origin) == (
        1700000001123456,
        12000,
        4096,
        "cgroup v2",
    )


def test_a_lone_word_is_a_key_without_a_value_and_does_not_hide_a_value() -> None:
    read = parse_cgroup_read(
        "cgroup v1\ncpuacct.usage 5\ncpuacct.usage\ntimestamp_ns 1700000001123456789\nmemory.usage_in_bytes 7\n"
    )
    assert (read.cpu_ns, read.memory_bytes) == (5, 7)
    with pytest.raises(ParseError, match=r"no cpuacct\.usage in the output"):
        parse_cgroup_read("cgroup v1\ncpuacct.usage\ntimestamp_ns 1700000001123456789\nmemory.usage_in_bytes 7\n")


@pytest.mark.parametrize("zone", ["Z", "z", "+00:00"])
def test_rfc3339_utc_spellings(zone: str) -> None:
    assert parse_rfc3339_ns(f"2023-11-14T22:13:20.5{zone}") == T0 + S // 2
    assert parse_rfc3339_ns(f"2023-11-14T22:13:20{zone}") == T0


def test_rfc3339_offsets_and_refusal() -> None:
    assert parse_rfc3339_ns("2023-11-14T23:13:20.000000001+01:00") == T0 + 1
    with pytest.raises(ParseError) as caught:
        parse_rfc3339_ns("yesterday")
    assert str(caught.value) == "not an RFC 3339 time: 'yesterday'"


def test_kubelet_containers_without_both_counter_and_time_are_left_out() -> None:
    def entry(name: str, cpu: dict[str, object], memory: object = None) -> dict[str, object]:
        return {"name": name, "cpu": cpu, "memory": {"workingSetBytes": memory}}

    summary = {
        "pods": [
            {
                "podRef": {"name": "p", "namespace": "ns"},
                "containers": [
                    entry("no-time", {"usageCoreNanoSeconds": 5}),
                    entry("no-usage", {"time": "2023-11-14T22:13:20Z"}),
                    entry("float-usage", {"usageCoreNanoSeconds": 5.0, "time": "2023-11-14T22:13:20Z"}),
                    entry("ok", {"usageCoreNanoSeconds": 5, "time": "2023-11-14T22:13:20Z"}, "12"),
                ],
            }
        ]
    }
    assert parse_kubelet_summary(summary, namespace="ns", pod="p") == {"ok": CounterRead(T0, 5, None, "kubelet")}


# figures -------------------------------------------------------------------------------------------------------------
def _valid(n: int, memory: int | None = 100 * MIB) -> Interval:
    return Interval(n - 1, n, 100.0 + n - 1, 100.0 + n, 1.0, 1000.0, 1.0, memory)


def test_complete_memory_has_no_reason() -> None:
    found = figures([_valid(n) for n in range(1, 4)], samples=3, trim=0)
    assert (found.memory_mib, found.memory_reason) == (100.0, None)


def test_too_few_samples_name_at_most_three_reasons_and_never_a_stale_one() -> None:
    def bad(n: int, reason: str, *, stale: bool = False) -> Interval:
        return Interval(n - 1, n, 0.0, 1.0, None, None, None, None, reason, stale)

    intervals = [bad(1, "d"), bad(2, "c"), bad(3, "b"), bad(4, "a"), bad(5, "no fresh counter for x", stale=True)]
    with pytest.raises(InsufficientSamples) as caught:
        figures([*intervals, bad(6, "a")], samples=2, trim=0)
    assert str(caught.value) == "0 of 2 valid samples: a; b; c"


def test_trimmed_mean_edges() -> None:
    assert trimmed_mean([1.0, 2.0, 9.0], 1) == 2.0
    with pytest.raises(InsufficientSamples) as few:
        trimmed_mean([1.0, 2.0], 1)
    assert str(few.value) == "2 values cannot lose 1 highest and 1 lowest"
    with pytest.raises(ValueError, match="trim") as negative:
        trimmed_mean([1.0], -1)
    assert str(negative.value) == "trim must not be negative"


def test_rates_need_a_time_stamp_for_every_counter() -> None:
    with pytest.raises(ValueError, match="time stamp") as caught:
        rates_from_counters([0, 1], [0])
    assert str(caught.value) == "every counter needs its time stamp"


def test_a_lone_time_stamp_label_is_no_time_stamp() -> None:
    with pytest.raises(ParseError) as caught:
        parse_cgroup_read(V2.replace("timestamp_ns 1700000001123456789", "timestamp_ns"))
    assert str(caught.value) == "`date +%s%N` gave no nanosecond time stamp: ''"


def test_an_rfc3339_time_without_a_zone_is_utc() -> None:
    assert parse_rfc3339_ns("2023-11-14T22:13:20.25") == T0 + S // 4


def test_report_figures_keep_three_decimals() -> None:
    interval = Interval(0, 1, 0.0, 1.0, 1.0, 1234.56789, 1.23456789, 3 * MIB)
    assert (interval.to_json()["cpu_millicores"], interval.to_json()["cpu_seconds"]) == (1234.568, 1.234568)
