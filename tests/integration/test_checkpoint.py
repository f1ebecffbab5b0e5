"""PV checkpoints on the real control plane: quiesce hooks, artifact copy, verification, manifest, restore, retention.

Exec goes through kube-apiserver to KWOK, which runs the command on this host (tests/cluster/kwok-exec.yaml), for
pods in a pool of namespaces. So the certification pod's "shared volume" and its emptyDirs are given mountPaths that
are real directories under the test's tmp dir, and the tests assert on the files themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.checkpoint import PVCheckpointer
from ai_storage_orchestrator.checkpoint.layout import CHECKPOINT_DIR_ENV, checksum_list
from ai_storage_orchestrator.checkpoint.manifest import spec_digest
from ai_storage_orchestrator.checkpoint.restoring import RESTORE_SCRIPT, RESTORE_STATE_PATH, RESTORE_STATE_VOLUME
from ai_storage_orchestrator.checkpoint.transport import ExecSessionLike, ExecTransport
from ai_storage_orchestrator.controller.planning.gate import GATE_CONTAINER
from ai_storage_orchestrator.errors import Unprocessable
from ai_storage_orchestrator.kube.exec import KubeExec
from ai_storage_orchestrator.kube.resources import PODS
from ai_storage_orchestrator.models import MigrationRequest, Phase
from ai_storage_orchestrator.runtime import Orchestrator
from ai_storage_orchestrator.settings import Settings
from tests.cluster.fixtures import ClusterHandle, _wait_default_service_account
from tests.cluster.workloads import CERTIFICATION_POD, IMAGE, certification_pod, shared_volume

JSON = dict[str, Any]
EXEC_NAMESPACES = [f"aiso-exec-{n}" for n in range(16)]  # tests/cluster/kwok-exec.yaml
TRAINER, PROCESSOR, MONITOR = "tensorflow-trainer", "data-processor", "model-monitor"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture
async def exec_namespace(cluster: ClusterHandle, core: client.CoreV1Api) -> AsyncIterator[str]:
    """A namespace from the pool in which KWOK serves exec (one that does not exist right now); the names are reused
    once a test's namespace is gone, so its cluster-scoped PersistentVolumes go with it."""
    if cluster.local is None:
        pytest.skip("exec into simulated pods needs the local harness's KWOK exec config (kwok-exec.yaml)")
    existing = {ns.metadata.name for ns in (await core.list_namespace()).items}
    name = next((n for n in EXEC_NAMESPACES if n not in existing), None)
    assert name is not None, "the exec namespace pool of kwok-exec.yaml is used up: add names there"
    await core.create_namespace(
        cast(client.V1Namespace, {"metadata": {"name": name, "labels": {"ai-storage.io/test": "true"}}})
    )
    await _wait_default_service_account(core, name)
    try:
        yield name
    finally:
        await core.delete_namespace(name)
        for volume in (await core.list_persistent_volume(label_selector="ai-storage.io/test=true")).items:
            if volume.metadata.name.startswith(f"{name}-"):  # shared_volume() names them <namespace>-<claim>
                await core.delete_persistent_volume(volume.metadata.name)


StartOrchestrator = Callable[..., Awaitable[Orchestrator]]


@pytest.fixture
async def start_orchestrator(
    cluster: ClusterHandle, exec_namespace: str, crd_installed: None
) -> AsyncIterator[StartOrchestrator]:
    started: list[Orchestrator] = []

    async def start(transport: Callable[[ExecTransport], ExecTransport] | None = None, **settings: Any) -> Orchestrator:
        running = Orchestrator(
            Settings(
                kubeconfig=str(cluster.kubeconfig),
                namespace=exec_namespace,
                leader_election=False,
                identity=f"test-{exec_namespace}",
                **settings,
            )
        )
        await running.start()
        started.append(running)
        if transport is not None:  # a fault injected into the exec channel
            assert running.controller is not None
            checkpointer = PVCheckpointer(
                transport(KubeExec(running._api_client)),
                retention=running.settings.checkpoint_retention,
                keep_failed=running.settings.keep_failed_checkpoints,
            )
            running.controller.checkpointer = checkpointer  # prepare (Validating)
            running.controller.checkpoints.checkpointer = checkpointer  # save (the checkpoint pool's jobs)
        await running.state.wait_for(lambda: running.state.synced, timeout=30)
        return running

    try:
        yield start
    finally:
        for running in started:
            await running.stop()


