"""The checkpoint's shell scripts (checkpoint/batch.py) with real sh, find, rm and tar: what their exit says when a
tool fails, and what a non-root writer can remove."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_storage_orchestrator.checkpoint.batch import SCRIPT, remove_argv

pytestmark = pytest.mark.unit
NOBODY = 65534


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory another user may enter (pytest's own temp dirs are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="aiso-batch-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _empty_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w"):
        pass
    return buffer.getvalue()


def test_a_listing_whose_find_fails_is_a_failed_listing_not_a_short_one(shared: Path) -> None:
    """Retention deletes what the listing does not show as finished: a `find` that failed half-way must say so."""
    root = shared / "checkpoints"
    kept = root / "m0"
    kept.mkdir(parents=True)
    (kept / "manifest.json").write_text("{}")
    current = root / "m1"
    current.mkdir()
    (current / "manifest.json.tmp").write_text("{}")
    tools = shared / "bin"
    tools.mkdir()
    (tools / "find").write_text("#!/bin/sh\necho 'find: cannot read directory' >&2\nexit 1\n")
    (tools / "find").chmod(0o755)
    argv = ["sh", "-c", SCRIPT, "checkpoint", "0", "1", str(shared), str(current)]
    argv += [str(current / "manifest.json.tmp"), str(current / "manifest.json"), str(root), "manifest.json"]
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}
    done = subprocess.run(argv, input=_empty_tar(), capture_output=True, env=env, check=False)
    assert done.returncode != 0, "a partial listing would delete the checkpoints it left out"
    assert done.stdout.rsplit(b"\0", 1)[-1].startswith(b"found")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the files to another user")
def test_a_non_root_writer_removes_a_checkpoint_holding_a_read_only_directory(shared: Path) -> None:
    """An artifact copied with its 0555 mode: `rm -rf` as its non-root owner fails without `writable`."""
    checkpoint = shared / "m0"
    locked = checkpoint / "artifacts" / "frozen"
    locked.mkdir(parents=True)
    (locked / "weights.bin").write_bytes(b"w")
    for path in [shared, checkpoint, *checkpoint.rglob("*")]:
        os.chown(path, NOBODY, NOBODY)
    locked.chmod(0o555)
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    done = subprocess.run(
        [*drop, *remove_argv(base=str(shared), paths=[str(checkpoint)])], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert not checkpoint.exists()
