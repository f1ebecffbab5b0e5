"""Fixtures of the checkpoint tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.checkpoint.shims import Shims


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A host directory standing in for `pods.workload`'s volumes: shared/, and the trainer's and processor's
    emptyDirs with some state."""
    (tmp_path / "shared").mkdir()
    scratch = tmp_path / "scratch-trainer"
    (scratch / "nested").mkdir(parents=True)
    (scratch / "optimizer.bin").write_bytes(os.urandom(300_000))
    (scratch / "nested" / "step.txt").write_text("step 41\n")
    (scratch / "latest").symlink_to("optimizer.bin")
    (tmp_path / "scratch-processor").mkdir()
    (tmp_path / "scratch-processor" / "features.npy").write_bytes(os.urandom(5000))
    return tmp_path


@pytest.fixture
def shims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shims:
    """Stand-in tools first on PATH, for the commands the combined checkpoint script runs."""
    return Shims(tmp_path / "shims", monkeypatch)