class Host:
    """The test's host directories that stand in for the pod's volumes (of a pod in ``namespace``)."""

    def __init__(self, root: Path, namespace: str) -> None:
        self.root = root
        self.namespace = namespace
        self.shared = root / "shared"
        self.optimizer = root / f"scratch-{TRAINER}"
        self.processed = root / f"scratch-{PROCESSOR}"
        for directory in (self.shared, self.optimizer, self.processed):
            directory.mkdir(parents=True, exist_ok=True)

    def checkpoints(self) -> Path:
        return self.shared / ".ai-storage" / "namespaces" / self.namespace / "checkpoints" / CERTIFICATION_POD

    def checkpoint(self, migration_id: str) -> Path:
        return self.checkpoints() / migration_id

    def stored(self, migration_id: str, container: str, path: Path) -> Path:
        return Path(str(self.checkpoint(migration_id) / "artifacts" / container) + str(path))


def workload(host: Host, *, hook: Sequence[str] | None, node: str, annotations: dict[str, str] | None = None) -> JSON:
    """The certification pod with host-dir mount paths: the shared PVC at <tmp>/shared in every container, the
    trainer's optimizer state on an emptyDir, and the data processor's output on an emptyDir the trainer reads."""
    extra = {
        f"ai-storage.io/checkpoint-artifacts.{TRAINER}": json.dumps([str(host.optimizer)]),
        f"ai-storage.io/checkpoint-artifacts.{PROCESSOR}": json.dumps([str(host.processed)]),
        **(annotations or {}),
    }
    if hook is not None:
        extra[f"ai-storage.io/checkpoint-hook.{TRAINER}"] = json.dumps(list(hook))
    pod = certification_pod(node=node, complete_after="1s", annotations=extra)
    for container in pod["spec"]["containers"]:
        container["volumeMounts"] = [{"name": "shared-data", "mountPath": str(host.shared)}]
        if container["name"] == TRAINER:
            container["volumeMounts"].append({"name": "optimizer", "mountPath": str(host.optimizer)})
        if container["name"] in (TRAINER, PROCESSOR):
            container["volumeMounts"].append({"name": "processed", "mountPath": str(host.processed)})
    pod["spec"]["volumes"] += [{"name": "optimizer", "emptyDir": {}}, {"name": "processed", "emptyDir": {}}]
    return pod


def _container_state(pod: JSON | None, name: str) -> str | None:
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status["name"] == name:
            state: str = next(iter(status.get("state") or {"unknown": None}))
            return state
    return None


async def deploy(core: client.CoreV1Api, orchestrator: Orchestrator, namespace: str, pod: JSON) -> None:
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
    await orchestrator.state.wait_for(
        lambda: _container_state(orchestrator.state.pod(namespace, CERTIFICATION_POD), PROCESSOR) == "terminated",
        timeout=30,
    )


async def migrate(orchestrator: Orchestrator, namespace: str, pod: str, source: str, target: str) -> JSON:
    assert orchestrator.service is not None
    request = MigrationRequest(
        pod_name=pod, pod_namespace=namespace, source_node=source, target_node=target, preserve_pv=True
    )
    created = await orchestrator.service.submit(request)
    terminal = {Phase.COMPLETED.value, Phase.FAILED.value, Phase.CANCELLED.value}

    def finished() -> JSON | None:
        migration = orchestrator.state.migration(namespace, created["migration_id"])
        return migration if migration and (migration.get("status") or {}).get("phase") in terminal else None

    await orchestrator.state.wait_for(finished, timeout=90)
    return orchestrator.service.get(created["migration_id"])


