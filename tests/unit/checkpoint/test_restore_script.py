"""The restore script (checkpoint/restoring.py RESTORE_SCRIPT) run for real on a checkpoint built by hand: it runs
once per pod (a restarted sandbox does not put old state back over newer), restores into a mount point it does not
own (a non-root container's emptyDir), and overwrites read-only files a first, interrupted run left behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_storage_orchestrator.checkpoint.checksums import checksum_line
from ai_storage_orchestrator.checkpoint.layout import checksum_list
from ai_storage_orchestrator.checkpoint.restoring import RESTORE_SCRIPT, RESTORE_STATE_ENV

pytestmark = pytest.mark.unit
CONTAINER = "trainer"
NOBODY = 65534


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory everyone may traverse (the non-root run needs to), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="aiso-restore-") as name:
        os.chmod(name, 0o755)
        yield Path(name)


def checkpoint(world: Path, artifact: Path, files: dict[str, bytes]) -> tuple[Path, str]:
    """A checkpoint of `artifact` (a directory holding `files`): its directory, and the checksum list's name."""
    directory = world / "checkpoint"
    stored = directory / "artifacts" / CONTAINER / artifact.relative_to("/")
    stored.mkdir(parents=True)
    lines = b""
    for name, content in files.items():
        (stored / name).write_bytes(content)
        lines += checksum_line(hashlib.sha256(content).hexdigest(), f"{artifact.name}/{name}")
    listed = checksum_list(CONTAINER, str(artifact))
    (directory / listed).parent.mkdir(parents=True)
    (directory / listed).write_bytes(lines)
    (directory / "manifest.json").write_text("{}")
    for path in [directory, *directory.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory, listed


def restore(
    directory: Path, artifact: Path, listed: str, *, state: Path | None = None, user: int | None = None
) -> subprocess.CompletedProcess[str]:
    argv = ["sh", "-c", RESTORE_SCRIPT, "ai-storage-restore", str(directory), CONTAINER, str(artifact), listed]
    env = {"PATH": os.environ["PATH"], **({RESTORE_STATE_ENV: str(state)} if state is not None else {})}
    return subprocess.run(argv, capture_output=True, text=True, check=False, env=env, user=user)


def test_a_second_run_in_the_same_pod_keeps_what_the_container_wrote_since(world: Path) -> None:
    artifact, state = world / "ckpt", world / "state"
    artifact.mkdir()
    state.mkdir()
    directory, listed = checkpoint(world, artifact, {"latest": b"step-1000"})
    first = restore(directory, artifact, listed, state=state)
    assert first.returncode == 0, first.stderr
    (artifact / "latest").write_bytes(b"step-5000")  # the trainer went on
    again = restore(directory, artifact, listed, state=state)  # the sandbox was recreated: init containers run again
    assert again.returncode == 0, again.stderr
    assert "restored in this pod already" in again.stderr
    assert (artifact / "latest").read_bytes() == b"step-5000"


def test_read_only_files_of_an_earlier_run_are_overwritten(world: Path) -> None:
    artifact = world / "ckpt"
    artifact.mkdir()
    artifact.chmod(0o777)
    directory, listed = checkpoint(world, artifact, {"model": b"weights"})
    (directory / "artifacts" / CONTAINER / artifact.relative_to("/") / "model").chmod(0o444)
    user = NOBODY if os.geteuid() == 0 else None
    for _ in range(2):  # without a record (an interrupted first run): the second meets the first one's 0444 file
        run = restore(directory, artifact, listed, user=user)
        assert run.returncode == 0, run.stderr
    assert (artifact / "model").read_bytes() == b"weights"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a mount point owned by another user than the restore's")
def test_a_non_root_restore_fills_a_mount_point_it_does_not_own(world: Path) -> None:
    artifact = world / "ckpt"  # as the kubelet makes an emptyDir: root's, mode 0777
    artifact.mkdir()
    artifact.chmod(0o777)
    directory, listed = checkpoint(world, artifact, {"state": b"s", ".hidden": b"h"})
    run = restore(directory, artifact, listed, user=NOBODY)
    assert run.returncode == 0, run.stderr
    assert (artifact / "state").read_bytes() == b"s"
    assert (artifact / ".hidden").read_bytes() == b"h"
    assert artifact.stat().st_uid == 0, "the mount point's owner stays"


def test_a_name_with_a_backslash_is_checked_where_sha256sum_cannot_read_escaped_lines(world: Path) -> None:
    """busybox's sha256sum -c does not read GNU's escaped lines: the script's own loop checks them."""
    artifact = world / "ckpt"
    artifact.mkdir()
    directory, listed = checkpoint(world, artifact, {"we ird\\name": b"x", "plain": b"y"})
    shims = world / "bin"
    shims.mkdir()
    (shims / "sha256sum").write_text('#!/bin/sh\nif [ "$1" = -c ]; then exit 1; fi\nexec /usr/bin/sha256sum "$@"\n')
    (shims / "sha256sum").chmod(0o755)
    argv = ["sh", "-c", RESTORE_SCRIPT, "ai-storage-restore", str(directory), CONTAINER, str(artifact), listed]
    env = {"PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert run.returncode == 0, run.stderr
    assert (artifact / "we ird\\name").read_bytes() == b"x"
    (artifact / "we ird\\name").write_bytes(b"changed")
    (directory / "manifest.json").touch()
    again = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert again.returncode == 0, "restored again: the copy is put back and checked"
