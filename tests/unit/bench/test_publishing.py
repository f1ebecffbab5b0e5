"""Only a run at the published scale writes docs/BENCHMARKS.md and bench/results/; smaller runs write their own
output directory and say where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bench import publish, report, runner

from tests.unit.bench.fixtures import results

PAGE = f"# Benchmarks\n\nIntro.\n\n{report.BEGIN}\n\npublished table\n{report.END}\n\nAfter.\n"


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The published page and results directory, and the smaller runs' directory, all under tmp_path."""
    found = {"docs": tmp_path / "BENCHMARKS.md", "results": tmp_path / "results", "out": tmp_path / "out" / "bench"}
    found["docs"].write_text(PAGE)
    monkeypatch.setattr(runner, "DOCS", found["docs"])
    monkeypatch.setattr(runner, "RESULTS", found["results"])
    monkeypatch.setattr(runner, "SMALLER_OUT", found["out"])
    monkeypatch.setattr(runner, "describe", lambda _binaries: results()["machine"])
    monkeypatch.setattr(runner, "binaries_dir", lambda: Path("/nonexistent/k8s-bin"))
    return found


def _decision(*, quick: bool) -> dict[str, Any]:
    batches = 3 if quick else 7
    return {"plan": {"median_us": 245.0, "best_us": 235.0, "batches": batches, "calls_per_batch": 1000}}


def test_a_quick_run_leaves_the_published_page_and_results_untouched(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "run_decision", _decision)
    assert runner.main(["--quick", "--only", "decision", "--no-profile"]) == 0
    assert places["docs"].read_text() == PAGE
    assert not places["results"].exists()
    page = (places["out"] / "latest.md").read_text()
    assert page.startswith("**Not at the published scale** (decision ran with --quick; decision: 3 timeit batches < 7)")
    assert "Scale of this run (from its own parameters): decision: median of 3 timeit batches." in page
    assert (places["out"] / "latest.json").exists()
    said = capsys.readouterr().out
    assert f"results in {places['out'] / 'latest.json'}, page in {places['out'] / 'latest.md'}" in said
    assert f"{places['docs']} and {places['results']} left as they were" in said


def test_a_run_at_the_published_scale_rewrites_the_generated_part(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "run_decision", _decision)
    assert runner.main(["--only", "decision", "--no-profile"]) == 0
    text = places["docs"].read_text()
    assert "published table" not in text
    assert text.startswith("# Benchmarks\n\nIntro.\n\n")
    assert text.endswith("\nAfter.\n")
    assert "Scale of this run (from its own parameters): decision: median of 7 timeit batches." in text
    assert (places["results"] / "latest.md").exists()
    assert not places["out"].exists()


def test_fewer_rounds_than_published_go_to_the_smaller_runs_directory(places: dict[str, Path]) -> None:
    assert runner.output_dir(runner.parse_args(["--rounds", "10"])) == places["out"]
    assert runner.output_dir(runner.parse_args(["--quick"])) == places["out"]
    assert runner.output_dir(runner.parse_args([])) == places["results"]
    assert runner.output_dir(runner.parse_args(["--rounds", "80"])) == places["results"]
    assert runner.output_dir(runner.parse_args(["--orchestrator-arg=--no-prewarm"])) == places["out"]


def _with_serve_flags() -> dict[str, Any]:
    data = results()
    data["scenarios"]["migration"]["orchestrator_args"] = ["--no-prewarm"]
    return data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (results(quick=True), "scale ran with --quick"),
        (results(rounds=10), "migration: 10 rounds < 50"),
        (results(pods=1000, nodes=20), "scale: 1000 pods < 10000"),
        (_with_serve_flags(), "migration ran with serve flags --no-prewarm"),
    ],
)
def test_smaller_results_are_never_written_to_the_published_places(
    places: dict[str, Path], data: dict[str, Any], reason: str
) -> None:
    """Whatever the arguments said: results smaller than published, aimed at bench/results/, go to out/bench/."""
    said: list[str] = []
    assert reason in publish.smaller_than_published(data)
    assert runner.write_outputs(data, out=places["results"], docs=places["docs"], say=said.append) is False
    assert places["docs"].read_text() == PAGE
    assert not places["results"].exists()
    assert (places["out"] / "latest.md").read_text().startswith("**Not at the published scale**")
    assert reason in said[0]


def test_a_published_scale_result_is_written_with_its_profile_listing(places: dict[str, Path]) -> None:
    data = results()
    data["profiles"] = {"decision": {"what": "plans.", "listing_text": "pstats listing\n", "total_s": 1.0}}
    assert publish.smaller_than_published(data) == []
    assert runner.write_outputs(data, out=places["results"], docs=places["docs"], say=lambda _text: None) is True
    assert (places["results"] / "profile-decision.txt").read_text() == "pstats listing\n"
    assert data["profiles"]["decision"]["listing"] == str(places["results"] / "profile-decision.txt")
    assert "listing_text" not in (places["results"] / "latest.json").read_text()
    scale = "Scale of this run (from its own parameters): decision: median of 7 timeit batches; migration: 50 rounds"
    assert scale in places["docs"].read_text()


def test_the_page_states_the_scale_from_the_runs_parameters() -> None:
    phrases = publish.run_scale(results(pods=1000, nodes=20, rounds=5))
    assert "migration: 5 rounds of each method" in phrases
    assert "scale: 1000 pods on 20 nodes, 2000 pod events, 200 migrations at once (twice)" in phrases
    assert "checkpoint: artifacts of 64 and 1024 MiB" in phrases