async def pods_on_nodes(core: client.CoreV1Api, namespace: str) -> list[tuple[str, str]]:
    return [(p.metadata.name, p.spec.node_name) for p in (await core.list_namespaced_pod(namespace)).items]


def write_state(host: Host, optimizer_bytes: int = 3 * 1024 * 1024) -> None:
    (host.optimizer / "optimizer.bin").write_bytes(os.urandom(optimizer_bytes))
    (host.optimizer / "epoch").write_text("41\n")
    (host.processed / "features.npy").write_bytes(os.urandom(200_000))


async def test_checkpoint_saves_verifies_and_the_target_restores(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    exec_namespace: str,
    start_orchestrator: StartOrchestrator,
    tmp_path: Path,
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    host = Host(tmp_path, exec_namespace)
    write_state(host)
    marker = host.optimizer / "hook-marker"
    hook = ["sh", "-c", f"echo quiescing the trainer; date +%s%N > {marker}"]
    orchestrator = await start_orchestrator()
    await deploy(core, orchestrator, exec_namespace, workload(host, hook=hook, node=source))
    assert orchestrator.api is not None
    source_pod = await orchestrator.api.get(PODS, CERTIFICATION_POD, namespace=exec_namespace)

    migration = await migrate(orchestrator, exec_namespace, CERTIFICATION_POD, source, target)

    assert migration["status"] == "completed", migration
    migration_id = migration["migration_id"]
    actions = {c["name"]: c["action"] for c in migration["containers"]}
    # Without the artifact copy the data processor's emptyDir output would be lost and it would run again.
    assert actions == {TRAINER: "migrate", PROCESSOR: "skip", MONITOR: "migrate"}
    assert "copied by the checkpoint" in next(c["reason"] for c in migration["containers"] if c["name"] == PROCESSOR)
    phases = [t["phase"] for t in migration["phase_transitions"]]
    assert phases[:3] == ["Validating", "Checkpointing", "StoppingSource"]
    checkpoint = migration["checkpoint"]
    directory = host.checkpoint(migration_id)
    assert checkpoint["saved"] is True
    assert checkpoint["directory"] == str(directory)
    [hook_result] = checkpoint["hooks"]
    assert hook_result["exitCode"] == 0
    assert hook_result["outputBytes"] > 0
    recorded = json.dumps({k: v for k, v in hook_result.items() if k != "command"})  # the argv is the annotation's
    assert "quiescing the trainer" not in recorded, "hook output is never recorded in the status"

    # The manifest, read from the shared directory.
    manifest = json.loads((directory / "manifest.json").read_text())
    assert not (directory / "manifest.json.tmp").exists()
    assert checkpoint["manifestSha256"] == sha256(directory / "manifest.json")
    assert manifest["schemaVersion"] == 1
    assert manifest["migrationId"] == migration_id
    assert manifest["source"]["pod"] == CERTIFICATION_POD
    assert manifest["source"]["namespace"] == exec_namespace
    assert manifest["source"]["node"] == source
    assert manifest["source"]["specDigest"] == spec_digest(source_pod)
    assert manifest["target"]["node"] == target
    containers = {c["name"]: c for c in manifest["containers"]}
    assert {name: (c["state"], c["exitCode"], c["action"]) for name, c in containers.items()} == {
        TRAINER: ("running", None, "migrate"),
        PROCESSOR: ("terminated", 0, "skip"),
        MONITOR: ("running", None, "migrate"),
    }
    assert containers[PROCESSOR]["finishedAt"]
    assert manifest["hooks"][0]["exitCode"] == 0

    # Every artifact is byte-identical in the checkpoint, with the checksum the manifest records.
    files = {(a["container"], a["path"]): a for a in manifest["artifacts"] if a["kind"] == "file"}
    expected = [
        (TRAINER, host.optimizer / "optimizer.bin"),
        (TRAINER, host.optimizer / "epoch"),
        (TRAINER, marker),  # the hook's marker was copied: the hook ran before the copy
        (PROCESSOR, host.processed / "features.npy"),
    ]
    assert set(files) == {(container, str(path)) for container, path in expected}
    for container, path in expected:
        entry = files[(container, str(path))]
        stored = host.stored(migration_id, container, path)
        assert entry["sha256"] == sha256(path) == sha256(stored)
        assert entry["size"] == path.stat().st_size == stored.stat().st_size

    # The target pod knows where its checkpoint is and restores the artifacts before its containers start.
    new_pod = await orchestrator.api.get(PODS, migration["new_pod_name"], namespace=exec_namespace)
    assert new_pod["spec"]["nodeName"] == target
    assert new_pod["metadata"]["annotations"]["ai-storage.io/checkpoint-path"] == str(directory)
    init = {c["name"]: c for c in new_pod["spec"]["initContainers"]}
    # The pre-warmed target's gate first (controller/planning/gate.py), then the restores.
    assert list(init) == [GATE_CONTAINER, f"ai-storage-restore-{TRAINER}", f"ai-storage-restore-{PROCESSOR}"]
    restores = [c for c in new_pod["spec"]["initContainers"] if c["name"] != GATE_CONTAINER]
    restore = init[f"ai-storage-restore-{TRAINER}"]
    assert restore["image"] == IMAGE
    assert restore["command"] == [
        "sh",
        "-c",
        RESTORE_SCRIPT,
        "ai-storage-restore",
        str(directory),
        TRAINER,
        str(host.optimizer),
        checksum_list(TRAINER, str(host.optimizer)),
    ]
    [listed] = [c for c in manifest["checksums"] if c["container"] == TRAINER]
    assert listed["list"] == checksum_list(TRAINER, str(host.optimizer))
    assert listed["sha256"] == sha256(directory / listed["list"])
    mounts = [m for m in restore["volumeMounts"] if not m["name"].startswith("kube-api-access-")]  # admission's
    assert [(m["name"], m["mountPath"], m.get("readOnly", False)) for m in mounts] == [
        ("shared-data", str(host.shared), True),
        ("optimizer", str(host.optimizer), False),
        (RESTORE_STATE_VOLUME, RESTORE_STATE_PATH, False),
    ]
    for container in [*restores, *new_pod["spec"]["containers"]]:
        env = {e["name"]: e.get("value") for e in container.get("env") or []}
        assert env["AI_STORAGE_CHECKPOINT_DIR"] == str(directory), container["name"]
    assert await pods_on_nodes(core, exec_namespace) == [(migration["new_pod_name"], target)]

    # What the restore init containers do, run here on the host: the emptyDirs on the target start empty.
    originals = {path: sha256(path) for _, path in expected}
    empty_the_emptydirs(host)
    for container in restores:
        code, stderr = await run_restore(container)
        assert code == 0, stderr
    assert {path: sha256(path) for path in originals} == originals

    # A stored artifact that no longer matches the manifest's sha256 fails the restore, naming the file.
    with host.stored(migration_id, TRAINER, host.optimizer / "optimizer.bin").open("r+b") as stored_file:
        stored_file.write(b"\0")
    empty_the_emptydirs(host)
    code, stderr = await run_restore(init[f"ai-storage-restore-{TRAINER}"])
    assert code == 1
    assert "optimizer.bin has sha256" in stderr


def empty_the_emptydirs(host: Host) -> None:
    for directory in (host.optimizer, host.processed):
        shutil.rmtree(directory)
        directory.mkdir()


async def run_restore(container: JSON) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(*container["command"], stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    return await process.wait(), stderr.decode()


@pytest.mark.parametrize(
    ("hook", "annotations", "expect"),
    [
        # Prints words its argv does not hold as such: the argv is the annotation's, the output must appear nowhere.
        (["sh", "-c", "printf '%s state\\n' flushing; printf '%s quota\\n' disk >&2; exit 7"], {}, "exited with 7"),
        (["sleep", "60"], {"ai-storage.io/checkpoint-hook-timeout": "1"}, "timed out after 1s"),
    ],
    ids=["non-zero-exit", "timeout"],
)
async def test_failing_hook_fails_before_the_source_is_touched(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    exec_namespace: str,
    start_orchestrator: StartOrchestrator,
    tmp_path: Path,
    hook: list[str],
    annotations: dict[str, str],
    expect: str,
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    host = Host(tmp_path, exec_namespace)
    write_state(host)
    orchestrator = await start_orchestrator()
    await deploy(core, orchestrator, exec_namespace, workload(host, hook=hook, node=source, annotations=annotations))

    migration = await migrate(orchestrator, exec_namespace, CERTIFICATION_POD, source, target)

    assert migration["status"] == "failed"
    assert migration["error"]["reason"] == "checkpoint_hook_failed"
    assert expect in migration["error"]["message"]
    [result] = migration["checkpoint"]["hooks"]
    if "exit" in expect:
        assert result["exitCode"] == 7
        assert result["outputBytes"] == len("flushing state\ndisk quota\n")
        recorded = json.dumps(migration)
        assert "flushing state" not in recorded, "hook output is never recorded in the status"
        assert "disk quota" not in recorded
    else:
        assert result["timedOut"] is True
    assert await pods_on_nodes(core, exec_namespace) == [(CERTIFICATION_POD, source)]
    assert not host.checkpoint(migration["migration_id"]).exists(), "no partial checkpoint, no manifest"


@contextlib.contextmanager
def mounted(argv: list[str], where: Path) -> Iterator[None]:
    """A mount over `where` for the test (needs CAP_SYS_ADMIN; skips without it)."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run([*argv, str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip()}): needs root")
    try:
        yield
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.parametrize(
    ("mount", "reason"),
    [
        (["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs"], "checkpoint_volume_full"),
        (["mount", "--bind", "-o", "ro"], "checkpoint_volume_read_only"),
    ],
    ids=["full", "read-only"],
)
async def test_full_or_read_only_volume_fails_before_the_source_is_touched(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    exec_namespace: str,
    start_orchestrator: StartOrchestrator,
    tmp_path: Path,
    mount: list[str],
    reason: str,
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    host = Host(tmp_path, exec_namespace)
    write_state(host, optimizer_bytes=4 * 1024 * 1024)  # larger than the 1 MiB tmpfs
    orchestrator = await start_orchestrator()
    await deploy(core, orchestrator, exec_namespace, workload(host, hook=None, node=source))
    argv = [*mount, str(host.shared)] if "--bind" in mount else mount
    with mounted(argv, host.shared):
        migration = await migrate(orchestrator, exec_namespace, CERTIFICATION_POD, source, target)
        leftovers = list(host.shared.rglob("*"))
    assert migration["status"] == "failed"
    assert migration["error"]["reason"] == reason, migration["error"]
    assert await pods_on_nodes(core, exec_namespace) == [(CERTIFICATION_POD, source)]
    assert not [p for p in leftovers if p.name == "manifest.json"]
    assert not [p for p in leftovers if p.is_file()], "the partial checkpoint was removed"


class CorruptAfterCopy:
    """Wraps the real exec channel: just before the checkpoint re-reads the copied files, flips a byte of one of
    them on the volume (as a flaky disk or a concurrent writer would)."""

    def __init__(self, inner: ExecTransport, victim: str) -> None:
        self.inner = inner
        self.victim = victim
        self.corrupted: list[str] = []

    def session(
        self, *, namespace: str, pod: str, container: str, argv: Sequence[str], stdin: bool = False
    ) -> contextlib.AbstractAsyncContextManager[ExecSessionLike]:
        if list(argv[:2]) == ["sh", "-c"] and len(argv) > 4 and argv[3] == "verify-list":
            for path in Path(argv[4]).rglob(self.victim):  # argv[4]: the artifact's store on the volume
                with path.open("r+b") as stored:
                    stored.seek(100)
                    byte = stored.read(1)
                    stored.seek(100)
                    stored.write(bytes([byte[0] ^ 0xFF]))
                self.corrupted.append(str(path))
        return self.inner.session(namespace=namespace, pod=pod, container=container, argv=argv, stdin=stdin)


async def test_artifact_corrupted_after_copy_fails_verification(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    exec_namespace: str,
    start_orchestrator: StartOrchestrator,
    tmp_path: Path,
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    host = Host(tmp_path, exec_namespace)
    write_state(host)
    transports: list[CorruptAfterCopy] = []

    def corrupting(inner: ExecTransport) -> ExecTransport:
        transports.append(CorruptAfterCopy(inner, "optimizer.bin"))
        return transports[-1]

    orchestrator = await start_orchestrator(transport=corrupting)
    await deploy(core, orchestrator, exec_namespace, workload(host, hook=None, node=source))

    migration = await migrate(orchestrator, exec_namespace, CERTIFICATION_POD, source, target)

    assert transports[0].corrupted, "the fault was injected"
    assert migration["status"] == "failed"
    assert migration["error"]["reason"] == "checkpoint_verify_failed"
    assert "optimizer.bin" in migration["error"]["message"]
    assert await pods_on_nodes(core, exec_namespace) == [(CERTIFICATION_POD, source)]
    assert not host.checkpoint(migration["migration_id"]).exists(), "partial checkpoint removed, no manifest"


async def test_invalid_hook_annotation_is_refused(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    exec_namespace: str,
    start_orchestrator: StartOrchestrator,
    tmp_path: Path,
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    host = Host(tmp_path, exec_namespace)
    orchestrator = await start_orchestrator()
    shell_string = {f"ai-storage.io/checkpoint-hook.{TRAINER}": "python /scripts/save.py && sync"}
    await deploy(core, orchestrator, exec_namespace, workload(host, hook=None, node=source, annotations=shell_string))

    # Refused at request time (422), before any migration is recorded.
    with pytest.raises(Unprocessable) as refused:
        await migrate(orchestrator, exec_namespace, CERTIFICATION_POD, source, target)
    assert refused.value.reason == "invalid_checkpoint_annotation"
    assert orchestrator.state.migrations_of_pod(exec_namespace, CERTIFICATION_POD) == []
    assert await pods_on_nodes(core, exec_namespace) == [(CERTIFICATION_POD, source)]
    assert not host.checkpoints().exists()


async def test_retention_keeps_the_newest_n_checkpoints(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    exec_namespace: str,
    start_orchestrator: StartOrchestrator,
    tmp_path: Path,
) -> None:
    retention = 2
    nodes = cluster.node_names[:2]
    host = Host(tmp_path, exec_namespace)
    write_state(host, optimizer_bytes=100_000)
    orchestrator = await start_orchestrator(checkpoint_retention=retention)
    await deploy(core, orchestrator, exec_namespace, workload(host, hook=["true"], node=nodes[0]))

    completed: list[str] = []
    pod_name = CERTIFICATION_POD
    for number in range(retention + 2):
        source, target = nodes[number % 2], nodes[(number + 1) % 2]
        migration = await migrate(orchestrator, exec_namespace, pod_name, source, target)
        assert migration["status"] == "completed", migration
        completed.append(migration["migration_id"])
        pod_name = migration["new_pod_name"]
        if number:  # the earlier checkpoint's restore containers were replaced by this one's
            names = [c["name"] for c in migration["containers"] if c["name"].startswith("ai-storage-restore-")]
            assert names
            assert all(c["action"] == "skip" for c in migration["containers"] if c["name"] in names)

    remaining = sorted(p.name for p in host.checkpoints().iterdir())
    assert remaining == sorted(completed[-retention:])
    for migration_id in remaining:
        assert (host.checkpoint(migration_id) / "manifest.json").is_file()
    last = json.loads((host.checkpoint(completed[-1]) / "manifest.json").read_text())
    # The data processor was left out after the first move; its output travels on as the trainer's artifact.
    paths = {a["path"] for a in last["artifacts"] if a["kind"] == "file"}
    assert str(host.processed / "features.npy") in paths


async def test_manifest_only_checkpoint_is_skipped_where_exec_is_unavailable(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator
) -> None:
    """Outside the exec pool KWOK answers every exec with "no exec found": a pod that declares no hooks and no
    artifacts migrates without a manifest (Warning event CheckpointSkipped), and its target is not pointed at one."""
    if cluster.local is None:
        pytest.skip("relies on the local harness's KWOK exec config (kwok-exec.yaml)")
    source, target = cluster.node_names[0], cluster.node_names[1]
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, certification_pod(node=source, complete_after="1s")))
    await orchestrator.state.wait_for(
        lambda: _container_state(orchestrator.state.pod(namespace, CERTIFICATION_POD), PROCESSOR) == "terminated",
        timeout=30,
    )

    migration = await migrate(orchestrator, namespace, CERTIFICATION_POD, source, target)

    assert migration["status"] == "completed", migration
    assert migration["checkpoint"]["saved"] is False
    assert migration["checkpoint"]["skipped"] == "exec_unavailable"
    assert "no exec found" in migration["checkpoint"]["message"]
    new_pod = await core.read_namespaced_pod(migration["new_pod_name"], namespace)
    assert "ai-storage.io/checkpoint-path" not in (new_pod.metadata.annotations or {})
    assert all(e.name != CHECKPOINT_DIR_ENV for c in new_pod.spec.containers for e in c.env or [])
    assert orchestrator.recorder is not None
    await orchestrator.recorder.flush()
    events = await core.list_namespaced_event(namespace, field_selector="reason=CheckpointSkipped")
    assert [e.type for e in events.items] == ["Warning"]


async def test_a_slow_checkpoint_does_not_stall_other_migrations(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    exec_namespace: str,
    start_orchestrator: StartOrchestrator,
    tmp_path: Path,
) -> None:
    """One reconcile worker: a checkpoint hook that takes 20 s must not hold it (issue #13, item 5)."""
    source, target = cluster.node_names[0], cluster.node_names[1]
    host = Host(tmp_path, exec_namespace)
    write_state(host)
    orchestrator = await start_orchestrator(workers=1)
    slow = workload(
        host, hook=["sleep", "20"], node=source, annotations={"ai-storage.io/checkpoint-hook-timeout": "60"}
    )
    await deploy(core, orchestrator, exec_namespace, slow)
    assert orchestrator.service is not None
    checkpointing = await orchestrator.service.submit(
        MigrationRequest(
            pod_name=CERTIFICATION_POD,
            pod_namespace=exec_namespace,
            source_node=source,
            target_node=target,
            preserve_pv=True,
        )
    )

    def checkpoint_running() -> bool:
        migration = orchestrator.state.migration(exec_namespace, checkpointing["migration_id"]) or {}
        return bool(((migration.get("status") or {}).get("checkpoint") or {}).get("running"))

    await orchestrator.state.wait_for(checkpoint_running, timeout=30)
    await core.create_namespaced_pod(
        exec_namespace,
        cast(
            client.V1Pod,
            {
                "metadata": {"name": "other"},
                "spec": {"nodeName": source, "containers": [{"name": "c", "image": IMAGE}]},
            },
        ),
    )
    await orchestrator.state.wait_for(
        lambda: ((orchestrator.state.pod(exec_namespace, "other") or {}).get("status") or {}).get("phase") == "Running",
        timeout=30,
    )
    other = await orchestrator.service.submit(
        MigrationRequest(pod_name="other", pod_namespace=exec_namespace, source_node=source, target_node=target)
    )

    def completed() -> bool:
        migration = orchestrator.state.migration(exec_namespace, other["migration_id"]) or {}
        return (migration.get("status") or {}).get("phase") == Phase.COMPLETED.value

    await orchestrator.state.wait_for(completed, timeout=15)  # the hook still has seconds to go
    assert checkpoint_running(), "the other migration finished while the checkpoint was still running"
    await orchestrator.service.cancel(checkpointing["migration_id"])
    await orchestrator.state.wait_for(
        lambda: (
            (
                (orchestrator.state.migration(exec_namespace, checkpointing["migration_id"]) or {}).get("status") or {}
            ).get("phase")
            == Phase.CANCELLED.value
        ),
        timeout=30,
    )
