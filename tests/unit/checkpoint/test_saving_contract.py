"""What PVCheckpointer.prepare and save hand back, record and log -- the status the controller stores, the manifest's
header, the log events docs/logging.md lists -- where every command runs, and the exact failure of each step. Real
tar/sha256sum on tmp directories through the local fake exec; the clocks are fixed so durations are exact."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog

from ai_storage_orchestrator.checkpoint import (
    CheckpointError,
    CheckpointJob,
    InvalidCheckpointAnnotation,
    PVCheckpointer,
    copying,
    saving,
)
from ai_storage_orchestrator.checkpoint import errors as reasons
from ai_storage_orchestrator.checkpoint.tarstream import TarLimits
from ai_storage_orchestrator.kube.exec import ExecError, ExecStatus
from tests.unit.checkpoint.fakes import Call, LocalExec
from tests.unit.checkpoint.pods import DECISIONS, SHARED, target_of, volume, workload
from tests.unit.checkpoint.saves import MIGRATION, checkpoint_root, prepare_and_save, save
from tests.unit.checkpoint.shims import Shims

JSON = dict[str, Any]
COPY_STEP = 0.12345  # seconds each artifact stream takes on the fixed clock
SAVE_STEP = 1.23456  # seconds the whole save takes


class SteppingTime:
    """Stands in for the ``time`` module of one checkpoint module: monotonic() advances ``step`` per call."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def monotonic(self) -> float:
        self.now += self.step
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0


@pytest.fixture
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(saving, "time", SteppingTime(SAVE_STEP))
    monkeypatch.setattr(copying, "time", SteppingTime(COPY_STEP))


def ticking_clock() -> Iterator[str]:
    return (f"2024-05-01T10:00:0{n}.000000Z" for n in itertools.count())


class Recording(LocalExec):
    """The local fake exec, noting which namespace, pod and container each command is sent to."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.targets: list[tuple[str, str, str]] = []

    def session(
        self, *, namespace: str, pod: str, container: str, argv: Sequence[str], stdin: bool = False
    ) -> AbstractAsyncContextManager[Any]:
        self.targets.append((namespace, pod, container))
        return super().session(namespace=namespace, pod=pod, container=container, argv=argv, stdin=stdin)


def full_pod(root: Path) -> JSON:
    return workload(
        root,
        hooks={"trainer": ["sh", "-c", f"echo quiescing; date > {root / 'scratch-trainer' / 'hook-marker'}"]},
        artifacts={"trainer": [str(root / "scratch-trainer")], "processor": [str(root / "scratch-processor")]},
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()]


def _stream_size(argvs: list[tuple[str, ...]]) -> int:
    """What the copies' ``tar -c`` commands write, run again on the same files."""
    return sum(len(subprocess.run(argv, capture_output=True, check=True).stdout) for argv in argvs)


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[JSON]:
    return [
        {k: v for k, v in entry.items() if k not in ("event", "log_level")} for entry in logs if entry["event"] == name
    ]


