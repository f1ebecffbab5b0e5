"""Migrations on real nodes: real containers, runc, overlay root filesystems, volumes mounted by real kubelets.

What KWOK cannot show: a checkpoint's artifacts copied out of a running container and put back by the restore init
container on the target node, and a move to a node that cannot start the pod failing before the source is touched."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from ai_storage_orchestrator.checkpoint.transport import run
from ai_storage_orchestrator.compare.workload import NUMPY_IMAGE
from ai_storage_orchestrator.kube.resources import PODS, PVCS, PVS, Resource
from tests.cluster.real_nodes import NFS_SERVER_STAND_IN, export_dir
from tests.e2e.conftest import RealCluster

NAMESPACES = Resource("", "v1", "namespaces", "Namespace")
JOBS = Resource("batch", "v1", "jobs", "Job")
SOURCE, TARGET = "aiso-node-1", "aiso-node-2"
JSON = dict[str, Any]

# The running container: makes 2 MiB of "optimizer state" in an emptyDir once, whole or not at all (a restored copy
# is kept), then logs a line per second to the shared volume. Ends on SIGTERM (it is PID 1).
WORKER = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *args: sys.exit(143))
if not os.path.exists("/state/opt.bin"):
    with open("/state/opt.bin.part", "wb") as handle:
        handle.write(os.urandom(2 * 1024 * 1024))
    os.rename("/state/opt.bin.part", "/state/opt.bin")
while True:
    with open("/data/worker.log", "a") as handle:
        handle.write("%s %f\\n" % (os.uname().nodename, time.time()))
    time.sleep(1)
"""


async def _until(check: Callable[[], Awaitable[Any]], *, timeout: float, what: str) -> Any:
    """Poll the API until `check` returns something truthy (pods on real nodes change over seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.25)
    raise TimeoutError(f"{what} not reached within {timeout}s")


async def _shared_namespace(real: RealCluster) -> str:
    """A namespace with claim `data`: ReadWriteMany on an `nfs` PV served by the tier's stand-in export."""
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    export = f"/exports/{namespace}"
    export_dir(real.tier.exports, export).mkdir(parents=True)
    await real.kube.create(NAMESPACES, {"metadata": {"name": namespace}})
    pv: JSON = {
        "metadata": {"name": f"{namespace}-data"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "nfs",
            "nfs": {"server": NFS_SERVER_STAND_IN, "path": export},
            "claimRef": {"namespace": namespace, "name": "data"},
        },
    }
    await real.kube.create(PVS, pv)
    claim = {
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "nfs",
            "volumeName": pv["metadata"]["name"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    await real.kube.create(PVCS, claim, namespace=namespace)
    return namespace


def _pod(name: str, annotations: dict[str, str] | None = None) -> JSON:
    """`prep` writes to the shared volume and exits 0; `worker` keeps running with state in an emptyDir."""
    resources = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "250m", "memory": "256Mi"}}
    data = {"name": "data", "mountPath": "/data"}
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "nodeName": SOURCE,
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 10,
            "containers": [
                {
                    "name": "prep",
                    "image": NUMPY_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "echo prepared > /data/prep.txt"],
                    "resources": resources,
                    "volumeMounts": [data],
                },
                {
                    "name": "worker",
                    "image": NUMPY_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", WORKER],
                    "resources": resources,
                    "volumeMounts": [data, {"name": "state", "mountPath": "/state"}],
                },
            ],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "state", "emptyDir": {}},
            ],
        },
    }


def _states(pod: JSON) -> dict[str, JSON]:
    return {s["name"]: s.get("state") or {} for s in (pod.get("status") or {}).get("containerStatuses") or []}


async def _deploy(real: RealCluster, namespace: str, pod: JSON) -> None:
    """Create the pod on the source node; return once worker runs and prep has completed."""
    await real.kube.create(PODS, pod, namespace=namespace)

    async def settled() -> bool:
        states = _states(await real.kube.get(PODS, pod["metadata"]["name"], namespace=namespace))
        prep = states.get("prep", {}).get("terminated") or {}
        return "running" in states.get("worker", {}) and prep.get("exitCode") == 0

    await _until(settled, timeout=90, what="worker running and prep completed")


async def _exec(real: RealCluster, namespace: str, pod: str, container: str, argv: list[str]) -> str:
    async with asyncio.timeout(30):
        result = await run(real.execs, namespace=namespace, pod=pod, container=container, argv=argv)
    assert result.success, result.describe()
    return result.stdout.decode()


async def _state_written(real: RealCluster, namespace: str, pod: str) -> str:
    """The SHA-256 line of the worker's optimizer state, once written: a running container has not necessarily got
    that far (Python starts, then writes 2 MiB)."""

    async def written() -> str | None:
        async with asyncio.timeout(30):
            result = await run(
                real.execs, namespace=namespace, pod=pod, container="worker", argv=["sha256sum", "/state/opt.bin"]
            )
        return result.stdout.decode() if result.success else None

    found: str = await _until(written, timeout=60, what="the worker's /state/opt.bin written")
    return found


