"""The error output of the checkpoint's own commands (tar, the sh scripts, sha256sum, rm) runs in the workload's
container like a hook's: whatever of it reaches a message -- the PodMigration's error, Events, the REST view, the
retention report -- is redacted (``redaction.redact_output``) as a hook's summary is. The reason is still read from
the raw text (a read-only volume stays ``checkpoint_volume_read_only``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_storage_orchestrator.checkpoint import CheckpointError, saving
from ai_storage_orchestrator.checkpoint import errors as reasons
from ai_storage_orchestrator.checkpoint.archive import archive_failure
from ai_storage_orchestrator.checkpoint.batch import Steps
from ai_storage_orchestrator.checkpoint.copying import Endpoint
from ai_storage_orchestrator.checkpoint.redaction import REDACTED, redact_output
from ai_storage_orchestrator.checkpoint.transport import CommandResult, Tail
from ai_storage_orchestrator.kube.exec import ExecStatus
from tests.unit.checkpoint.fakes import Call, Fault, LocalExec
from tests.unit.checkpoint.pods import workload
from tests.unit.checkpoint.saves import MIGRATION, checkpoint_root, save

pytestmark = pytest.mark.unit

# A service-account token (a JWT) as a wrapper, a shell profile or a file name might print it.
TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bWw6ZGVmYXVsdCJ9.c2lnbmF0dXJl"
STDERR = f"Authorization: Bearer {TOKEN}\nwrapper: token={TOKEN}\nsh: {TOKEN}: Read-only file system\n".encode()
FAILED = ExecStatus(1, "command terminated with exit code 1")


def _failing(matches: Callable[[Call], bool]) -> Fault:
    def fault(call: Call) -> tuple[ExecStatus, bytes] | None:
        return (FAILED, STDERR) if matches(call) else None

    return fault


def _script(call: Call, *, reset: str, write: str) -> bool:
    return call.argv[:2] == ("sh", "-c") and call.argv[3:6] == ("checkpoint", reset, write)


COMMANDS = [
    pytest.param(lambda c: _script(c, reset="1", write="0"), reasons.VOLUME_READ_ONLY, id="reset-script"),
    pytest.param(lambda c: c.argv[:2] == ("tar", "-c"), reasons.COPY_FAILED, id="tar-c-source"),
    pytest.param(
        lambda c: c.argv[:2] == ("tar", "-x") and "/artifacts/" in c.argv[-1], reasons.VOLUME_READ_ONLY, id="tar-x"
    ),
    pytest.param(
        lambda c: c.argv[:2] == ("tar", "-x") and c.argv[-1].endswith(MIGRATION),
        reasons.VOLUME_READ_ONLY,
        id="tar-x-checksum-lists",
    ),
    pytest.param(lambda c: c.argv[3:4] == ("verify",), reasons.VERIFY_FAILED, id="sh-reread"),
    pytest.param(lambda c: c.argv[3:4] == ("verify-list",), reasons.VERIFY_FAILED, id="sha256sum-c"),
    pytest.param(lambda c: _script(c, reset="0", write="1"), reasons.VOLUME_READ_ONLY, id="manifest-script"),
]


def _assert_hidden(text: str) -> None:
    assert TOKEN not in text
    for piece in TOKEN.split("."):
        assert piece not in text, "no part of the token either"


@pytest.mark.parametrize(("matches", "reason"), COMMANDS)
async def test_a_failing_command_s_error_output_reaches_the_error_redacted(
    root: Path, matches: Callable[[Call], bool], reason: str
) -> None:
    pod = workload(root, artifacts={"trainer": [str(root / "scratch-trainer")]})
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, LocalExec(faults=[_failing(matches)]))
    error = failure.value
    _assert_hidden(error.message)
    _assert_hidden(repr(error.to_json()))
    assert error.reason == reason


async def test_a_failing_retention_removal_is_reported_redacted(root: Path) -> None:
    old = checkpoint_root(root) / "old111"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text("{}")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    remove = _failing(lambda c: c.argv[3:4] == ("remove",))
    result = await save(root, workload(root), LocalExec(faults=[remove]), retention=1)
    assert result["saved"] is True
    assert result["retention"]["error"].startswith("rm failed: exit 1: Authorization: Bearer [REDACTED]")
    _assert_hidden(repr(result))


def test_describe_redacts_the_error_output_and_the_status_message() -> None:
    result = CommandResult(FAILED, b"", STDERR.decode(), STDERR.decode())
    assert result.describe() == (
        f"exit 1: Authorization: Bearer {REDACTED}\nwrapper: token={REDACTED}\nsh: {REDACTED}: Read-only file system"
    )
    no_output = CommandResult(ExecStatus(None, f"exec failed: Bearer {TOKEN}"), b"", "", "")
    assert no_output.describe() == f"did not run: exec failed: Bearer {REDACTED}"


def test_a_token_cut_at_the_front_of_a_tail_is_not_shown() -> None:
    """A tail keeps the end of the output: the token's start may be gone, and what is left shorter than the
    patterns' minimum. The cut word is dropped."""
    tail = Tail(limit=20)
    tail.add(f"leaked {TOKEN}".encode() + b" Permission denied")
    assert tail.truncated
    assert tail.text() == TOKEN[-2:] + " Permission denied"
    assert tail.redacted() == "Permission denied"
    assert redact_output(f"{TOKEN[-5:]} tail", truncated=True) == "tail"


