"""Every percentile printed says how many samples it rests on; below bench.stats' rule it is marked ≈ max."""

from __future__ import annotations

import pytest
from bench import report, stats, targets
from bench.render import cell, labelled, percentiles

from tests.unit.bench.fixtures import results, summary


@pytest.mark.parametrize(("fraction", "needed"), [(0.5, 2), (0.9, 10), (0.95, 20), (0.99, 100)])
def test_the_sample_size_rule(fraction: float, needed: int) -> None:
    assert stats.min_samples(fraction) == needed
    assert stats.enough_samples(needed, fraction)
    assert not stats.enough_samples(needed - 1, fraction)


def test_a_percentile_prints_its_n() -> None:
    assert percentiles({"n": 150, "median": 84.4, "p99": 158.6}) == "84 ms / 159 ms (n=150)"
    assert percentiles(summary(5), ("median", "p90"), digits=1) == "12.0 ms / 13.6 ms (n=5; p90 ≈ max)"
    assert labelled({"n": 5, "median": 412.0, "p99": 430.0}, digits=0) == "p50 412 ms / p99 430 ms (n=5; p99 ≈ max)"
    assert labelled({"n": 25, "p95": 41.0}, ("p95",), digits=0) == "p95 41 ms (n=25)"
    assert labelled({"n": 19, "p95": 41.0}, ("p95",), digits=0) == "p95 41 ms (n=19; p95 ≈ max)"
    assert labelled({"n": 0, "median": None, "p99": None}) == "p50 / p99 not measured: no samples"
    assert percentiles(None) == "not measured"


def test_a_thin_percentile_in_a_table_is_marked() -> None:
    assert cell({"n": 50, "p99": 254.4}, "p99") == "254.4 ≈ max"
    assert cell({"n": 50, "p90": 170.7}, "p90") == "170.7"
    assert cell({"n": 0, "p90": None}, "p90") == "not measured"


def test_the_targets_table_gives_every_percentile_its_n() -> None:
    data = results(quick=True, rounds=5)
    created = next(
        r
        for r in targets.rows(data["scenarios"])
        if r.figure == "POST sent → target pod ADDED, make-before-break: p50 / p99"
    )
    assert created.measured.endswith("(n=5; p99 ≈ max)")  # old: "12 ms / 14 ms", no n
    page = report.markdown(data)
    for line in page.splitlines():
        if line.startswith("| ") and ("p99" in line.split("|")[2]) and "not measured" not in line:
            assert "(n=" in line, line


def test_the_detail_tables_carry_n_and_mark_thin_percentiles() -> None:
    page = report.markdown(results(quick=True, rounds=5))
    assert "| native | wall | 5 | 12.0 | 13.6 ≈ max | 14.0 ≈ max | 14.0 |" in page
    api = page.split("### REST API load")[1]
    assert "| load | target req/s | achieved req/s | ok | errors | n | p50 ms |" in api
    assert "| 7500 |" in api
    scale = page.split("### Scale")[1]
    assert "POST latency p50 109.5 ms / p99 207.0 ms (n=200) at the client" in scale
