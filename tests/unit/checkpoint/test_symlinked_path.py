"""A symbolic link planted in the checkpoint's path on the shared volume (by a pod of another namespace that mounts
the same export) never sends the checkpoint's reset, writes or retention elsewhere in the writer's container: the
checkpoint fails as `checkpoint_path_unsafe` and nothing outside the volume is touched. Real sh, rm, tar and find."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ai_storage_orchestrator.checkpoint import CheckpointError
from ai_storage_orchestrator.checkpoint import errors as reasons
from ai_storage_orchestrator.checkpoint.batch import remove_argv
from tests.unit.checkpoint.fakes import LocalExec
from tests.unit.checkpoint.pods import workload
from tests.unit.checkpoint.saves import checkpoint_root, save

pytestmark = pytest.mark.unit


def private_files(root: Path) -> Path:
    """A directory of the writer's container outside the shared volume, holding the workload's own data."""
    private = root / "models"
    for name in ("llama-7b", "epoch-12"):
        (private / name).mkdir(parents=True)
        (private / name / "weights.bin").write_bytes(b"w")
    return private


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("planted", ["trainer-pod", "checkpoints", "namespaces", ".ai-storage"])
async def test_a_link_anywhere_in_the_path_fails_the_checkpoint_and_touches_nothing(root: Path, planted: str) -> None:
    private = private_files(root)
    before = tree(private)
    workload_dir = checkpoint_root(root)
    link = next(p for p in [workload_dir, *workload_dir.parents] if p.name == planted)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(private, target_is_directory=True)
    with pytest.raises(CheckpointError) as failure:
        await save(root, workload(root), LocalExec(), retention=1)
    assert failure.value.reason == reasons.PATH_UNSAFE
    assert f"{link} is a symbolic link" in failure.value.message
    assert tree(private) == before


def test_the_removal_refuses_a_path_under_a_link(root: Path) -> None:
    private = private_files(root)
    base = root / "shared"
    (base / "checkpoints").mkdir(parents=True)
    (base / "checkpoints" / "trainer-pod").symlink_to(private, target_is_directory=True)
    removed = subprocess.run(
        remove_argv(base=str(base), paths=[str(base / "checkpoints" / "trainer-pod" / "llama-7b")]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert removed.returncode == 40
    assert "is a symbolic link" in removed.stderr
    assert (private / "llama-7b" / "weights.bin").exists()


def test_the_removal_removes_real_directories_and_a_planted_link_itself_only(root: Path) -> None:
    private = private_files(root)
    store = root / "shared" / "checkpoints"
    (store / "old1").mkdir(parents=True)
    (store / "old2").symlink_to(private, target_is_directory=True)
    removed = subprocess.run(
        remove_argv(base=str(root / "shared"), paths=[str(store / "old1"), str(store / "old2")]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert removed.returncode == 0, removed.stderr
    assert sorted(p.name for p in store.iterdir()) == []
    assert (private / "llama-7b" / "weights.bin").exists()
