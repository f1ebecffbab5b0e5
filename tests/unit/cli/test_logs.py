"""`logs`: formatting and filtering of the orchestrator's JSON log lines, from a file, stdin and `kubectl logs`."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from ai_storage_orchestrator.cli import logs, main
from tests.unit.cli.conftest import parse, run_cli

pytestmark = pytest.mark.unit

A, B = "aaaaaaaaaaaa", "bbbbbbbbbbbb"


def entry(event: str, *, level: str = "info", second: int = 1, **fields: Any) -> str:
    body = {**fields, "event": event, "level": level, "logger": "ai_storage_orchestrator.x"}
    body["timestamp"] = f"2024-05-01T10:00:{second:02d}.{second * 1000 + 123:06d}Z"
    return json.dumps(body)


def phase_changed(migration_id: str, previous: str, new: str, message: str, second: int) -> str:
    bound = {"migration_id": migration_id, "pod": "trainer", "namespace": "ml", "phase": previous}
    return entry("migration.phase_changed", second=second, previous=previous, new_phase=new, message=message, **bound)


SAMPLE = [
    entry("orchestrator.started", second=0, identity="orchestrator-0", namespace="*"),
    entry("http.request", second=1, request_id="req-1", method="POST", route="/api/migrations", status=202),
    phase_changed(A, "Pending", "Validating", "checking the pod and the target node", 2),
    phase_changed(B, "Pending", "Failed", "node-c is NotReady", 3),
    "Traceback (most recent call last): not JSON",
    entry("reconcile.crashed", level="error", second=4, key="ml/x", exception="Traceback\n  boom\nValueError: x"),
    "[1, 2]",
    entry("reconcile.retry", second=5, key=f"ml/{A}", error="api unavailable", retry_in=0.5),
    phase_changed(A, "Validating", "Completed", "trainer-migrated-aaaaa is running", 6),
]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "orchestrator.log"
    path.write_text("\n".join(SAMPLE) + "\n")
    return path


def test_format_of_one_entry() -> None:
    line = logs.render(SAMPLE[2])
    assert line == (
        "10:00:02.002  INFO     migration.phase_changed   Pending           migration_id=aaaaaaaaaaaa pod=trainer"
        ' namespace=ml previous=Pending new_phase=Validating message="checking the pod and the target node"'
    )


def test_values_and_timestamps() -> None:
    assert logs.format_value("plain") == "plain"
    assert logs.format_value("a=b") == '"a=b"'
    assert logs.format_value("") == '""'
    assert logs.format_value(None) == "null"
    assert logs.format_value(True) == "true"
    assert logs.format_value(1.5) == "1.5"
    assert logs.format_value({"a": [1, 2]}) == '{"a":[1,2]}'
    assert logs.clock("2024-05-01T12:00:00.987654+02:00") == "10:00:00.987"
    assert logs.clock(0) == "00:00:00.000"
    assert logs.clock("not a time") == "not a time"
    assert logs.clock(None) == "-"


async def test_file_is_printed_readably(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_cli(["logs", "--file", str(sample)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "10:00:00.000",
        "INFO",
        "orchestrator.started",
        "-",
        "namespace=*",
        "identity=orchestrator-0",
    ]
    assert lines[1].split()[:5] == ["10:00:01.001", "INFO", "http.request", "-", "request_id=req-1"]
    assert lines[4] == SAMPLE[4]  # not JSON: unchanged
    assert lines[5].split()[:4] == ["10:00:04.004", "ERROR", "reconcile.crashed", "-"]
    assert lines[6:9] == ["    Traceback", "      boom", "    ValueError: x"]  # the exception, below its line
    assert lines[9] == "[1, 2]"
    assert len(lines) == 12


async def test_filter_one_migration(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_cli(["logs", "--file", str(sample), "--migration", A]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:4] for line in lines] == [
        ["10:00:02.002", "INFO", "migration.phase_changed", "Pending"],
        ["10:00:05.005", "INFO", "reconcile.retry", "-"],  # its `key` names the migration
        ["10:00:06.006", "INFO", "migration.phase_changed", "Validating"],
    ]
    assert "new_phase=Completed" in lines[2]
    assert "migration_id=" not in lines[0]  # it is the filter: no need to repeat it


async def test_json_output_keeps_the_matching_lines_unchanged(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_cli(["logs", "--file", str(sample), "--migration", B, "-o", "json"]) == 0
    assert capsys.readouterr().out.splitlines() == [SAMPLE[3]]


async def test_stdin_pipe(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, ("\n".join(SAMPLE[2:4]) + "\npartial last line").encode())
    os.close(write_end)
    with os.fdopen(read_end, "r") as pipe:
        monkeypatch.setattr(sys, "stdin", pipe)
        assert await run_cli(["logs", "--file", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[3] for line in lines[:2]] == ["Pending", "Pending"]
    assert lines[2] == "partial last line"


async def test_stdin_redirected_from_a_file(
    sample: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with sample.open() as redirected:
        assert stat.S_ISREG(os.fstat(redirected.fileno()).st_mode)
        monkeypatch.setattr(sys, "stdin", redirected)
        assert await run_cli(["logs", "--migration", B]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "new_phase=Failed" in line


async def test_stdin_terminal_needs_a_source(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    assert await run_cli(["logs"]) == 2
    assert capsys.readouterr().err.startswith("error: nothing to read: give --file PATH, --from-pod NS/NAME")


async def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_cli(["logs", "--file", str(tmp_path / "nope.log")]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot read {tmp_path / 'nope.log'}: No such file")


async def test_main_reads_a_file(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await asyncio.to_thread(main, ["logs", "--file", str(sample), "--migration", B]) == 0
    assert "node-c is NotReady" in capsys.readouterr().out


# --follow ---------------------------------------------------------------------------------------------------------
async def next_line(lines: Any) -> str:
    line: str = await asyncio.wait_for(anext(lines), 1)
    return line


async def test_follow_waits_for_complete_lines_and_follows_rotation(tmp_path: Path) -> None:
    path = tmp_path / "follow.log"
    path.write_text("one\n")
    lines = logs.file_lines(path.open("rb"), path=str(path), follow=True, poll_interval=0)
    try:
        assert await next_line(lines) == "one"
        pending = asyncio.ensure_future(anext(lines))
        with path.open("a") as log:
            log.write("tw")
            log.flush()
            for _ in range(20):  # several polls see only half a line
                await asyncio.sleep(0)
            assert not pending.done()
            log.write("o\nthree\n")
        assert await asyncio.wait_for(pending, 1) == "two"
        assert await next_line(lines) == "three"
        rotated = tmp_path / "new.log"
        rotated.write_text("after rotation\n")
        os.replace(rotated, path)
        assert await next_line(lines) == "after rotation"
        path.write_text("short\n")  # truncated in place (copytruncate), then a shorter line written
        assert await next_line(lines) == "short"
    finally:
        await lines.aclose()


async def test_follow_command_prints_new_entries(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["logs", "--file", str(sample), "--follow", "--migration", A, "--poll-interval", "0"])
    task = asyncio.ensure_future(args.command_coroutine(args))
    seen = ""

    async def until(text: str) -> None:
        nonlocal seen
        for _ in range(2000):
            seen += capsys.readouterr().out
            if text in seen:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{text!r} never printed; got {seen!r}")

    try:
        await until("new_phase=Completed")
        with sample.open("a") as log:
            log.write(phase_changed(B, "Failed", "Failed", "ignored", 6) + "\n")
            log.write(phase_changed(A, "Completed", "Completed", "later line", 7) + "\n")
        await until("later line")
        assert "ignored" not in seen
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --from-pod -------------------------------------------------------------------------------------------------------
@pytest.fixture
def kubectl(tmp_path: Path, sample: Path) -> Path:
    """A stand-in kubectl: records its arguments, prints the sample log, exits with $FAKE_KUBECTL_EXIT."""
    script = tmp_path / "kubectl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > "{tmp_path}/kubectl.args"\n'
        f'cat "{sample}"\n'
        'echo "kubectl says hello on stderr" >&2\n'
        'exit "${FAKE_KUBECTL_EXIT:-0}"\n'
    )
    script.chmod(0o755)
    return script


async def test_from_pod_runs_kubectl_logs(kubectl: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["logs", "--from-pod", "kube-system/deploy/ai-storage-orchestrator", "--kubectl", str(kubectl)]
    assert await run_cli([*argv, "--migration", B, "-f"]) == 0
    assert (kubectl.parent / "kubectl.args").read_text().split() == [
        "logs",
        "-f",
        "-n",
        "kube-system",
        "deploy/ai-storage-orchestrator",
    ]
    (line,) = capsys.readouterr().out.splitlines()
    assert "node-c is NotReady" in line


async def test_from_pod_reports_kubectl_failure(
    kubectl: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_EXIT", "1")
    assert await run_cli(["logs", "--from-pod", "kube-system/orchestrator-0", "--kubectl", str(kubectl)]) == 2
    assert (kubectl.parent / "kubectl.args").read_text().split() == ["logs", "-n", "kube-system", "orchestrator-0"]
    err = capsys.readouterr().err
    assert f"error: `{kubectl} logs -n kube-system orchestrator-0` exited with code 1" in err


async def test_from_pod_without_kubectl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "no-kubectl")
    assert await run_cli(["logs", "--from-pod", "kube-system/x", "--kubectl", missing]) == 2
    assert capsys.readouterr().err.startswith(f"error: kubectl not found ({missing})")


@pytest.mark.parametrize("target", ["orchestrator", "/x", "ns/"])
async def test_from_pod_needs_namespace_and_name(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_cli(["logs", "--from-pod", target]) == 2
    assert "--from-pod takes NAMESPACE/NAME" in capsys.readouterr().err


def test_file_and_pod_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["logs", "--file", "x", "--from-pod", "a/b"])
    assert "not allowed with argument" in capsys.readouterr().err