@pytest.mark.usefixtures("fixed_time")
async def test_a_save_reports_everything_it_did(root: Path) -> None:
    transport = Recording()
    clock = ticking_clock()
    with structlog.testing.capture_logs() as logs:
        _, result = await prepare_and_save(root, full_pod(root), transport, clock=lambda: next(clock))

    directory = checkpoint_root(root) / MIGRATION
    trainer, processor = root / "scratch-trainer", root / "scratch-processor"
    trainer_bytes = sum(p.stat().st_size for p in files_under(trainer))
    copied = trainer_bytes + 5000
    streamed = _stream_size([c.argv for c in transport.calls if c.argv[:2] == ("tar", "-c")])
    assert {k: v for k, v in result.items() if k not in ("hooks", "throughputBytesPerSecond")} == {
        "saved": True,
        "directory": str(directory),
        "manifest": str(directory / "manifest.json"),
        "manifestSha256": sha256(directory / "manifest.json"),
        "writtenBy": "trainer",
        "artifacts": [
            {"container": "trainer", "path": str(trainer), "files": 3, "bytes": trainer_bytes},
            {"container": "processor", "path": str(processor), "files": 1, "bytes": 5000},
        ],
        "bytesCopied": copied,
        "streamBytes": streamed,
        "copySeconds": round(2 * COPY_STEP, 3),
        "durationSeconds": round(SAVE_STEP, 3),
        "createdAt": "2024-05-01T10:00:00.000000Z",
        "finishedAt": "2024-05-01T10:00:02.000000Z",
        "retention": {"kept": [MIGRATION], "deleted": [], "limit": 3},
    }
    assert result["throughputBytesPerSecond"] == pytest.approx(streamed / (2 * COPY_STEP), abs=1)
    [hook] = result["hooks"]
    assert (hook["container"], hook["exitCode"], hook["startedAt"]) == ("trainer", 0, "2024-05-01T10:00:01.000000Z")

    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["orchestrator"] == {"version": "test"}
    assert manifest["target"] == {"node": "node-b", "strategy": "checkpoint-restart"}
    assert (manifest["createdAt"], manifest["finishedAt"]) == (result["createdAt"], result["finishedAt"])
    assert manifest["location"] == {
        "volume": SHARED,
        "container": "trainer",
        "mountPath": str(root / "shared"),
        "directory": str(directory),
        "podBase": "trainer-pod",
        "writtenBy": "trainer",
    }
    assert manifest["totals"] == {"files": 4, "bytes": copied}
    assert [(c["container"], c["artifact"], c["files"]) for c in manifest["checksums"]] == [
        ("trainer", str(trainer), 3),
        ("processor", str(processor), 1),
    ]
    assert sorted(p.name for p in directory.iterdir()) == ["artifacts", "checksums", "manifest.json"]
    assert sorted(p.name for p in (directory / "checksums").iterdir()) == ["processor", "trainer"]

    # Every command goes to the source pod, and to the running trainer: it writes the volume, runs its hook and
    # reads the terminated processor's emptyDir, which it mounts too.
    assert set(transport.targets) == {("ml", "trainer-pod", "trainer")}

    copies = events(logs, "checkpoint.artifact_copied")
    assert copies == [
        {"container": "trainer", "path": str(trainer), "files": 3, "bytes": trainer_bytes, "seconds": 0.123},
        {"container": "processor", "path": str(processor), "files": 1, "bytes": 5000, "seconds": 0.123},
    ]
    assert events(logs, "checkpoint.saved") == [{"directory": str(directory), "files": 4, "bytes": copied}]


async def test_without_a_shared_volume_only_the_hooks_run(root: Path) -> None:
    pod = workload(root, hooks={"trainer": ["true"]})
    transport = Recording()
    checkpointer = PVCheckpointer(transport, version="test", clock=lambda: "2024-05-01T10:00:00.000000Z")
    spec = checkpointer.declared(pod)
    target, status = checkpointer.prepare(
        source_pod=pod,
        target_pod=target_of(pod),
        migration_id=MIGRATION,
        pod_base="trainer-pod",
        volume=None,
        spec=spec,
    )
    assert target == target_of(pod)
    assert status == {"volume": None, "saved": False, "declared": spec.to_json()}
    result = await checkpointer.save(_job(pod, status))
    [hook] = result.pop("hooks")
    assert result == {"saved": False, "note": "no shared volume: nothing written"}
    assert (hook["command"], hook["exitCode"], hook["startedAt"]) == (["true"], 0, "2024-05-01T10:00:00.000000Z")
    assert transport.targets == [("ml", "trainer-pod", "trainer")]


def _job(pod: JSON, checkpoint: JSON, *, time_left: float = 60.0) -> CheckpointJob:
    return CheckpointJob(
        migration_id=MIGRATION,
        namespace="ml",
        pod=pod,
        checkpoint=checkpoint,
        decisions=DECISIONS,
        target_node="node-b",
        strategy="checkpoint-restart",
        time_left=time_left,
    )


def _prepare(pod: JSON, root: Path, **volume_overrides: str) -> tuple[JSON, JSON]:
    checkpointer = PVCheckpointer(LocalExec())
    return checkpointer.prepare(
        source_pod=pod,
        target_pod=target_of(pod),
        migration_id=MIGRATION,
        pod_base="trainer-pod",
        volume={**volume(root), **volume_overrides},
        spec=checkpointer.declared(pod),
    )


