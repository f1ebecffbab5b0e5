"""PVCheckpointer.save end to end against a local fake exec: real tar/sha256sum on tmp directories, faults injected
through the exec Protocol."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from ai_storage_orchestrator.checkpoint import CheckpointError
from ai_storage_orchestrator.checkpoint import errors as reasons
from ai_storage_orchestrator.checkpoint.tarstream import TarLimits
from ai_storage_orchestrator.kube.exec import ExecError, ExecStatus
from tests.unit.checkpoint.fakes import Call, LocalExec
from tests.unit.checkpoint.pods import workload
from tests.unit.checkpoint.saves import MIGRATION, checkpoint_root, save
from tests.unit.checkpoint.shims import Shims
from tests.unit.checkpoint.tarblocks import END, member, pax_member

JSON = dict[str, Any]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def full_pod(root: Path, **kwargs: Any) -> JSON:
    marker = root / "scratch-trainer" / "hook-marker"
    return workload(
        root,
        hooks={"trainer": ["sh", "-c", f"echo quiescing; date > {marker}"]},
        artifacts={"trainer": [str(root / "scratch-trainer")], "processor": [str(root / "scratch-processor")]},
        **kwargs,
    )


async def test_saves_hooks_artifacts_and_manifest_last(root: Path) -> None:
    transport = LocalExec()
    result = await save(root, full_pod(root), transport)

    directory = checkpoint_root(root) / MIGRATION
    assert result["saved"] is True
    assert result["directory"] == str(directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert not (directory / "manifest.json.tmp").exists()
    assert result["manifestSha256"] == sha256(directory / "manifest.json")
    assert manifest["schemaVersion"] == 1
    assert manifest["migrationId"] == MIGRATION
    assert manifest["source"] == {
        "namespace": "ml",
        "pod": "trainer-pod",
        "uid": "uid-1",
        "node": "node-a",
        "specDigest": manifest["source"]["specDigest"],
    }
    assert manifest["source"]["specDigest"].startswith("sha256:")
    states = {c["name"]: (c["state"], c["exitCode"], c["action"]) for c in manifest["containers"]}
    assert states == {
        "trainer": ("running", None, "migrate"),
        "processor": ("terminated", 0, "skip"),
        "monitor": ("running", None, "migrate"),
    }
    [hook] = manifest["hooks"]
    assert hook["exitCode"] == 0
    assert hook["outputBytes"] == len("quiescing\n")
    assert "outputTail" not in hook, "hook output is the workload's: never in the manifest"
    assert hook["timedOut"] is False

    files = {a["path"]: a for a in manifest["artifacts"] if a["kind"] == "file"}
    for source in [
        root / "scratch-trainer" / "optimizer.bin",
        root / "scratch-trainer" / "nested" / "step.txt",
        root / "scratch-trainer" / "hook-marker",  # written by the hook: the hook ran before the copy
        root / "scratch-processor" / "features.npy",
    ]:
        entry = files[str(source)]
        stored = directory / entry["stored"]
        assert entry["sha256"] == sha256(source) == sha256(stored)
        assert entry["size"] == source.stat().st_size
    links = [a for a in manifest["artifacts"] if a["kind"] == "symlink"]
    assert [(a["path"], a["link"]) for a in links] == [(str(root / "scratch-trainer" / "latest"), "optimizer.bin")]
    assert manifest["totals"] == {"files": 4, "bytes": sum(f["size"] for f in files.values())}

    # The processor has terminated: its emptyDir is read through the trainer, which mounts it too.
    processor_copy = next(
        c for c in transport.calls if c.argv[:2] == ("tar", "-c") and "scratch-processor" in c.argv[-1]
    )
    assert processor_copy.container == "trainer"
    # Every copied file is listed, with its sha256, in its artifact's checksum list, which the manifest records.
    for entry in manifest["checksums"]:
        listed = directory / entry["list"]
        assert (entry["sha256"], entry["size"]) == (sha256(listed), listed.stat().st_size)
        assert entry["files"] == len(listed.read_text().splitlines())
    assert sorted(c["artifact"] for c in manifest["checksums"]) == sorted(a["path"] for a in result["artifacts"])
    # Order: reset (rm, mkdir of artifacts/ and of each artifact's parent: one script), hook, copies, checksum lists,
    # their check, verification of every file, then the manifest (extract .tmp, rename, check) as the last write,
    # with retention's listing in the same script.
    kinds = [_kind(c) for c in transport.calls]
    assert kinds == [
        "reset",
        "hook",
        *["copy", "extract"] * 2,
        "archive",
        "verify-files",
        "verify-list",
        "verify-list",
        "manifest",
    ]


def _kind(call: Call) -> str:
    argv = call.argv
    if argv[0] == "sh" and len(argv) > 5 and argv[3] == "checkpoint":
        return {("1", "0"): "reset", ("0", "1"): "manifest", ("1", "1"): "reset+manifest"}[argv[4], argv[5]]
    if argv[0] == "sh" and len(argv) > 3 and argv[3] in ("verify", "verify-list"):
        return "verify-files" if argv[3] == "verify" else "verify-list"
    if argv[0] == "sh" and len(argv) > 3 and argv[3] == "remove":
        return "rm"
    if argv[0] == "sh":
        return "hook"
    if argv[:2] == ("tar", "-c"):
        return "copy"
    if argv[:2] == ("tar", "-x"):
        return "archive" if call.stdin and argv[-1].endswith(MIGRATION) else "extract"
    if argv[0] == "mv":
        return "rename"
    return argv[0]


async def test_artifact_corrupted_after_copy_fails_verification_and_leaves_nothing(root: Path) -> None:
    def corrupt(call: Call) -> None:
        if _kind(call) == "verify-list":
            victim = Path(call.argv[4]) / "scratch-trainer" / "optimizer.bin"
            if victim.exists():
                with victim.open("r+b") as stored:
                    stored.write(bytes([stored.read(1)[0] ^ 0xFF]))
        return

    transport = LocalExec(faults=[lambda call: corrupt(call)])
    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), transport)
    assert failure.value.reason == reasons.VERIFY_FAILED
    assert "optimizer.bin has sha256" in failure.value.message
    assert "differs" in failure.value.message
    assert not (checkpoint_root(root) / MIGRATION).exists()
    assert not any(c.argv[0] == "mv" for c in transport.calls), "no manifest after a failed verification"


async def test_failing_hook_stops_before_anything_is_copied(root: Path) -> None:
    pod = workload(
        root,
        hooks={"trainer": ["sh", "-c", "echo flushing; echo disk error >&2; exit 7"]},
        artifacts={"trainer": [str(root / "scratch-trainer")]},
    )
    transport = LocalExec()
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, transport)
    assert failure.value.reason == reasons.HOOK_FAILED
    assert "exited with 7" in failure.value.message
    [hook] = failure.value.details["hooks"]
    assert hook["exitCode"] == 7
    assert hook["outputBytes"] == len("flushing\ndisk error\n")
    recorded = {k: v for k, v in hook.items() if k != "command"}  # the argv is the annotation's, not output
    assert "flushing" not in str(recorded)
    assert "disk error" not in str(recorded)
    assert not any(c.argv[:2] == ("tar", "-c") for c in transport.calls)
    assert not (checkpoint_root(root) / MIGRATION).exists()


async def test_hook_timeout(root: Path) -> None:
    pod = workload(
        root,
        hooks={"trainer": ["sleep", "30"]},
        extra_annotations={"ai-storage.io/checkpoint-hook-timeout": "0.3"},
    )
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, LocalExec())
    assert failure.value.reason == reasons.HOOK_FAILED
    [hook] = failure.value.details["hooks"]
    assert hook["timedOut"] is True
    assert hook["exitCode"] is None
    assert 0.3 <= hook["durationSeconds"] < 5


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        (b"tar: ./optimizer.bin: Cannot write: No space left on device\n", reasons.VOLUME_FULL),
        (b"tar: ./optimizer.bin: Cannot open: Read-only file system\n", reasons.VOLUME_READ_ONLY),
        (b"tar: ./optimizer.bin: Cannot open: Permission denied\n", reasons.VOLUME_PERMISSION_DENIED),
        (b"tar: ./optimizer.bin: Wrote only 2048 of 10240 bytes\n", reasons.VOLUME_FULL),
        (b"tar: ./optimizer.bin: Cannot utime: Input/output error\n", reasons.WRITE_FAILED),
    ],
)
async def test_destination_write_errors_have_precise_reasons(root: Path, stderr: bytes, reason: str) -> None:
    def refuse(call: Call) -> tuple[ExecStatus, bytes] | None:
        if call.argv[:2] == ("tar", "-x") and "artifacts" in call.argv[-1]:
            return ExecStatus(2, "command terminated with exit code 2"), stderr
        return None

    transport = LocalExec(faults=[refuse])
    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), transport)
    assert failure.value.reason == reason
    assert not (checkpoint_root(root) / MIGRATION).exists()


async def test_read_only_volume_fails_at_the_first_write(root: Path, shims: Shims) -> None:
    shims.fail_once("mkdir", "mkdir: cannot create directory '/x': Read-only file system")
    transport = LocalExec()
    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), transport)
    assert failure.value.reason == reasons.VOLUME_READ_ONLY
    assert not any(_kind(c) == "hook" for c in transport.calls), "a broken volume is found before the hooks run"


async def test_missing_artifact_is_a_copy_failure(root: Path) -> None:
    pod = workload(root, artifacts={"trainer": [str(root / "scratch-trainer" / "missing")]})
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, LocalExec())
    assert failure.value.reason == reasons.COPY_FAILED
    assert "missing" in failure.value.message


async def test_an_artifact_that_is_a_symbolic_link_fails_the_checkpoint_instead_of_keeping_the_link(
    root: Path,
) -> None:
    """Its data lies elsewhere (another volume, say): a copied link would restore to nothing."""
    elsewhere = root / "scratch-processor" / "opt.bin"
    elsewhere.write_bytes(b"optimizer state")
    link = root / "scratch-trainer" / "opt.bin"
    link.symlink_to(elsewhere)
    pod = workload(root, artifacts={"trainer": [str(link)]})
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, LocalExec())
    assert failure.value.reason == reasons.COPY_FAILED
    assert f"artifact {link} of container trainer is a symbolic link to {str(elsewhere)!r}" in failure.value.message
    assert not (checkpoint_root(root) / MIGRATION).exists(), "the partial directory is removed"


async def test_keep_failed_keeps_the_partial_directory_without_manifest(root: Path) -> None:
    pod = workload(root, hooks={"trainer": ["false"]})
    with pytest.raises(CheckpointError):
        await save(root, pod, LocalExec(), keep_failed=True)
    directory = checkpoint_root(root) / MIGRATION
    assert directory.is_dir()
    assert not (directory / "manifest.json").exists()


async def test_exec_unavailable_skips_a_manifest_only_checkpoint(root: Path) -> None:
    def no_exec(call: Call) -> tuple[ExecStatus, bytes] | None:
        return ExecStatus(None, 'no exec found for container "trainer"'), b""

    result = await save(root, workload(root), LocalExec(faults=[no_exec]))
    assert result["saved"] is False
    assert result["skipped"] == "exec_unavailable"
    assert "no exec found" in result["message"]


async def test_an_exec_with_stdin_refused_outright_skips_a_manifest_only_checkpoint(root: Path) -> None:
    """A node without exec may break an exec that streams stdin instead of answering with a status (KWOK did, in
    the fault campaign): for a checkpoint with nothing declared that is still "exec unavailable", not a failure."""

    class RefusingStdin(LocalExec):
        @contextlib.asynccontextmanager
        async def session(self, **kwargs: Any) -> AsyncIterator[Any]:
            if kwargs.get("stdin"):
                raise ExecError("HTTP 500 Invalid response status")
            async with super().session(**kwargs) as session:
                yield session

    result = await save(root, workload(root), RefusingStdin())
    assert result["skipped"] == "exec_unavailable"
    assert result["message"] == (
        "cannot run commands in container trainer: exec failed: HTTP 500 Invalid response status"
    )
    with pytest.raises(CheckpointError) as failure:  # declared work: a refused exec is a failure, as before
        await save(root, full_pod(root), RefusingStdin())
    assert failure.value.reason == reasons.EXEC_FAILED


async def test_exec_unavailable_fails_when_hooks_or_artifacts_are_declared(root: Path) -> None:
    def no_exec(call: Call) -> tuple[ExecStatus, bytes] | None:
        return ExecStatus(None, 'no exec found for container "trainer"'), b""

    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), LocalExec(faults=[no_exec]))
    assert failure.value.reason == reasons.EXEC_FAILED


async def test_no_running_container_to_write_with(root: Path) -> None:
    pod = full_pod(root)
    for status in pod["status"]["containerStatuses"]:
        status["state"] = {"terminated": {"exitCode": 0}}
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, LocalExec())
    assert failure.value.reason == reasons.NO_RUNNING_CONTAINER


async def test_out_of_time(root: Path) -> None:
    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), LocalExec(), time_left=0)
    assert failure.value.reason == reasons.TIMED_OUT


async def test_retention_after_a_save(root: Path) -> None:
    base = checkpoint_root(root)
    for index, name in enumerate(["old1", "old2", "old3", "failed1", "inuse1", "partial1", "running1"]):
        directory = base / name
        directory.mkdir(parents=True)
        if name != "partial1":
            (directory / "manifest.json").write_text("{}")
        os.utime(directory, (1_000_000 + index, 1_000_000 + index))
    (base / "not-a-migration.txt").write_text("left alone")
    phases = {"old1": "Completed", "failed1": "Failed", "running1": "CreatingTarget", "inuse1": "Failed"}
    result = await save(root, full_pod(root), LocalExec(), retention=3, phases=phases, in_use=frozenset({"inuse1"}))
    remaining = sorted(p.name for p in base.iterdir())
    # Retention 3 counts this checkpoint and the two newest completed ones (old3, old2); the one in use and the
    # running migration's are kept besides; old1 is older, failed1 failed, partial1 has no manifest.
    assert remaining == sorted([MIGRATION, "inuse1", "running1", "old3", "old2", "not-a-migration.txt"])
    assert sorted(result["retention"]["deleted"]) == ["failed1", "old1", "partial1"]


class StreamingSource(LocalExec):
    """The fake exec, except that the source container's ``tar -c`` writes the bytes of ``stream`` instead (a hostile
    or broken container)."""

    def __init__(self, stream: Path) -> None:
        super().__init__()
        self.stream = stream

    def session(self, *, argv: Sequence[str], **kwargs: Any) -> AbstractAsyncContextManager[Any]:
        if tuple(argv[:2]) == ("tar", "-c"):
            argv = ["cat", str(self.stream)]
        return super().session(argv=argv, **kwargs)


def trainer_artifact(root: Path) -> JSON:
    return workload(root, artifacts={"trainer": [str(root / "scratch-trainer")]})


async def test_a_malformed_pax_header_is_a_copy_failure_and_leaves_nothing(root: Path) -> None:
    """int() of a pax record's length used to escape as a bare ValueError: no reason, the step retried until the
    migration timed out, the partial directory left behind."""
    stream = root / "stream.tar"
    stream.write_bytes(pax_member(b"abc path=./scratch-trainer/x\n", name="./scratch-trainer/x") + END)
    with pytest.raises(CheckpointError) as failure:
        await save(root, trainer_artifact(root), StreamingSource(stream))
    assert failure.value.reason == reasons.COPY_FAILED
    assert "not a valid tar archive" in failure.value.message
    assert "pax" in failure.value.message
    assert not (checkpoint_root(root) / MIGRATION).exists()


async def test_a_name_longer_than_4096_bytes_is_too_large_and_leaves_nothing(root: Path) -> None:
    stream = root / "stream.tar"
    stream.write_bytes(member("./scratch-trainer/" + ("d" * 200 + "/") * 21 + "f", b"x") + END)
    with pytest.raises(CheckpointError) as failure:
        await save(root, trainer_artifact(root), StreamingSource(stream))
    assert failure.value.reason == "checkpoint_too_large"
    assert failure.value.details == {"limit": "name", "allowed": 4097}
    assert not (checkpoint_root(root) / MIGRATION).exists()


async def test_more_entries_than_the_limit_is_too_large_and_leaves_nothing(root: Path) -> None:
    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), LocalExec(), limits=TarLimits(max_entries=4))
    assert failure.value.reason == reasons.TOO_LARGE
    assert "more than 4 entries" in failure.value.message
    assert not (checkpoint_root(root) / MIGRATION).exists()


async def test_namespaces_that_share_an_export_and_a_pod_name_keep_their_own_checkpoints(root: Path) -> None:
    ours = full_pod(root)
    theirs = copy.deepcopy(ours)
    theirs["metadata"]["namespace"] = "other"
    first = await save(root, ours, LocalExec(), migration="m1")
    second = await save(root, theirs, LocalExec(), migration="m2", retention=1)
    assert (Path(first["directory"]) / "manifest.json").is_file(), "the other namespace's retention left it alone"
    assert second["retention"] == {"kept": ["m2"], "deleted": [], "limit": 1}
    assert first["directory"] == str(checkpoint_root(root, "ml") / "m1")
    assert second["directory"] == str(checkpoint_root(root, "other") / "m2")


async def test_a_checkpoint_prepared_in_the_legacy_layout_is_saved_there_without_retention(root: Path) -> None:
    """A migration prepared before the upgrade recorded a directory without namespace: its target pod restores from
    there, so it is saved there -- but its parent may hold other namespaces' checkpoints: no retention."""
    pod = full_pod(root)
    legacy = root / "shared" / ".ai-storage" / "checkpoints" / "trainer-pod"
    neighbour = legacy / "theirs1"
    neighbour.mkdir(parents=True)
    (neighbour / "manifest.json").write_text("{}")

    def legacy_layout(status: JSON) -> JSON:
        directory = str(legacy / MIGRATION)
        return {**status, "directory": directory, "location": {**status["location"], "directory": directory}}

    result = await save(root, pod, LocalExec(), rewrite=legacy_layout, retention=1)
    assert result["directory"] == str(legacy / MIGRATION)
    assert (legacy / MIGRATION / "manifest.json").is_file()
    assert (neighbour / "manifest.json").is_file()
    assert result["retention"]["skipped"] == "legacy layout: not namespaced"


async def test_a_manifest_that_differs_on_the_volume_after_writing_fails_the_save(root: Path, shims: Shims) -> None:
    """The manifest is re-read after its rename: a checkpoint whose manifest.json is not what was streamed (a short
    write, a volume that lost it) is not complete and must not be used."""

    shims.after("mv", 'head -c -2 "$last" > "$last.short" && REAL "$last.short" "$last"')  # truncated
    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), LocalExec())
    assert failure.value.reason == reasons.VERIFY_FAILED
    assert "manifest.json" in failure.value.message
    assert not (checkpoint_root(root) / MIGRATION).exists(), "the failed checkpoint is removed"
