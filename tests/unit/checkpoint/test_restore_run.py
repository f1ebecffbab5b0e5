"""The restore init containers' commands, run here after a real save (as the kubelet would run them on the target):
every artifact comes back and is checked against the manifest's sha256; anything else fails the init container."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.unit.checkpoint.fakes import LocalExec
from tests.unit.checkpoint.pods import workload
from tests.unit.checkpoint.saves import prepare_and_save

JSON = dict[str, Any]


async def saved(root: Path) -> tuple[JSON, Path]:
    """The target pod and the checkpoint directory of a save of the trainer's and the processor's emptyDirs."""
    pod = workload(
        root,
        artifacts={"trainer": [str(root / "scratch-trainer")], "processor": [str(root / "scratch-processor")]},
    )
    target, result = await prepare_and_save(root, pod, LocalExec())
    return target, Path(result["directory"])


def on_the_target(root: Path) -> dict[Path, bytes]:
    """Empty the emptyDirs, as they are on a new node; what they held before."""
    before: dict[Path, bytes] = {}
    for directory in (root / "scratch-trainer", root / "scratch-processor"):
        before |= {p: p.read_bytes() for p in directory.rglob("*") if p.is_file() and not p.is_symlink()}
        shutil.rmtree(directory)
        directory.mkdir()
    return before


def restore(target: JSON) -> list[subprocess.CompletedProcess[str]]:
    return [
        subprocess.run(init["command"], capture_output=True, text=True, check=False)
        for init in target["spec"]["initContainers"]
    ]


def stored(directory: Path, name: str) -> Path:
    manifest = json.loads((directory / "manifest.json").read_text())
    stored_as: str = next(a["stored"] for a in manifest["artifacts"] if a["path"].endswith(name))
    return directory / stored_as


async def test_every_artifact_comes_back_checked(root: Path) -> None:
    target, _ = await saved(root)
    before = on_the_target(root)
    for run in [*restore(target), *restore(target)]:  # twice: an init container may run again
        assert run.returncode == 0, run.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert os.readlink(root / "scratch-trainer" / "latest") == "optimizer.bin"
    assert not (root / "scratch-trainer" / "scratch-trainer").exists(), "copied into the directory, not below it"


async def test_a_file_that_differs_from_the_manifest_fails_the_restore(root: Path) -> None:
    target, directory = await saved(root)
    with stored(directory, "/optimizer.bin").open("r+b") as changed:  # bit rot, or a writer, after the save
        changed.write(b"\0")
    on_the_target(root)
    trainer, processor = restore(target)
    assert trainer.returncode == 1
    assert "optimizer.bin has sha256" in trainer.stderr
    assert "the checkpoint manifest says" in trainer.stderr
    assert processor.returncode == 0, processor.stderr


async def test_a_file_missing_from_the_checkpoint_fails_the_restore(root: Path) -> None:
    target, directory = await saved(root)
    stored(directory, "/step.txt").unlink()
    on_the_target(root)
    trainer, _ = restore(target)
    assert trainer.returncode == 1
    assert "step.txt is missing" in trainer.stderr


async def test_a_directory_without_its_manifest_is_not_restored(root: Path) -> None:
    target, directory = await saved(root)
    (directory / "manifest.json").unlink()
    on_the_target(root)
    for run in restore(target):
        assert run.returncode == 1
        assert "not a complete checkpoint" in run.stderr
    assert not any((root / "scratch-trainer").iterdir()), "nothing copied from an incomplete checkpoint"
