"""The report: the certification table, the RESULT line, exit codes, and the JSON/Markdown files (the charts and
report.html: test_render.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_storage_orchestrator.compare import report
from ai_storage_orchestrator.compare.cluster import NodeInfo
from ai_storage_orchestrator.compare.measuring import MIB, Figures, Interval, SamplingLog
from ai_storage_orchestrator.compare.results import (
    EXIT_BELOW_THRESHOLD,
    EXIT_ERROR,
    EXIT_PASS,
    INSUFFICIENT,
    MEASURED,
    NOT_MEASURED,
    Comparison,
    Measurement,
    MethodResult,
)
from ai_storage_orchestrator.compare.timing import Span
from ai_storage_orchestrator.models import Resources

GIB = 1 << 30
SETTINGS = {"samples": 20, "trim": 3, "interval": 1.0, "window_start": "ready"}


def _log(millicores: float, count: int = 20) -> SamplingLog:
    intervals = [
        Interval(i, i + 1, 1000.0 + i, 1001.0 + i, 1.0, millicores, millicores / 1000, 700 * MIB) for i in range(count)
    ]
    return SamplingLog(intervals=intervals)


def _measured(cpu: float, memory: float) -> Measurement:
    log = _log(cpu)
    return Measurement(
        MEASURED, None, "cgroup", "ready", 1000.0, 1020.0, Figures(cpu, memory, cpu * 20 / 1000, 20), log
    )


def _method(
    key: str, measurement: Measurement, *, started: list[str], requests: Resources, wall: float
) -> MethodResult:
    return MethodResult(
        key=key,
        title="K8S NATIVE" if key == "native" else "AI ORCHESTRATOR",
        from_node="a" if key == "native" else "b",
        to_node="b" if key == "native" else "a",
        pod="tensorflow-ai-workload",
        started_at=1000.0,
        wall_seconds=wall,
        ready_at=1000.0 + wall,
        containers=started,
        started=started,
        restarts=0,
        requests=requests,
        measurement=measurement,
        migration={"containers": [{"name": "data-processor", "action": "skip", "reason": "completed"}]}
        if key == "orchestrator"
        else None,
        downtime=Span(8.0 if key == "native" else 2.0, 1.0, "2023-11-14T22:13:30Z", "2023-11-14T22:13:38Z"),
        request_to_ready=Span(8.5 if key == "native" else 5.5, 0.5, "2023-11-14T22:13:20Z", "2023-11-14T22:13:28Z"),
    )


def _comparison(native: Measurement, orchestrator: Measurement) -> Comparison:
    comparison = Comparison("cmp-test", 1_700_000_000.0, dict(SETTINGS), namespace="ml", workload="tensorflow")
    node = NodeInfo("a", False, True, True, "v1.30.1", "containerd://1.7.2", "6.1.0", "Ubuntu 22.04")
    comparison.source_node = comparison.target_node = node
    comparison.native = _method(
        "native", native, started=["trainer", "processor", "monitor"], requests=Resources(2200, 5 * GIB), wall=8.12
    )
    comparison.orchestrator = _method(
        "orchestrator", orchestrator, started=["trainer", "monitor"], requests=Resources(1700, 7 * GIB // 2), wall=7.5
    )
    return comparison


def test_table_in_the_certifications_shape_and_the_result_line() -> None:
    comparison = _comparison(_measured(2500.0, 989.0), _measured(1800.0, 710.0))
    lines = report.console_lines(comparison, threshold=20, allow_unmeasured=False)
    table = "\n".join(lines)
    assert "METRIC             │ K8S NATIVE  │ AI ORCHESTRATOR │ IMPROVEMENT" in table
    rows = {line.split("│")[0].strip(): [c.strip() for c in line.split("│")[1:]] for line in lines if "│" in line}
    assert rows["CPU Usage"] == ["2500m", "1800m", "28.0%"]
    assert rows["Memory Usage"] == ["989MB", "710MB", "28.2%"]  # the specification's label; the note says MiB
    assert rows["CPU requests"] == ["2200m", "1700m", "22.7% (500m freed)"]
    assert rows["Memory requests"] == ["5Gi", "3.5Gi", "30.0% (1.5Gi freed)"]
    assert rows["Containers started"] == ["3", "2", "1 fewer"]
    assert rows["Migration time"] == ["8.12s", "7.50s", "0.62s faster (7.6% less time)"]
    assert rows["Trainer downtime"] == ["8s ± 1s", "2s ± 1s", "0.25 x native"]
    assert rows["Request → Ready"] == ["8.5s ± 0.5s", "5.5s ± 0.5s", "0.65 x native"]
    metrics = [line.split("│")[0].strip() for line in lines if "│" in line]
    assert metrics[:3] == ["METRIC", "CPU Usage", "Memory Usage"]  # the specification's rows first, then ours
    assert any(line.startswith("# MB = MiB (1024 x 1024 bytes)") for line in lines)
    verdict = comparison.verdict(threshold=20, allow_unmeasured=False)
    assert lines[-2] == "RESULT: AI Orchestrator achieved 28.0% CPU reduction and 28.2% memory reduction"
    assert lines[-1] == "# " + verdict.line.split(" (", 1)[1].replace(")", "", 1)
    assert lines[-1].startswith("# PASS: threshold 20% CPU; the orchestrator started 2 containers instead of 3")
    assert (verdict.exit_code, verdict.passed) == (EXIT_PASS, True)
    assert verdict.line.startswith(
        "RESULT: AI Orchestrator achieved 28.0% CPU reduction and 28.2% memory reduction (PASS: threshold 20% CPU); "
    )
    assert report.rows(comparison)[1].native == "989MiB"  # Markdown keeps MiB


def test_a_scaled_workload_says_so_next_to_both_tables() -> None:
    comparison = _comparison(_measured(1000.0, 110.0), _measured(760.0, 51.0))
    note = "the certification's CPU requests and limits scaled x1/2 (2200m -> 1100m) so the pod fits 2-core nodes"
    assert not any(note in line for line in report.console_lines(comparison, threshold=20, allow_unmeasured=False))
    comparison.workload = "numpy"
    lines = report.console_lines(comparison, threshold=20, allow_unmeasured=False)
    [said] = [line for line in lines if note in line]
    assert said.startswith("# workload numpy: ")
    assert lines.index(said) < lines.index(next(line for line in lines if line.startswith("RESULT:")))
    assert f"*workload numpy: {note}" in report.markdown(comparison, threshold=20, allow_unmeasured=False)


def test_the_summary_names_where_each_method_left_the_pod() -> None:
    comparison = _comparison(_measured(2500.0, 989.0), _measured(1800.0, 710.0))
    assert comparison.native is not None
    assert comparison.orchestrator is not None
    comparison.native.final_node, comparison.orchestrator.final_node = "b", "a"
    lines = report.console_lines(comparison, threshold=20, allow_unmeasured=False)
    start = lines.index("NODE MIGRATION:")
    assert lines[start - 3 : start + 5] == [
        "=" * 65,
        "                  PERFORMANCE COMPARISON SUMMARY",
        "=" * 65,
        "NODE MIGRATION:",
        "• Original Location: a",
        "• K8s Native Result: b",
        "• AI Orchestrator Result: a",
        "• Target Achievement: COMPLETE",
    ]
    comparison.orchestrator.final_node = "b"
    lines = report.console_lines(comparison, threshold=20, allow_unmeasured=False)
    assert "• Target Achievement: INCOMPLETE (AI ORCHESTRATOR ended on b, not a)" in lines


def test_below_the_threshold_exits_1() -> None:
    comparison = _comparison(_measured(2000.0, 900.0), _measured(1800.0, 880.0))
    verdict = comparison.verdict(threshold=20, allow_unmeasured=False)
    assert (verdict.exit_code, verdict.passed) == (EXIT_BELOW_THRESHOLD, False)
    assert "10.0% CPU reduction" in verdict.line
    assert "FAIL" in verdict.line


def test_simulated_nodes_are_not_measured_and_need_allow_unmeasured() -> None:
    reason = "simulated node (no cgroups)"
    comparison = _comparison(Measurement(NOT_MEASURED, reason), Measurement(NOT_MEASURED, reason))
    lines = report.console_lines(comparison, threshold=20, allow_unmeasured=True)
    rows = {line.split("│")[0].strip(): [c.strip() for c in line.split("│")[1:]] for line in lines if "│" in line}
    assert rows["CPU Usage"] == [f"not measured: {reason}", f"not measured: {reason}", "n/a"]
    assert rows["Memory Usage"] == [f"not measured: {reason}", f"not measured: {reason}", "n/a"]
    assert rows["Containers started"] == ["3", "2", "1 fewer"]
    assert comparison.verdict(threshold=20, allow_unmeasured=True).exit_code == EXIT_PASS
    refused = comparison.verdict(threshold=20, allow_unmeasured=False)
    assert refused.exit_code == EXIT_ERROR
    assert "--allow-unmeasured" in refused.line
    document = comparison.to_json(threshold=20, allow_unmeasured=True)
    assert document["comparison"]["cpu_saving_percent"] is None
    assert document["methods"]["native"]["measurement"]["cpu_millicores"] is None


def test_too_few_samples_is_an_error_without_a_figure() -> None:
    short = Measurement(INSUFFICIENT, "12 of 20 valid samples", "cgroup", "ready", 1000.0, 1012.0, None, _log(1.0, 12))
    comparison = _comparison(_measured(2500.0, 989.0), short)
    verdict = comparison.verdict(threshold=20, allow_unmeasured=True)
    assert verdict.exit_code == EXIT_ERROR
    assert "too few valid samples" in verdict.line
    rows = {r.metric: r for r in report.rows(comparison)}
    assert rows["CPU Usage"].orchestrator == "insufficient (12 valid samples)"
    assert rows["CPU Usage"].improvement == "n/a"


def test_a_restart_in_the_window_is_an_error_marked_as_such() -> None:
    why = "tensorflow-trainer (restartCount 0 -> 1) restarted during the measurement window: the measurement is invalid"
    restarted = ["tensorflow-trainer (restartCount 0 -> 1)"]
    crashed = Measurement(INSUFFICIENT, why, "cgroup", "ready", 1000.0, 1005.0, None, _log(1.0, 4), restarts=restarted)
    comparison = _comparison(crashed, _measured(989.0, 700.0))
    verdict = comparison.verdict(threshold=20, allow_unmeasured=True)
    assert verdict.exit_code == EXIT_ERROR
    assert verdict.line.startswith(f"ERROR: a container restarted in its window, no CPU figure (K8S NATIVE: {why})")
    rows = {r.metric: r for r in report.rows(comparison)}
    assert (
        rows["CPU Usage"].native == "insufficient (restarted in the window: tensorflow-trainer (restartCount 0 -> 1))"
    )
    document = comparison.to_json(threshold=20, allow_unmeasured=True)
    assert document["methods"]["native"]["measurement"]["restarts_in_window"] == [
        "tensorflow-trainer (restartCount 0 -> 1)"
    ]
    assert document["methods"]["orchestrator"]["measurement"]["restarts_in_window"] == []


def test_an_error_exits_2() -> None:
    comparison = Comparison("cmp-test", 1_700_000_000.0, dict(SETTINGS))
    comparison.error = "the orchestrator refused the migration"
    verdict = comparison.verdict(threshold=20, allow_unmeasured=True)
    assert (verdict.exit_code, verdict.line) == (EXIT_ERROR, "ERROR: the orchestrator refused the migration")
    assert report.rows(comparison) == []


@pytest.mark.tools
def test_files_hold_every_figure(tmp_path: Path) -> None:
    comparison = _comparison(_measured(2500.0, 989.0), _measured(1800.0, 710.0))
    paths = report.write(comparison, tmp_path / "out", threshold=20, allow_unmeasured=False)
    assert [p.name for p in paths[:3]] == ["report.json", "report.md", "report.html"]
    document = json.loads(paths[0].read_text())
    assert document["comparison"]["cpu_saving_percent"] == 28.0
    assert document["comparison"]["cpu_requests_freed_millicores"] == 500
    assert document["comparison"]["memory_requests_freed_bytes"] == 3 * GIB // 2
    assert document["comparison"]["containers_started"] == {"native": 3, "orchestrator": 2}
    native = document["methods"]["native"]["measurement"]
    assert native["window"]["start_rule"] == "ready"
    assert native["window"]["start"] == "1970-01-01T00:16:40.000Z"
    assert len(native["samples"]) == 20
    assert native["samples"][0]["cpu_millicores"] == 2500.0
    assert document["result"] == {
        "exit_code": 0,
        "passed": True,
        "threshold_percent": 20,
        "line": comparison.verdict(threshold=20, allow_unmeasured=False).line,
        "error": None,
    }
    markdown = paths[1].read_text()
    assert "| CPU Usage | 2500m | 1800m | 28.0% |" in markdown
    assert "| data-processor | skip | completed |" in markdown
    assert (tmp_path / "out" / "cpu-per-sample.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