def test_artifacts_without_a_shared_volume_are_refused(root: Path) -> None:
    pod = workload(root, artifacts={"trainer": [str(root / "scratch-trainer")]})
    checkpointer = PVCheckpointer(LocalExec())
    with pytest.raises(CheckpointError) as failure:
        checkpointer.prepare(
            source_pod=pod,
            target_pod=target_of(pod),
            migration_id=MIGRATION,
            pod_base="trainer-pod",
            volume=None,
            spec=checkpointer.declared(pod),
        )
    assert failure.value.reason == reasons.NO_SHARED_VOLUME
    assert failure.value.message == (
        "the pod declares checkpoint artifacts but has no shared volume (NFS or ReadWriteMany PVC) to save them on"
    )


def test_an_artifact_already_on_the_shared_volume_is_refused(root: Path) -> None:
    pod = workload(root, artifacts={"monitor": [str(root / "shared" / "models")]})
    with pytest.raises(InvalidCheckpointAnnotation) as failure:
        _prepare(pod, root)
    assert failure.value.message == (
        f"annotation ai-storage.io/checkpoint-artifacts.monitor: {root / 'shared' / 'models'} is on the shared volume"
        f" '{SHARED}' already; list only paths the move would lose"
    )
    assert failure.value.details["annotation"] == "ai-storage.io/checkpoint-artifacts.monitor"


def test_prepare_records_where_the_checkpoint_goes(root: Path) -> None:
    pod = workload(root, artifacts={"trainer": [str(root / "scratch-trainer")]})
    _, status = _prepare(pod, root)
    directory = str(checkpoint_root(root) / MIGRATION)
    assert status["volume"] == volume(root)
    assert status["saved"] is False
    assert status["location"] == {
        "volume": SHARED,
        "container": "trainer",
        "mountPath": str(root / "shared"),
        "directory": directory,
        "podBase": "trainer-pod",
    }
    assert status["directory"] == directory
    assert status["restore"]


def test_the_location_follows_planning_s_container_and_the_pod_s_namespace(root: Path) -> None:
    pod = workload(root)
    del pod["metadata"]["namespace"]
    pod["spec"]["containers"][2]["volumeMounts"] = [{"name": SHARED, "mountPath": "/monitor-shared"}]
    _, status = _prepare(pod, root, container="monitor")
    assert status["location"]["container"] == "monitor"
    assert status["location"]["mountPath"] == "/monitor-shared"
    assert status["directory"] == f"/monitor-shared/.ai-storage/namespaces/default/checkpoints/trainer-pod/{MIGRATION}"


def test_a_shared_volume_mounted_only_with_sub_path_expr_has_no_place_for_a_checkpoint(root: Path) -> None:
    pod = workload(root)
    for container in pod["spec"]["containers"]:
        for mount in container["volumeMounts"]:
            if mount["name"] == SHARED:
                mount["subPathExpr"] = "$(POD_NAME)"
    with pytest.raises(CheckpointError) as failure:
        _prepare(pod, root)
    assert failure.value.reason == reasons.NO_SHARED_VOLUME
    assert failure.value.message == (
        f"the shared volume '{SHARED}' is mounted only with subPathExpr, whose path only the kubelet knows: there is"
        " no place to put the checkpoint that the target pod would find"
    )


async def test_a_running_container_that_is_not_planning_s_writes_when_planning_s_has_stopped(root: Path) -> None:
    pod = workload(root, hooks={"trainer": ["true"]})
    transport = Recording()
    result = await save(
        root,
        pod,
        transport,
        rewrite=lambda status: {**status, "location": {**status["location"], "container": "processor"}},
    )
    assert result["writtenBy"] == "trainer"
    assert {container for _, _, container in transport.targets} == {"trainer"}


def _stopped(pod: JSON) -> JSON:
    for status in pod["status"]["containerStatuses"]:
        status["state"] = {"terminated": {"exitCode": 0}}
    return pod