async def _migrate(real: RealCluster, namespace: str, pod: str) -> JSON:
    """POST the move to the target node and return the migration once it has ended."""
    body = {
        "pod_name": pod,
        "pod_namespace": namespace,
        "source_node": SOURCE,
        "target_node": TARGET,
        "preserve_pv": True,
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{real.url}/api/migrations", json=body) as response:
            assert response.status == 202, await response.text()
            migration_id = (await response.json())["migration_id"]

        async def ended() -> JSON | None:
            async with http.get(f"{real.url}/api/migrations/{migration_id}") as response:
                migration: JSON = await response.json()
            return migration if migration["status"] in ("completed", "failed", "cancelled") else None

        ended_migration: JSON = await _until(ended, timeout=180, what=f"migration {migration_id} ended")
        return ended_migration


@pytest.mark.timeout(300)
async def test_artifacts_are_copied_out_and_restored_on_the_target_node(real: RealCluster) -> None:
    namespace = await _shared_namespace(real)
    annotations = {
        "ai-storage.io/checkpoint-artifacts.worker": json.dumps(["/state"]),
        "ai-storage.io/checkpoint-hook.worker": json.dumps(["sh", "-c", "echo quiesced > /state/hook-marker"]),
    }
    await _deploy(real, namespace, _pod("trainer", annotations))
    before = await _state_written(real, namespace, "trainer")

    migration = await _migrate(real, namespace, "trainer")

    assert migration["status"] == "completed", migration
    actions = {c["name"]: c["action"] for c in migration["containers"]}
    assert actions == {"prep": "skip", "worker": "migrate"}
    target = await real.kube.get(PODS, migration["new_pod_name"], namespace=namespace)
    assert target["spec"]["nodeName"] == TARGET
    assert [c["name"] for c in target["spec"]["containers"]] == ["worker"]
    assert target["spec"].get("initContainers"), "the artifacts come back through a restore init container"
    name = target["metadata"]["name"]
    knocked = [e for e in real.logged("gate.knocked") if e["target_pod"] == name]
    assert len(knocked) == 1, f"the pre-warmed target's gate was not knocked: {real.logged('gate.knock_failed')}"
    assert knocked[0]["opened_ahead"] is True, "the knock's exec was opened before the hand-off"
    assert await _exec(real, namespace, name, "worker", ["sha256sum", "/state/opt.bin"]) == before
    assert await _exec(real, namespace, name, "worker", ["cat", "/state/hook-marker"]) == "quiesced\n"
    assert await _exec(real, namespace, name, "worker", ["cat", "/data/prep.txt"]) == "prepared\n"
    manifest = json.loads(
        await _exec(real, namespace, name, "worker", ["cat", f"{migration['checkpoint']['manifest']}"])
    )
    files = {f["path"]: f for f in manifest["artifacts"] if f["kind"] == "file"}
    assert files["/state/opt.bin"]["sha256"] == before.split()[0]


def _containers(pod: JSON) -> dict[str, tuple[str, int]]:
    """Each container's (container ID, restart count): a container the kubelet restarted has a new ID."""
    return {
        s["name"]: (str(s.get("containerID")), int(s.get("restartCount") or 0))
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    }


@pytest.mark.timeout(300)
async def test_a_target_node_without_the_image_fails_the_move_before_the_source_is_touched(real: RealCluster) -> None:
    namespace = await _shared_namespace(real)
    await _deploy(real, namespace, _pod("trainer"))
    before = await real.kube.get(PODS, "trainer", namespace=namespace)
    target_node = next(node for node in real.tier.nodes if node.name == TARGET)
    target_node.ctr(["images", "rm", NUMPY_IMAGE])
    try:
        migration = await _migrate(real, namespace, "trainer")
    finally:
        for archive in real.tier.images:
            target_node.ctr(["images", "import", "--snapshotter", "overlayfs", str(archive)])

    assert migration["status"] == "failed", migration
    assert migration["error"]["reason"] == "target_container_error"
    assert "ErrImageNeverPull" in migration["error"]["message"]
    assert "the source pod was not touched" in migration["message"]
    after = await real.kube.get(PODS, "trainer", namespace=namespace)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["spec"]["nodeName"] == SOURCE
    assert _containers(after) == _containers(before), "same container IDs and restart counts: never restarted"
    assert "running" in _states(after)["worker"]
    assert not after["metadata"].get("deletionTimestamp")


@pytest.mark.timeout(300)
async def test_a_job_pod_moves_through_its_owner_with_its_artifacts_and_the_job_is_not_charged(
    real: RealCluster,
) -> None:
    """The orchestrator (its webhooks self-registered on loopback) evicts the Job's pod and captures the pod the Job
    controller creates: on the target, prep left out, the checkpoint's artifacts restored by real kubelets."""
    namespace = await _shared_namespace(real)
    annotations = {"ai-storage.io/checkpoint-artifacts.worker": json.dumps(["/state"])}
    spec = {**_pod("unused")["spec"], "restartPolicy": "Never"}
    disruption_ignored = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    job = {
        "metadata": {"name": "train"},
        "spec": {
            "backoffLimit": 2,
            "podFailurePolicy": disruption_ignored,
            "template": {"metadata": {"annotations": annotations}, "spec": spec},
        },
    }
    await real.kube.create(JOBS, job, namespace=namespace)

    async def settled() -> str | None:
        pods, _ = await real.kube.list(PODS, namespace=namespace)
        for pod in pods:
            states = _states(pod)
            prep = states.get("prep", {}).get("terminated") or {}
            if "running" in states.get("worker", {}) and prep.get("exitCode") == 0:
                return str(pod["metadata"]["name"])
        return None

    source: str = await _until(settled, timeout=90, what="the Job's worker running and prep completed")
    before = await _state_written(real, namespace, source)

    migration = await _migrate(real, namespace, source)

    assert migration["status"] == "completed", migration
    assert {c["name"]: c["action"] for c in migration["containers"]} == {"prep": "skip", "worker": "migrate"}
    name = migration["new_pod_name"]
    target = await real.kube.get(PODS, name, namespace=namespace)
    assert target["spec"]["nodeName"] == TARGET
    assert [c["name"] for c in target["spec"]["containers"]] == ["worker"]
    assert target["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert await _exec(real, namespace, name, "worker", ["sha256sum", "/state/opt.bin"]) == before
    status = (await real.kube.get(JOBS, "train", namespace=namespace)).get("status") or {}
    assert not status.get("failed"), status
