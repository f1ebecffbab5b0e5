"""The e2e harness's runtime stamps: `ctr events` lines parsed, and the timed migrations measured from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import runtime_timing
from tests.cluster.runtime_timing import (
    DOWNTIME,
    TO_ALL_RUNNING,
    TO_GATE_EXIT,
    TO_RUNNING,
    TimedMove,
    move_figures,
    timed_moves,
)
from tests.cluster.task_events import EXIT, START, RawEvent, TaskEvent, labels_of, parse_event, task_event

pytestmark = pytest.mark.unit

CID = "4f1c" * 16
T0 = 1_764_729_600 * 1_000_000_000  # 2025-12-03T02:40:00Z


def test_a_task_start_line_gives_its_nanosecond_time_and_container() -> None:
    line = f'2025-12-03 02:40:00.123456789 +0000 UTC k8s.io /tasks/start {{"container_id":"{CID}","pid":4242}}\n'
    assert parse_event(line) == RawEvent(T0 + 123_456_789, START, CID)


def test_a_fraction_with_its_trailing_zeros_dropped_and_another_offset_are_read_as_go_prints_them() -> None:
    line = f'2025-12-03 03:40:00.5 +0100 CET k8s.io /tasks/exit {{"container_id":"{CID}","id":"{CID}"}}'
    assert parse_event(line) == RawEvent(T0 + 500_000_000, EXIT, CID)
    whole = f'2025-12-03 02:40:00 +0000 UTC k8s.io /tasks/start {{"container_id":"{CID}"}}'
    assert parse_event(whole) == RawEvent(T0, START, CID)


@pytest.mark.parametrize(
    "line",
    [
        f'2025-12-03 02:40:00.1 +0000 UTC k8s.io /tasks/exit {{"container_id":"{CID}","id":"exec-checkpoint"}}',
        f'2025-12-03 02:40:00.1 +0000 UTC k8s.io /tasks/exec-started {{"container_id":"{CID}"}}',
        '2025-12-03 02:40:00.1 +0000 UTC k8s.io /tasks/start {"pid":1}',
        "2025-12-03 02:40:00.1 +0000 UTC k8s.io /tasks/start {not json",
        "time=... level=warning msg=...",
        "",
    ],
    ids=["exec-exit", "other-topic", "no-container", "bad-json", "log-line", "empty"],
)
def test_what_is_no_container_start_or_exit_is_left_out(line: str) -> None:
    assert parse_event(line) is None


def test_only_a_kubelet_container_is_kept_with_its_pod_and_name() -> None:
    info = json.dumps(
        {
            "ID": CID,
            "Labels": {
                "io.cri-containerd.kind": "container",
                "io.kubernetes.container.name": "tensorflow-trainer",
                "io.kubernetes.pod.name": "tensorflow-ai-workload",
                "io.kubernetes.pod.uid": "u-1",
            },
        }
    )
    raw = RawEvent(T0, START, CID)
    assert task_event("aiso-node-1", raw, labels_of(info)) == TaskEvent(
        "aiso-node-1", T0, START, CID, "tensorflow-ai-workload", "u-1", "tensorflow-trainer"
    )
    sandbox = {"Labels": {"io.cri-containerd.kind": "sandbox", "io.kubernetes.pod.name": "p"}}
    assert task_event("aiso-node-1", raw, labels_of(json.dumps(sandbox))) is None
    assert task_event("aiso-node-1", raw, labels_of("{}")) is None


def _report(*moves: tuple[int, str, str, str, str, str | None]) -> dict[str, Any]:
    return {
        "timing": {
            "migrations": [
                {
                    "number": number,
                    "method": method,
                    "from_node": source,
                    "to_node": target,
                    "pod": pod,
                    "request_to_ready": {"start": requested},
                }
                for number, method, source, target, pod, requested in moves
            ]
        }
    }


def _event(node: str, seconds: float, kind: str, pod: str, container: str = "tensorflow-trainer") -> TaskEvent:
    return TaskEvent(node, T0 + round(seconds * 1e9), kind, "c", pod, "u", container)


def test_each_timed_move_is_measured_within_its_own_window() -> None:
    moves = timed_moves(
        _report(
            (2, "orchestrator", "n2", "n1", "w-migrated-1", "2025-12-03T02:40:10.000Z"),
            (1, "native", "n1", "n2", "w", "2025-12-03T02:40:00.000Z"),
        )
    )
    assert [m.number for m in moves] == [1, 2]
    events = [
        _event("n1", -5.0, START, "w"),  # before the first request: not this move's
        _event("n1", 0.8, EXIT, "w"),
        _event("n1", 0.81, EXIT, "w", container="model-monitor"),
        _event("n2", 2.3, START, "w"),
        _event("n2", 2.31, START, "w", container="data-processor"),
        _event("n2", 2.4, START, "w", container="model-monitor"),
        _event("n1", 10.7, START, "w-migrated-1", container="ai-storage-gate"),
        _event("n2", 11.0, EXIT, "w"),
        _event("n1", 11.2, EXIT, "w-migrated-1", container="ai-storage-gate"),
        _event("n1", 11.6, START, "w-migrated-1"),
        _event("n1", 11.7, START, "w-migrated-1", container="model-monitor"),
    ]
    native, orchestrator = move_figures(moves, events)
    assert native.downtime == pytest.approx(1.5)
    assert native.to_running == pytest.approx(2.3)
    assert orchestrator.downtime == pytest.approx(0.6)
    assert orchestrator.to_running == pytest.approx(1.6)
    assert native.to_gate_exit is None
    assert orchestrator.to_gate_exit == pytest.approx(0.2)
    assert native.to_all_running == pytest.approx(2.4)
    assert orchestrator.to_all_running == pytest.approx(1.7), "the gate exited: an init container, not counted"
    block = "\n".join(runtime_timing.lines([native, orchestrator]))
    assert "Trainer downtime" in block
    assert "0.40" in block  # 0.6 / 1.5
    document = runtime_timing.to_json([native, orchestrator])
    assert document["ratio_orchestrator_to_native"] == {
        DOWNTIME: 0.4,
        TO_RUNNING: pytest.approx(0.6957, abs=1e-4),
        TO_ALL_RUNNING: pytest.approx(0.7083, abs=1e-4),
        TO_GATE_EXIT: None,  # native has no gate
    }


def test_an_overlap_is_a_negative_downtime_not_hidden() -> None:
    moves = [TimedMove(1, "orchestrator", "n1", "n2", "w2", T0)]
    events = [_event("n2", 0.5, START, "w2"), _event("n1", 0.7, EXIT, "w")]
    (figures,) = move_figures(moves, events)
    assert figures.downtime == pytest.approx(-0.2)


def test_what_was_not_recorded_is_not_measured_with_the_reason() -> None:
    moves = [
        TimedMove(1, "native", "n1", "n2", "w", None),
        TimedMove(2, "orchestrator", "n2", "n1", "w2", T0),
        TimedMove(3, "native", "n1", "n2", "w", T0 + 10 * 10**9),
    ]
    events = [_event("n1", 1.0, START, "w2"), _event("n2", 10.5, START, "w")]
    first, second, third = move_figures(moves, events)
    assert first.reason == "the report has no request time for it"
    assert second.downtime is None
    assert second.to_running == pytest.approx(1.0)
    assert second.reason == "no tensorflow-trainer exit on n2 was recorded"
    assert third.reason == "no tensorflow-trainer exit on n1 was recorded"
    assert "not measured" in "\n".join(runtime_timing.lines([first, second, third]))
    assert runtime_timing.lines([]) == ["RUNTIME TIMING: not measured (the report has no timed migrations)"]


def test_a_runs_saved_files_give_the_same_figures_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _report(
        (1, "native", "n1", "n2", "w", "2025-12-03T02:40:00.000Z"),
        (2, "orchestrator", "n2", "n1", "w-migrated-1", "2025-12-03T02:40:10.000Z"),
    )
    events = [
        _event("n1", 0.8, EXIT, "w"),
        _event("n2", 2.3, START, "w"),
        _event("n2", 11.0, EXIT, "w"),
        _event("n1", 11.6, START, "w-migrated-1"),
    ]
    saved = {
        "events_since": "2025-12-03T02:40:00.000Z",
        "events": [runtime_timing.event_json(e, T0) for e in events],
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    (tmp_path / "runtime-timing.json").write_text(json.dumps(saved))
    assert runtime_timing.main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == "\n".join(runtime_timing.lines(move_figures(timed_moves(report), events))).strip()


@pytest.mark.parametrize("run", ["", "run-a", "run-c"])
def test_the_published_runs_recompute_from_their_raw_events(run: str, capsys: pytest.CaptureFixture[str]) -> None:
    published = Path(__file__).resolve().parents[2] / "docs" / "results" / "e2e-timing" / run
    assert runtime_timing.main([str(published)]) == 0
    assert capsys.readouterr().out == (published / "runtime-timing.txt").read_text()