async def test_without_a_running_writer_a_manifest_only_checkpoint_is_skipped(root: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        result = await save(root, _stopped(workload(root)), Recording())
    message = f"no running container of pod trainer-pod mounts volume '{SHARED}' read-write"
    assert result == {"saved": False, "skipped": "no_running_writer", "message": message}
    assert events(logs, "checkpoint.skipped") == [
        {"migration_id": MIGRATION, "reason": "no_running_writer", "message": message}
    ], "not exec_unavailable: no exec was tried, so it says nothing of the node"


async def test_without_a_running_writer_declared_work_fails(root: Path) -> None:
    with pytest.raises(CheckpointError) as failure:
        await save(root, _stopped(workload(root, hooks={"trainer": ["true"]})), Recording())
    assert failure.value.reason == reasons.NO_RUNNING_CONTAINER
    assert failure.value.message == f"no running container of pod trainer-pod mounts volume '{SHARED}' read-write"


async def test_an_artifact_no_running_container_can_read_fails(root: Path) -> None:
    pod = workload(root, artifacts={"processor": ["/opt/features"]})
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, Recording())
    assert failure.value.reason == reasons.NO_RUNNING_CONTAINER
    assert failure.value.message == (
        "no running container of pod trainer-pod can read artifact /opt/features of container processor"
    )
    assert not (checkpoint_root(root) / MIGRATION).exists()


async def test_no_time_left_is_refused_before_any_command(root: Path) -> None:
    transport = Recording()
    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), transport, time_left=0)
    assert failure.value.reason == reasons.TIMED_OUT
    assert failure.value.message == "the migration ran out of time before its checkpoint"
    assert [c.argv[3] for c in transport.calls] == ["remove"], "nothing but the clean-up ran"


async def test_less_than_a_second_left_is_still_time(root: Path) -> None:
    result = await save(root, workload(root, hooks={"trainer": ["true"]}), Recording(), time_left=0.9)
    assert result["saved"] is True


class Hanging(LocalExec):
    """Hooks never finish; every other command runs."""

    def session(self, **kwargs: Any) -> AbstractAsyncContextManager[Any]:
        if kwargs["argv"][0] != "sh":
            return super().session(**kwargs)
        return self._never(**kwargs)

    @asynccontextmanager
    async def _never(self, **kwargs: Any) -> AsyncIterator[Any]:
        self.calls.append(Call(kwargs["container"], tuple(kwargs["argv"]), kwargs.get("stdin", False)))
        yield _Never()


class _Never:
    status = None

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        await asyncio.Event().wait()
        yield 1, b""


async def test_a_save_that_outlasts_the_time_left_times_out(root: Path) -> None:
    transport = Hanging()
    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), transport, time_left=0.05)
    assert failure.value.reason == reasons.TIMED_OUT
    assert failure.value.message == "the checkpoint did not finish within the 0s left of the migration's timeout"


class Broken(LocalExec):
    """The exec channel itself fails."""

    def session(self, **kwargs: Any) -> AbstractAsyncContextManager[Any]:
        self.calls.append(Call(kwargs["container"], tuple(kwargs["argv"]), kwargs.get("stdin", False)))
        raise ExecError("connection reset by peer")


async def test_a_broken_exec_fails_the_save_and_the_cleanup_is_logged(root: Path) -> None:
    with structlog.testing.capture_logs() as logs, pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), Broken())
    assert failure.value.reason == reasons.EXEC_FAILED
    assert failure.value.message == "exec failed: connection reset by peer"
    assert events(logs, "checkpoint.discard_failed") == [
        {"directory": str(checkpoint_root(root) / MIGRATION), "error": "connection reset by peer"}
    ]


def _fail(match: Any, stderr: bytes = b"disk error\n") -> Any:
    def fault(call: Call) -> tuple[ExecStatus, bytes] | None:
        return (ExecStatus(1, "command terminated with exit code 1"), stderr) if match(call) else None

    return fault


# The reset and the manifest's write are steps of one sh script (checkpoint.batch); a fault is the tool of a step
# failing inside it (shims), and each says which step failed exactly as that command run alone would.
SCRIPT_STEPS = [
    pytest.param("rm", "true", "clearing {directory} failed (exit 1: disk error)", id="rm"),
    pytest.param(
        "mkdir",
        "case $last in */artifacts) ;; *) false ;; esac",
        "creating {directory} failed (exit 1: disk error)",
        id="mkdir",
    ),
    pytest.param(
        "mkdir",
        "case $last in */artifacts/*) ;; *) false ;; esac",
        "creating {directory}/artifacts/trainer{root} failed (exit 1: disk error)",
        id="artifact-parent",
    ),
    pytest.param("mv", "true", "renaming manifest.json.tmp failed (exit 1: disk error)", id="mv"),
]


