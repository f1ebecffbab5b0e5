"""A hook's output is the workload's (it may be the pod's service-account token): it never reaches the checkpoint
result (the PodMigration's status.checkpoint), the error (status.error and Events), the manifest on the shared volume,
or the log beyond a short redacted summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from ai_storage_orchestrator.checkpoint import CheckpointError
from ai_storage_orchestrator.checkpoint import errors as reasons
from ai_storage_orchestrator.checkpoint.redaction import REDACTED, SUMMARY_LIMIT
from ai_storage_orchestrator.kube.exec import ExecStatus
from tests.unit.checkpoint.fakes import Call, LocalExec
from tests.unit.checkpoint.pods import workload
from tests.unit.checkpoint.saves import MIGRATION, checkpoint_root, save

TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IkR4In0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bWw6ZGVmYXVsdCJ9"
    ".c2lnbmF0dXJlLWJ5dGVzLXRoYXQtYXJlLWxvbmctZW5vdWdoLXRvLWJlLXJlYWw"
)
SECRETS = f"reading the token\n{TOKEN}\npassword=hunter2\n"


def _leaking_hook(root: Path, *, fail: bool = True) -> list[str]:
    """What an attacker's hook does: print what the pod mounts (its token), then fail so the output is reported."""
    (root / "mounted-secret").write_text(SECRETS)
    return ["sh", "-c", 'cat "$0"; exit "$1"', str(root / "mounted-secret"), "3" if fail else "0"]


def _text(value: object) -> str:
    return json.dumps(value, default=str)


async def test_a_failed_hook_output_is_in_no_status_error_or_event(root: Path) -> None:
    pod = workload(root, hooks={"trainer": _leaking_hook(root)}, artifacts={"trainer": [str(root / "scratch-trainer")]})
    with structlog.testing.capture_logs() as logs, pytest.raises(CheckpointError) as failure:
        await save(root, pod, LocalExec())

    error = failure.value
    assert error.reason == reasons.HOOK_FAILED
    # error.message becomes status.error.message and the Events' text; error.details goes into status.checkpoint.
    for where in (error.message, _text(error.details)):
        assert TOKEN not in where
        assert TOKEN[:40] not in where
        assert "hunter2" not in where
        assert "reading the token" not in where
    assert "exited with 3" in error.message
    [hook] = error.details["hooks"]
    assert hook["exitCode"] == 3
    assert hook["outputBytes"] == len(SECRETS)
    assert hook["durationSeconds"] >= 0

    # The log has a bounded, redacted summary, so an operator still sees why.
    [failed] = [entry for entry in logs if entry["event"] == "checkpoint.hook_failed"]
    assert failed["exit_code"] == 3
    assert "reading the token" in failed["output"]
    assert REDACTED in failed["output"]
    assert len(failed["output"]) <= SUMMARY_LIMIT + 1
    for entry in logs:
        assert TOKEN[:40] not in _text(entry), entry
        assert "hunter2" not in _text(entry), entry


async def test_a_successful_hook_output_is_in_no_status_and_no_manifest(root: Path) -> None:
    hook = _leaking_hook(root, fail=False)
    pod = workload(root, hooks={"trainer": hook}, artifacts={"trainer": [str(root / "scratch-trainer")]})
    with structlog.testing.capture_logs() as logs:
        result = await save(root, pod, LocalExec())

    assert result["saved"] is True
    assert TOKEN[:40] not in _text(result)
    assert result["hooks"][0]["outputBytes"] == len(SECRETS)
    manifest = (checkpoint_root(root) / MIGRATION / "manifest.json").read_text()
    assert TOKEN[:40] not in manifest
    assert not any(TOKEN[:40] in _text(entry) for entry in logs)
    assert not any(entry["event"] == "checkpoint.hook_failed" for entry in logs)


async def test_a_hook_that_cannot_run_keeps_only_a_redacted_reason(root: Path) -> None:
    # A runtime's failure message can quote what the command was given; it is kept (it says why), redacted.
    def refuse(call: Call) -> tuple[ExecStatus, bytes] | None:
        if call.argv[0] == "/opt/hook":
            return ExecStatus(None, f"exec failed: unable to start /opt/hook {TOKEN}: permission denied"), b""
        return None

    pod = workload(root, hooks={"trainer": ["/opt/hook"]})
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, LocalExec(faults=[refuse]))
    assert failure.value.reason == reasons.HOOK_FAILED
    [hook] = failure.value.details["hooks"]
    assert hook["outputBytes"] == 0
    assert "permission denied" in hook["message"]
    assert "permission denied" in failure.value.message
    for where in (hook["message"], failure.value.message):
        assert TOKEN[:40] not in where
