"""A figure that was not measured reads "not measured" (with its reason), never 0, None or a made-up number."""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path

from bench import orchestrator, report, targets
from bench.api_load import Tally
from bench.checkpoint_throughput import figures, memory
from bench.machine import one_line
from bench.render import missing, pairs, value

from tests.unit.bench.fixtures import results, scale_outcome


def _artifact(tmp_path: Path) -> tuple[Path, str, Path]:
    """(the artifact's path in the pod, its sha256, the checkpoint directory holding a copy of it)."""
    artifact = tmp_path / "case" / "scratch" / "optimizer.bin"
    directory = tmp_path / "checkpoint"
    stored = Path(str(directory / "artifacts" / "tensorflow-trainer") + str(artifact))
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"weights")
    return artifact, hashlib.sha256(b"weights").hexdigest(), directory


def test_a_checkpoint_status_without_throughput_gives_none_and_the_reason(tmp_path: Path) -> None:
    artifact, digest, directory = _artifact(tmp_path)
    found = figures({"directory": str(directory), "copySeconds": 0.9}, artifact, digest)
    assert found["throughput_mib_s"] is None  # was round((None or 0) / MIB, 1) == 0.0
    assert found["throughput_reason"] == "the checkpoint status has no throughput"
    assert found["copy_seconds"] == 0.9
    assert found["identical"] is True


def test_a_measured_throughput_is_kept(tmp_path: Path) -> None:
    artifact, digest, directory = _artifact(tmp_path)
    found = figures({"directory": str(directory), "throughputBytesPerSecond": 72_666_316.8}, artifact, digest)
    assert found["throughput_mib_s"] == 69.3
    assert "throughput_reason" not in found


def test_no_checkpoint_at_all_leaves_every_figure_unmeasured(tmp_path: Path) -> None:
    found = figures({}, tmp_path / "optimizer.bin", "00")
    assert found == {
        "copy_seconds": None,
        "checkpoint_seconds": None,
        "throughput_mib_s": None,
        "throughput_reason": "the checkpoint status has no throughput (no checkpoint status)",
        "identical": None,
        "identical_reason": "no checkpoint directory in the status",
    }


def test_a_sampler_that_took_no_sample_gives_no_peak() -> None:
    assert memory(96.5, None) == {
        "rss_before_mib": 96.5,
        "rss_peak_mib": None,
        "rss_growth_mib": None,
        "rss_reason": "the sampler took no sample during the migration",
    }
    assert memory(96.5, 102.4)["rss_growth_mib"] == 5.9


def test_a_missing_checkpoint_throughput_renders_not_measured() -> None:
    data = results()
    data["scenarios"]["checkpoint"]["sizes"][0] = {
        "artifact_mib": 64,
        "status": "completed",
        "throughput_mib_s": None,
        "throughput_reason": "the checkpoint status has no throughput",
        "rss_growth_mib": 5.9,
        "identical": None,
        "identical_reason": "no checkpoint directory in the status",
    }
    row = next(r for r in targets.rows(data["scenarios"]) if r.figure.startswith("Checkpoint artifact copy, 64"))
    assert row.measured.startswith("not measured: the checkpoint status has no throughput; 5.9 MiB")
    assert "identical: not measured: no checkpoint directory in the status" in row.measured
    page = report.markdown(data)
    assert "0.0 MiB/s" not in page
    assert "None" not in page.split("### Migration runs")[0]


def test_a_failed_migration_says_why_its_throughput_is_missing() -> None:
    entry = {"artifact_mib": 64, "status": "failed", "error": "exec refused", "throughput_mib_s": None}
    (row,) = targets.rows({"checkpoint": {"sizes": [entry]}})
    assert row.measured.startswith("not measured: migration failed: exec refused;")


