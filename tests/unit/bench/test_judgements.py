"""A target is judged only on its own input, measured at the scale it names; otherwise it is "not judged"."""

from __future__ import annotations

import pytest
from bench import report, targets

from tests.unit.bench.fixtures import results, scale_outcome


def _memory_row(outcome: dict[str, object]) -> targets.Row:
    return next(r for r in targets.rows({"scale": {"outcome": outcome}}) if r.figure.startswith("Orchestrator memory"))


@pytest.mark.parametrize("after_sync_hwm", [120.0, 300.0])
def test_the_memory_target_on_a_start_up_reading_is_not_judged(after_sync_hwm: float) -> None:
    """Only the reading right after the start-up sync: neither passed (old: judged on it) nor failed."""
    outcome = scale_outcome()
    outcome["memory_after_sync"] = {"rss_mib": after_sync_hwm, "hwm_mib": after_sync_hwm}
    outcome["memory_at_end"] = None
    outcome["error"] = "migrations timed out"
    row = _memory_row(outcome)
    assert row.met is None
    assert row.verdict == (
        "not judged: no reading at the end of the scenario (stopped early: migrations timed out); the start-up"
        " reading is not judged"
    )
    assert row.measured == f"not measured: no reading at the end of the scenario; after the sync {after_sync_hwm} MiB"
    assert row.to_json()["not_judged"] == row.verdict


def test_the_memory_target_is_not_judged_below_the_scale_it_names() -> None:
    row = _memory_row(scale_outcome(pods=1000, nodes=20))
    assert row.met is None
    assert row.verdict == "not judged: read with 1000 pods in the model, the target names 10000"
    assert row.figure.startswith("Orchestrator memory, 1000 pods in its model")


def test_the_memory_target_counts_the_pods_that_ran_not_those_planned() -> None:
    outcome = scale_outcome()
    outcome["population"]["running"] = 9_000
    assert _memory_row(outcome).met is None


@pytest.mark.parametrize(("peak_mib", "met"), [(233.0, True), (238.4, True), (238.5, False), (283.0, False)])
def test_the_memory_target_is_judged_on_the_peak_read_at_the_end_at_10000_pods(peak_mib: float, met: bool) -> None:
    outcome = scale_outcome()
    outcome["memory_after_sync"] = {"rss_mib": 100.0, "hwm_mib": 100.0}
    outcome["memory_at_end"] = {"rss_mib": peak_mib, "hwm_mib": peak_mib}
    row = _memory_row(outcome)
    assert row.met is met
    assert row.measured.startswith(f"{peak_mib} MiB (= ")
    assert "VmHWM read at the end; after the sync 100.0 MiB" in row.measured
    assert row.target == "≤ 250 MB at 10000 pods"


def test_a_row_without_target_is_a_dash_and_a_target_without_input_is_not_judged() -> None:
    no_target = targets.Row("1", "figure", "1 ms", "—", None, "migration")
    assert (no_target.verdict, no_target.to_json()["not_judged"]) == ("—", None)
    no_input = targets.Row("1", "figure", "not measured", "≤ 1 ms", None, "migration")
    assert no_input.verdict == "not judged: its input was not measured"
    assert targets.Row("1", "f", "1 ms", "≤ 1 ms", False, "m").verdict == "**no**"


def test_missing_inputs_are_not_judged_in_the_page() -> None:
    data = results()
    data["scenarios"]["scale"]["outcome"]["sync_s"] = None
    data["scenarios"]["migration"]["summary"]["methods"]["checkpoint-restart"]["ratio_to_native"] = {"pairs": 0}
    page = report.markdown(data)
    assert "| 5 | Initial sync, 10000 pods / 100 nodes: process start → /readyz 200 | not measured | ≤ 15 s |" in page
    assert "not measured: no round where both completed | ≤ 1.5 | not judged: its input was not measured |" in page
