"""How many execs into the source pod a checkpoint costs -- each is a round-trip through the API server and the
kubelet on the migration's critical path -- and that the steps combined into one ``sh`` script (checkpoint.batch)
still fail each with its own reason and message.

Before the combined script, a checkpoint with nothing declared (the certification pod: no hooks, no artifacts) took
7 execs one after the other (rm, mkdir, tar -x, mv, the re-read, ls, find) and an 8th when retention deleted; now it
takes 1, and 2 when retention deletes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ai_storage_orchestrator.checkpoint import CheckpointError
from ai_storage_orchestrator.checkpoint import errors as reasons
from ai_storage_orchestrator.checkpoint.batch import REMOVE_SCRIPT
from ai_storage_orchestrator.checkpoint.manifest import serialise
from ai_storage_orchestrator.kube.exec import ExecStatus
from tests.unit.checkpoint.fakes import Call, LocalExec
from tests.unit.checkpoint.pods import workload
from tests.unit.checkpoint.saves import MIGRATION, checkpoint_root, save
from tests.unit.checkpoint.shims import Shims

JSON = dict[str, Any]


def full_pod(root: Path) -> JSON:
    return workload(
        root,
        hooks={"trainer": ["true"]},
        artifacts={"trainer": [str(root / "scratch-trainer")], "processor": [str(root / "scratch-processor")]},
    )


def old_checkpoints(root: Path, *names: str) -> None:
    for index, name in enumerate(names):
        directory = checkpoint_root(root) / name
        directory.mkdir(parents=True)
        (directory / "manifest.json").write_text("{}")
        os.utime(directory, (1_000_000 + index, 1_000_000 + index))


async def test_a_certification_checkpoint_is_one_exec(root: Path) -> None:
    transport = LocalExec()
    result = await save(root, workload(root), transport)
    assert len(transport.calls) == 1
    [call] = transport.calls
    assert (call.container, call.argv[:2], call.argv[3], call.stdin) == ("trainer", ("sh", "-c"), "checkpoint", True)
    manifest = checkpoint_root(root) / MIGRATION / "manifest.json"
    data = manifest.read_bytes()
    assert serialise(json.loads(data)) == data, "the manifest's bytes are serialise's"
    assert sorted(p.name for p in manifest.parent.iterdir()) == ["artifacts", "manifest.json"]
    assert result["saved"] is True
    assert result["retention"] == {"kept": [MIGRATION], "deleted": [], "limit": 3}


async def test_pruning_older_checkpoints_is_the_second_and_last_exec(root: Path) -> None:
    old_checkpoints(root, "old1", "old2", "old3")
    transport = LocalExec()
    result = await save(root, workload(root), transport, retention=2)
    assert len(transport.calls) == 2
    removal = transport.calls[1].argv
    assert removal[:4] == ("sh", "-c", REMOVE_SCRIPT, "remove")
    assert removal[5:] == (str(checkpoint_root(root) / "old2"), str(checkpoint_root(root) / "old1"))
    assert not (checkpoint_root(root) / "old1").exists()
    assert result["retention"] == {"kept": [MIGRATION, "old3"], "deleted": ["old2", "old1"], "limit": 2}
    assert sorted(p.name for p in checkpoint_root(root).iterdir()) == sorted([MIGRATION, "old3"])


async def test_hooks_and_artifacts_cost_one_exec_each_plus_three(root: Path) -> None:
    """Reset (one script), each hook, each copy (two execs at once: one round-trip), the checksum lists, their
    re-read, each artifact's check, the manifest with the listing (one script): 11 execs, 9 round-trips -- 19 and
    17 before."""
    transport = LocalExec()
    await save(root, full_pod(root), transport)
    assert len(transport.calls) == 11
    assert sum(1 for c in transport.calls if c.argv[:2] == ("tar", "-c")) == 2


def _entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _directory(root: Path) -> Path:
    return checkpoint_root(root) / MIGRATION


@pytest.mark.parametrize(
    ("tool", "stderr", "when", "reason", "message"),
    [
        pytest.param(
            "rm",
            "disk error",
            "true",
            reasons.WRITE_FAILED,
            "clearing {directory} failed (exit 1: disk error)",
            id="rm",
        ),
        pytest.param(
            "rm",
            "rm: cannot remove 'x': Read-only file system",
            "true",
            reasons.VOLUME_READ_ONLY,
            "clearing {directory} failed (exit 1: rm: cannot remove 'x': Read-only file system)",
            id="rm-read-only",
        ),
        pytest.param(
            "mkdir",
            "mkdir: cannot create directory 'x': Permission denied",
            "true",
            reasons.VOLUME_PERMISSION_DENIED,
            "creating {directory} failed (exit 1: mkdir: cannot create directory 'x': Permission denied)",
            id="mkdir",
        ),
        pytest.param(
            "tar",
            "tar: manifest.json.tmp: Cannot write: No space left on device",
            "true",
            reasons.VOLUME_FULL,
            "writing manifest.json.tmp failed (exit 1 (command terminated with exit code 1)): tar: manifest.json.tmp:"
            " Cannot write: No space left on device",
            id="extract",
        ),
        pytest.param(
            "mv",
            "disk error",
            "true",
            reasons.WRITE_FAILED,
            "renaming manifest.json.tmp failed (exit 1: disk error)",
            id="mv",
        ),
        pytest.param(
            "wc",
            "wc: Input/output error",
            "true",
            reasons.VERIFY_FAILED,
            "could not re-read the copied artifacts (exit 1: wc: Input/output error)",
            id="re-read",
        ),
    ],
)
async def test_each_step_of_the_one_exec_fails_with_its_own_reason(
    root: Path, shims: Shims, tool: str, stderr: str, when: str, reason: str, message: str
) -> None:
    shims.fail_once(tool, stderr, when=when)
    transport = LocalExec()
    with pytest.raises(CheckpointError) as failure:
        await save(root, workload(root), transport)
    assert failure.value.reason == reason
    assert failure.value.message == message.format(directory=_directory(root))
    assert [c.argv[0] for c in transport.calls] == ["sh", "sh"], "the script, then the clean-up"
    assert not _directory(root).exists()


async def test_a_manifest_that_differs_after_the_rename_fails_the_one_exec(root: Path, shims: Shims) -> None:
    shims.after("mv", "printf 'x' >> \"$last\"")
    with pytest.raises(CheckpointError) as failure:
        await save(root, workload(root), LocalExec())
    assert failure.value.reason == reasons.VERIFY_FAILED
    assert failure.value.details == {"path": "manifest.json", "container": ""}
    assert "differs on the volume after copying" in failure.value.message
    assert not _directory(root).exists()


async def test_a_listing_that_fails_leaves_nothing_to_prune(root: Path, shims: Shims) -> None:
    """As with ``ls`` run alone: a directory that cannot be listed holds nothing to delete; the save stands."""
    old_checkpoints(root, "old1")
    shims.fail_once("ls", "ls: cannot open directory: Permission denied")
    transport = LocalExec()
    result = await save(root, workload(root), transport, retention=1)
    assert result["saved"] is True
    assert result["retention"] == {"kept": [], "deleted": [], "limit": 1}
    assert len(transport.calls) == 1
    assert (checkpoint_root(root) / "old1").is_dir()


async def test_a_listing_cut_short_is_retention_s_error_not_the_save_s(root: Path, shims: Shims) -> None:
    shims.after("find", 'kill -9 "$PPID"')  # the script dies while listing: the manifest is written and checked
    result = await save(root, workload(root), LocalExec())
    assert result["saved"] is True
    assert (_directory(root) / "manifest.json").is_file()
    assert result["retention"]["limit"] == 3
    assert result["retention"]["error"].startswith(f"listing {checkpoint_root(root)} failed")


async def test_a_manifest_script_that_cannot_start_is_the_manifest_s_write_failure(root: Path) -> None:
    """With hooks or artifacts the manifest has its own script, after the copies: if it cannot start, the manifest's
    write failed, as when it was a bare ``tar -x``."""

    def refuse(call: Call) -> tuple[ExecStatus, bytes] | None:
        if call.argv[0] == "sh" and call.argv[3] == "checkpoint" and call.argv[5] == "1":
            return ExecStatus(None, "container not found"), b""
        return None

    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), LocalExec(faults=[refuse]))
    assert failure.value.reason == reasons.WRITE_FAILED
    assert (
        failure.value.message
        == "writing manifest.json.tmp failed (did not run: container not found): container not found"
    )


async def test_paths_are_arguments_never_script_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount path full of shell syntax is written to and listed as it is; nothing of it runs."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "v '$(mkdir injected1)' \"`mkdir injected2`\" ;mkdir injected3; *"
    (root / "shared").mkdir(parents=True)
    old_checkpoints(root, "old1", "old2")
    result = await save(root, workload(root), LocalExec(), retention=1)
    assert (checkpoint_root(root) / MIGRATION / "manifest.json").is_file()
    assert result["retention"] == {"kept": [MIGRATION], "deleted": ["old2", "old1"], "limit": 1}
    assert _entries(tmp_path) == [root.name], "nothing was created where the script ran"