def test_a_missing_event_rate_gives_no_duration() -> None:
    assert report.events_duration({"events": 2001}) is None  # was 2001 / (None or 1) = 2001.0 s
    assert report.events_duration({"events": 2001, "absorbed_per_s": 0}) is None
    assert report.events_duration({"absorbed_per_s": 313.1}) is None
    assert report.events_duration({"events": 2001, "absorbed_s": 6.391, "absorbed_per_s": 313.1}) == 6.391
    assert round(report.events_duration({"events": 2001, "absorbed_per_s": 313.1}) or 0, 1) == 6.4


def test_the_scale_details_print_no_made_up_duration() -> None:
    outcome = scale_outcome()
    outcome["events"] = {"error": "the orchestrator never logged the marker pod's refusal", "patch_errors": {}}
    lines = report._scale_details({"outcome": outcome})
    events = next(line for line in lines if line.startswith("- events:"))
    assert "2001.0 s" not in events
    assert " 0.0 s" not in events
    assert events.startswith(
        "- events: not measured: the orchestrator never logged the marker pod's refusal in not measured: the"
        " orchestrator never logged"
    )
    assert "CPU seconds meanwhile: not measured" in events


def test_unfinished_bursts_and_missing_figures_are_not_printed_as_numbers() -> None:
    outcome = scale_outcome()
    outcome["migrations"].update(
        all_done_s=None,
        throughput_per_s=None,
        not_measured={"all_done_s": "3 of 200 migrations never ended within the wait"},
    )
    row = next(r for r in targets.rows({"scale": {"outcome": outcome}}) if r.figure.startswith("200 migrations"))
    assert row.measured == (
        "0 errors; not measured: 3 of 200 migrations never ended within the wait; not measured: 3 of 200 migrations"
        " never ended within the wait"
    )
    text = "\n".join(report._scale_details({"outcome": outcome}))
    assert "all done after not measured: 3 of 200 migrations never ended within the wait" in text
    assert "None" not in text


def test_render_helpers() -> None:
    assert missing() == "not measured"
    assert missing("no samples") == "not measured: no samples"
    assert value(None, "ms", 1) == "not measured"
    assert value(None, "ms", reason="gone") == "not measured: gone"
    assert value(0.0, "ms", 1) == "0.0 ms"  # a measured zero stays a zero
    assert value(313.44, "/s", 1) == "313.4/s"
    assert pairs(None) == "not measured"
    assert pairs({}) == "none"
    assert pairs({"etcd": 0.8, "gone": None}) == "etcd 0.8, gone not measured"


def test_a_process_that_is_gone_has_no_cpu_time_rather_than_zero() -> None:
    gone = 2**22 + 12345  # above pid_max's default ceiling
    assert not os.path.exists(f"/proc/{gone}")
    assert orchestrator.cpu_seconds(gone) is None
    meter = orchestrator.CpuMeter({"orchestrator": gone})
    used = meter.used()
    assert used["orchestrator"] is None
    assert used["unattributed"] is None
    assert isinstance(used["bench"], float)


def test_an_unknown_cpu_count_is_not_zero_cpus() -> None:
    machine = {"nproc": None, "cpu_model": "x", "memory_gib": None, "python": "3.11", "kernel": "6"}
    assert one_line(machine).startswith("CPUs not measured (x), RAM not measured,")


def test_an_api_load_that_failed_is_not_judged_and_says_why() -> None:
    api = copy.deepcopy(results()["scenarios"]["api"]["results"])
    api["get_open"] = {"error": "load generator did not finish within 75.0s"}
    del api["dry_run_open"]["error_count"]
    get_open, dry_run, *_ = targets._api_rows(api)
    assert get_open.measured == "not measured: load generator did not finish within 75.0s"
    assert (get_open.met, get_open.verdict) == (None, "not judged: no p99 measured")
    assert (dry_run.met, dry_run.verdict) == (None, "not judged: errors not counted")  # was judged False


def test_a_load_without_answers_has_no_rate() -> None:
    tally = Tally()
    tally.errors["ClientConnectorError"] = 3
    found = tally.to_json(sent=3, dropped=0, elapsed=1.0)
    assert found["achieved_rps"] is None
    assert found["latency_ms"]["n"] == 0
    assert found["latency_ms"]["p99"] is None