@pytest.mark.parametrize(("tool", "when", "message"), SCRIPT_STEPS)
async def test_each_write_that_fails_says_which(root: Path, shims: Shims, tool: str, when: str, message: str) -> None:
    shims.fail_once(tool, when=when)
    pod = workload(root, artifacts={"trainer": [str(root / "scratch-trainer")]})
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, Recording())
    directory = checkpoint_root(root) / MIGRATION
    assert failure.value.message == message.format(directory=directory, root=root)
    assert failure.value.reason == reasons.WRITE_FAILED
    assert not directory.exists()


async def test_a_checksum_list_write_that_fails_says_so(root: Path) -> None:
    def checksum_lists(call: Call) -> bool:
        return call.argv[:2] == ("tar", "-x") and call.stdin and call.argv[-1].endswith(MIGRATION)

    pod = workload(root, artifacts={"trainer": [str(root / "scratch-trainer")]})
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, Recording(faults=[_fail(checksum_lists)]))
    assert failure.value.message == (
        "writing the checksum lists failed (exit 1 (command terminated with exit code 1)): disk error"
    )
    assert failure.value.reason == reasons.WRITE_FAILED


async def test_a_manifest_write_that_fails_says_so(root: Path, shims: Shims) -> None:
    # The checksum lists are extracted first, by their own tar; the manifest's tar finds them there.
    shims.fail_once("tar", "tar: manifest.json.tmp: Cannot write", when='[ -d "$last/checksums" ]')
    pod = workload(root, artifacts={"trainer": [str(root / "scratch-trainer")]})
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, Recording())
    assert failure.value.message == (
        "writing manifest.json.tmp failed (exit 1 (command terminated with exit code 1)): tar: manifest.json.tmp:"
        " Cannot write"
    )


async def test_clearing_a_read_only_directory_has_the_volume_s_reason(root: Path, shims: Shims) -> None:
    shims.fail_once("rm", "rm: cannot remove 'x': Read-only file system")
    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), Recording())
    assert failure.value.reason == reasons.VOLUME_READ_ONLY


async def test_a_checksum_list_that_differs_on_the_volume_names_it(root: Path) -> None:
    def corrupt_list(call: Call) -> None:
        if call.argv[0] == "sh" and call.argv[3] == "verify" and "/checksums/" in call.argv[4]:
            Path(call.argv[4]).write_text("tampered\n")

    pod = workload(root, artifacts={"trainer": [str(root / "scratch-trainer")]})
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, Recording(faults=[lambda call: corrupt_list(call)]))
    assert failure.value.reason == reasons.VERIFY_FAILED
    listed = failure.value.details["path"]
    assert listed.startswith("checksums/trainer/")
    assert failure.value.details == {"path": listed, "container": "trainer"}
    assert failure.value.message.startswith(f"artifact {listed} of container trainer differs on the volume")


async def test_a_manifest_that_differs_on_the_volume_names_it(root: Path, shims: Shims) -> None:
    shims.after("mv", "printf '{}' > \"$last\"")  # the rename leaves a manifest.json that is not what was streamed
    with pytest.raises(CheckpointError) as failure:
        await save(root, workload(root), Recording())
    assert failure.value.details == {"path": "manifest.json", "container": ""}
    assert failure.value.message.startswith("artifact manifest.json of container  differs on the volume")