def test_an_unsafe_path_refusal_redacts_the_script_s_error_output() -> None:
    steps = Steps.read(CommandResult(ExecStatus(40, "exit 40"), b"\0guard\n", STDERR.decode(), STDERR.decode()))
    with pytest.raises(CheckpointError) as failure:
        saving._unsafe_path_failure(steps, Endpoint("trainer", "/data/ckpt"))
    assert failure.value.reason == reasons.PATH_UNSAFE
    _assert_hidden(failure.value.message)


def test_an_archive_failure_redacts_and_keeps_the_reason() -> None:
    with pytest.raises(CheckpointError) as failure:
        archive_failure(CommandResult(FAILED, b"", STDERR.decode(), STDERR.decode()), True, "writing x")
    assert failure.value.reason == reasons.VOLUME_READ_ONLY
    _assert_hidden(failure.value.message)
    assert failure.value.message.endswith(f"sh: {REDACTED}: Read-only file system")


def test_paths_in_a_tool_s_message_keep_their_short_components() -> None:
    """The tools name the file they failed on: an absolute path is redacted component by component, not whole (as a
    run of 32 characters it would go whole)."""
    path = "/data/.ai-storage/namespaces/ml/checkpoints/trainer-pod/abc123def456/artifacts/trainer/work/state"
    said = f"tar: {path}: Cannot open: Permission denied"
    assert redact_output(said) == said
    secret_dir = "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eA"
    assert redact_output(f"rm: cannot remove '/data/{secret_dir}/x': Permission denied") == (
        f"rm: cannot remove '/data/{REDACTED}/x': Permission denied"
    )
    assert redact_output(f"sh: /data/{TOKEN}/x: Permission denied") == f"sh: /data/{REDACTED}/x: Permission denied"
    assert redact_output(f"key {secret_dir}/{secret_dir}") == f"key {REDACTED}", "not a path: one long run"


def test_a_long_kubernetes_name_is_not_taken_for_a_secret() -> None:
    """An exec's error names the pod it failed in: the operator needs that name."""
    message = 'no exec found for container "ai-storage-gate" in pod "tensorflow-ai-workload-migrated-0ccbc738"'
    assert redact_output(message) == message
    assert "[REDACTED]" in redact_output("token abcdefghijklmnopqrstuvwxyzABCDEF0123456789")
