"""What the charts show, read from report.json (compare/chart.py): per-container rates from each container's own
counters that add up to the pod's sample, memory from the reads, the timeline's steps and marks, and nothing for a
figure that was not measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ai_storage_orchestrator.compare.chart import chart_data
from tests.unit.compare.charts_sample import DOWNTIME_REASON, NATIVE_RATES, ORCHESTRATOR_RATES, document

pytestmark = pytest.mark.unit

PUBLISHED = Path(__file__).resolve().parents[3] / "docs" / "results" / "e2e-real-nodes" / "report.json"


def test_per_container_cpu_comes_from_each_containers_counter() -> None:
    native, orchestrator = chart_data(document()).methods
    assert [m.key for m in (native, orchestrator)] == ["native", "orchestrator"]
    assert len(native.cpu) == 10
    for interval in native.cpu:
        assert interval.millicores == pytest.approx(NATIVE_RATES)
        assert interval.end - interval.start == pytest.approx(1.0)
    assert native.cpu[0].start == pytest.approx(3.0)  # the window starts at Ready, 3 s after the DELETE
    assert native.cpu_figure == pytest.approx(sum(NATIVE_RATES.values()))


def test_invalid_samples_are_left_out_and_counted() -> None:
    orchestrator = chart_data(document()).methods[1]
    assert orchestrator.invalid_samples == 2  # the failed read ends one sample and starts the next
    assert len(orchestrator.cpu) == 10
    assert all(i.millicores == pytest.approx(ORCHESTRATOR_RATES) for i in orchestrator.cpu)
    failed = [p for p in orchestrator.memory if p.mib["model-monitor"] is None]
    assert len(failed) == 1  # that read has no memory either: a gap, not a 0


def test_memory_per_container_at_every_read() -> None:
    native = chart_data(document()).methods[0]
    assert len(native.memory) == 11
    assert native.memory[0].mib == {"tensorflow-trainer": 45.0, "data-processor": 60.0, "model-monitor": 5.0}
    assert native.memory[0].time == pytest.approx(3.0)


def test_the_timeline_has_the_native_steps_and_the_orchestrators_phases() -> None:
    native, orchestrator = chart_data(document()).methods
    assert [(s.label, round(s.start, 2), round(s.end, 2)) for s in native.segments] == [
        ("deleting (old pod terminating)", 0.0, 1.0),
        ("recreating (create sent)", 1.0, 1.2),
        ("new pod starting", 1.2, 3.0),
    ]
    assert [s.label for s in orchestrator.segments] == [
        "Validating", "Checkpointing", "StoppingSource", "CreatingTarget", "WaitingForTarget",
    ]  # fmt: skip
    assert orchestrator.segments[-1].end == pytest.approx(2.4)
    assert (native.downtime.start, native.downtime.end, native.downtime.label()) == (0.5, 4.5, "4s ± 1s")
    ready = next(m for m in native.marks if m.label == "Ready (kubelet)")
    assert (ready.time, ready.error) == (2.5, 0.5)


def test_unmeasured_figures_are_left_out_with_their_reason() -> None:
    orchestrator = chart_data(document()).methods[1]
    assert orchestrator.downtime.start is None
    assert orchestrator.downtime.end is None
    assert orchestrator.downtime.label() == f"not measured ({DOWNTIME_REASON})"
    assert not any(m.label == "Ready (kubelet)" for m in orchestrator.marks)
    assert any(text.startswith("Ready (kubelet): not measured") for text in orchestrator.missing)


def test_native_steps_not_recorded_are_one_segment_and_a_note() -> None:
    doc = document()
    doc["methods"]["native"]["events"] = []  # type: ignore[index]
    native = chart_data(doc).methods[0]
    assert [(s.label, s.start, s.end) for s in native.segments] == [("DELETE → Ready (steps not recorded)", 0.0, 3.0)]
    assert "pod gone / created: not recorded" in native.missing


def test_the_published_run_per_container_rates_add_up_to_its_samples() -> None:
    published = json.loads(PUBLISHED.read_text())
    data = chart_data(published)
    for method in data.methods:
        samples = [s for s in published["methods"][method.key]["measurement"]["samples"] if s["valid"]]
        assert [i.total for i in method.cpu] == pytest.approx([s["cpu_millicores"] for s in samples], abs=0.01)
        timed = published["methods"][method.key]["trainer_downtime"]
        assert method.downtime.seconds == timed["seconds"], "the chart draws the report's own figure"
        assert method.downtime.reason is None
    assert data.containers == ["tensorflow-trainer", "data-processor", "model-monitor"]