async def test_records_spool_where_they_are_told(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spools: list[str | None] = []
    real = tempfile.SpooledTemporaryFile

    def spy(*args: Any, dir: str | None = None, **kwargs: Any) -> Any:
        spools.append(dir)
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", spy)  # the module records spools with
    pod = workload(root, artifacts={"trainer": [str(root / "scratch-trainer")]})
    assert (await save(root, pod, Recording(), spool_dir=str(root)))["saved"] is True
    assert spools == [str(root)]


async def test_a_legacy_layout_save_says_retention_was_skipped(root: Path) -> None:
    legacy = root / "shared" / ".ai-storage" / "checkpoints" / "trainer-pod" / MIGRATION

    def legacy_layout(status: JSON) -> JSON:
        return {**status, "directory": str(legacy), "location": {**status["location"], "directory": str(legacy)}}

    with structlog.testing.capture_logs() as logs:
        result = await save(root, workload(root), Recording(), rewrite=legacy_layout, retention=2)
    assert result["retention"] == {"skipped": "legacy layout: not namespaced", "kept": [], "deleted": [], "limit": 2}
    assert events(logs, "checkpoint.retention") == [
        {"kept": [], "deleted": [], "skipped": "legacy layout", "directory": str(legacy)}
    ]


async def test_retention_runs_for_this_migration_with_keep_failed(root: Path) -> None:
    base = checkpoint_root(root)
    failed = base / "failed1"
    failed.mkdir(parents=True)
    (failed / "manifest.json").write_text("{}")
    result = await save(root, workload(root), Recording(), phases={"failed1": "Failed"}, keep_failed=True)
    assert sorted(result["retention"]["kept"]) == [MIGRATION, "failed1"]
    assert failed.is_dir(), "keep_failed keeps failed migrations' checkpoints"


def test_now_is_utc_with_microseconds() -> None:
    import datetime as dt
    import re

    text = saving.now_iso()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    moment = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - moment).total_seconds()) < 60


async def test_this_migration_s_checkpoint_is_kept_even_when_another_looks_newer(root: Path) -> None:
    """Retention never deletes the checkpoint just written, whatever the volume's clock says about the others'."""
    newer = checkpoint_root(root) / "newer1"
    newer.mkdir(parents=True)
    (newer / "manifest.json").write_text("{}")
    os.utime(newer, (4_000_000_000, 4_000_000_000))  # written by a node whose clock runs ahead
    result = await save(root, workload(root), Recording(), retention=1)
    assert result["retention"] == {"kept": ["newer1", MIGRATION], "deleted": [], "limit": 1}
    assert (checkpoint_root(root) / MIGRATION / "manifest.json").is_file()


async def test_the_writer_uses_its_own_mount_path(root: Path) -> None:
    """Two running containers mount the shared volume at different paths: every write uses the writer's."""
    pod = workload(root, hooks={"trainer": ["true"]})
    elsewhere = root / "monitor-view"
    pod["spec"]["containers"][2]["volumeMounts"] = [{"name": SHARED, "mountPath": str(elsewhere)}]
    result = await save(root, pod, Recording())
    assert result["writtenBy"] == "trainer"
    manifest = checkpoint_root(root) / MIGRATION / "manifest.json"
    assert result["manifest"] == str(manifest)
    assert manifest.is_file()
    assert not elsewhere.exists()


async def test_an_artifact_only_its_stopped_container_mounts_cannot_be_read(root: Path) -> None:
    pod = workload(root, artifacts={"processor": [str(root / "scratch-processor")]})
    trainer = pod["spec"]["containers"][0]
    trainer["volumeMounts"] = [m for m in trainer["volumeMounts"] if m["name"] != "processed"]
    transport = Recording()
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, transport)
    assert failure.value.reason == reasons.NO_RUNNING_CONTAINER
    assert failure.value.message == (
        f"no running container of pod trainer-pod can read artifact {root / 'scratch-processor'} of container processor"
    )
    assert {container for _, _, container in transport.targets} == {"trainer"}, "the clean-up too"


async def test_a_container_that_cannot_run_commands_is_named(root: Path) -> None:
    def no_exec(call: Call) -> tuple[ExecStatus, bytes] | None:
        return ExecStatus(None, 'no exec found for container "trainer"'), b""

    with pytest.raises(CheckpointError) as failure:
        await save(root, full_pod(root), Recording(faults=[no_exec]))
    assert failure.value.message == 'cannot run commands in container trainer: no exec found for container "trainer"'


def test_now_is_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        moment = dt.datetime.strptime(saving.now_iso(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        assert abs((dt.datetime.now(dt.UTC) - moment).total_seconds()) < 60
    finally:
        monkeypatch.undo()
        time.tzset()


async def test_the_configured_name_limit_applies_to_the_copy(root: Path) -> None:
    pod = workload(root, artifacts={"trainer": [str(root / "scratch-trainer")]})
    with pytest.raises(CheckpointError) as failure:
        await save(root, pod, Recording(), limits=TarLimits(max_name_bytes=20))
    assert failure.value.reason == reasons.TOO_LARGE
    assert failure.value.details == {"limit": "name", "allowed": 20}
