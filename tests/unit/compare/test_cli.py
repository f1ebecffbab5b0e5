"""The `compare` command's flags, and the bash wrapper that passes them through."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from ai_storage_orchestrator.cli import build_parser
from ai_storage_orchestrator.cli.compare import configure, options_from_args
from ai_storage_orchestrator.compare.cluster import CompareError
from ai_storage_orchestrator.compare.options import Options

ROOT = Path(__file__).resolve().parents[3]
WRAPPER = ROOT / "scripts" / "ai_migration_compare.sh"


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(list(argv))


def test_defaults_follow_the_certification(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_STORAGE_ORCHESTRATOR_URL", raising=False)
    monkeypatch.delenv("AI_STORAGE_ORCHESTRATOR_TOKEN", raising=False)
    parser = argparse.ArgumentParser()
    configure(parser)
    options = options_from_args(parser.parse_args([]))
    assert options == Options(orchestrator_url="http://127.0.0.1:8080")
    assert (options.samples, options.trim, options.interval, options.threshold) == (20, 3, 1.0, 20.0)
    assert (options.window_start, options.source, options.workload) == ("ready", "auto", "auto")
    assert options.reads_budget == 42
    assert options.complete_after == "45s"


def test_every_flag_reaches_the_options() -> None:
    args = _parse(
        "--source-node=a", "--target-node=b", "--namespace=ml", "--orchestrator-url=http://127.0.0.1:9000",
        "--kubeconfig=/k", "--samples=14", "--trim=2", "--interval=0.5", "--window-start=migration-start",
        "--source=kubelet", "--output-dir=/tmp/out", "--threshold=25", "--keep", "--workload=tensorflow",
        "--token=secret", "--allow-unmeasured", "--pvc=data", "--nfs-server=10.0.0.5", "--nfs-path=/x",
        "--simulated-complete-after=3s", "--timeout=30", "--max-reads=50",
    )  # fmt: skip
    options = options_from_args(args)
    assert options == Options(
        namespace="ml", source_node="a", target_node="b", orchestrator_url="http://127.0.0.1:9000", token="secret",
        kubeconfig="/k", samples=14, trim=2, interval=0.5, window_start="migration-start", source="kubelet",
        threshold=25.0, keep=True, workload="tensorflow", allow_unmeasured=True, pvc="data", nfs_server="10.0.0.5",
        nfs_path="/x", complete_after="3s", timeout=30.0, max_reads=50,
    )  # fmt: skip
    assert args.output_dir == Path("/tmp/out")
    assert options.settings()["token"] == "set"


@pytest.mark.parametrize("workload", ["auto", "simulated", "tensorflow", "numpy"])
def test_every_workload_variant_is_a_choice(workload: str) -> None:
    assert options_from_args(_parse(f"--workload={workload}")).workload == workload


def test_the_help_names_the_numpy_image_and_its_cpu_scale() -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    text = " ".join(parser.format_help().split())
    assert "aiso.local/numpy-workload:1, never pulled; CPU requests x0.5" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["--samples=0"],
        ["--trim=-1"],
        ["--interval=0"],
        ["--window-start=later"],
        ["--source=guess"],
        ["--workload=keras"],
        ["--timing-pairs=-1"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parse(*argv)
    assert exited.value.code == 2


def test_samples_must_survive_the_trim() -> None:
    with pytest.raises(CompareError, match="need samples > 2 x trim"):
        Options(samples=6, trim=3).validate()
    Options(samples=7, trim=3).validate()


def test_timing_pairs_are_off_unless_asked_for() -> None:
    assert options_from_args(_parse()).timing_pairs == 0
    assert options_from_args(_parse("--timing-pairs", "10")).timing_pairs == 10


def test_timed_moves_are_spread_over_a_second_unless_told_otherwise() -> None:
    assert options_from_args(_parse()).timing_spread == 1.0
    assert options_from_args(_parse("--timing-spread", "0")).timing_spread == 0
    with pytest.raises(CompareError, match="--timing-spread must not be negative"):
        Options(timing_spread=-0.5).validate()
    with pytest.raises(CompareError, match="--timing-pairs must not be negative"):
        Options(timing_pairs=-1).validate()


def test_compare_is_a_command_of_the_cli() -> None:
    args = build_parser().parse_args(["compare", "--samples=5", "--trim=1"])
    assert args.samples == 5
    assert callable(args.handler)


@pytest.mark.tools
def test_the_wrapper_passes_help_through() -> None:
    cli = f"{sys.executable} -m ai_storage_orchestrator.cli"
    done = subprocess.run(
        ["bash", str(WRAPPER), "--help"], capture_output=True, text=True, env={"AISO_CLI": cli, "PATH": "/usr/bin:/bin"}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: scripts/ai_migration_compare.sh")
    assert "--window-start {ready,migration-start}" in done.stdout
    assert "--allow-unmeasured" in done.stdout


@pytest.mark.tools
def test_the_wrapper_passes_arguments_and_exit_codes_through() -> None:
    cli = f"{sys.executable} -m ai_storage_orchestrator.cli"
    done = subprocess.run(
        ["bash", str(WRAPPER), "--samples=not-a-number"],
        capture_output=True,
        text=True,
        env={"AISO_CLI": cli, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "--samples" in done.stderr


def _without_the_cli(tmp_path: Path) -> tuple[Path, Path]:
    """The wrapper in a checkout without .venv, and a bin directory whose `python3` is a real Python that cannot import
    the package (no site-packages)."""
    scripts = tmp_path / "checkout" / "scripts"
    scripts.mkdir(parents=True)
    wrapper = scripts / WRAPPER.name
    wrapper.write_text(WRAPPER.read_text())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python3"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    return wrapper, bin_dir


@pytest.mark.tools
@pytest.mark.parametrize("how", ["python3 -m", "console script", "AISO_CLI not found", "PYTHON not found"])
def test_a_cli_that_cannot_run_is_an_error_that_says_how_to_install_never_exit_1(tmp_path: Path, how: str) -> None:
    wrapper, bin_dir = _without_the_cli(tmp_path)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    if how == "console script":  # what pip writes, on an interpreter that cannot import the package
        script = bin_dir / "ai-storage-orchestrator"
        script.write_text(f"#!{bin_dir}/python3\nimport sys\nfrom ai_storage_orchestrator.cli import main\nmain()\n")
        script.chmod(0o755)
    elif how == "AISO_CLI not found":
        env["AISO_CLI"] = "no-such-command -m ai_storage_orchestrator.cli"
    elif how == "PYTHON not found":
        env["PYTHON"] = "python3.99"
    done = subprocess.run(
        ["/bin/bash", str(wrapper), "--samples=5"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("scripts/ai_migration_compare.sh: cannot run ai-storage-orchestrator: ")
    assert "python3.11 -m pip install " in done.stderr
    assert "/dist/ai_storage_orchestrator-*.whl" in done.stderr
    assert "`make venv`" in done.stderr
    if how in ("python3 -m", "console script"):
        assert "cannot import ai_storage_orchestrator.cli: ModuleNotFoundError" in done.stderr
    else:
        assert "was not found" in done.stderr
