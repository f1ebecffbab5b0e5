"""Checkpoint copy throughput and the orchestrator's memory while it streams, on the local control plane.

    AISO_K8S_BIN=$(tools/k8s/build.sh --print) .venv/bin/python -m bench.checkpoint_throughput [--sizes-mib 64 1024]

For each size: a pod whose emptyDir (a host directory, KWOK's exec runs on this host) holds one random artifact of that
size is migrated with preserve_pv by an orchestrator running in this process. The artifact goes
``tar -c`` (exec) -> kube-apiserver -> this process (hashing) -> kube-apiserver -> ``tar -x`` (exec) onto the "shared
volume" directory. Reported: the copy's throughput (from the checkpoint status), the whole checkpoint phase, and this
process's resident memory before and at its peak during the migration (sampled every 10 ms from /proc/self/status).
If streaming holds no more than a frame at a time, the peak does not grow with the artifact. A figure the migration
did not produce is null in the JSON, with the reason next to it (``<figure>_reason``), never 0.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, cast

from kubernetes_asyncio import client, config

from ai_storage_orchestrator.kube.resources import KubeApi
from ai_storage_orchestrator.models import MigrationRequest, Phase
from ai_storage_orchestrator.runtime import Orchestrator, install_crd
from ai_storage_orchestrator.settings import Settings
from tests.cluster.local_cluster import LocalCluster
from tests.cluster.workloads import certification_pod, shared_volume

NAMESPACE = "aiso-exec-0"  # one of kwok-exec.yaml's namespaces
MIB = 1024 * 1024


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class PeakSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak: float | None = None  # None until the first sample
        self.running = threading.Event()
        self.running.set()

    def run(self) -> None:
        while self.running.is_set():
            now = rss_mib()
            self.peak = now if self.peak is None else max(self.peak, now)
            time.sleep(0.01)  # a sampler, not a test: nothing to wait on


def write_artifact(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    chunk = 16 * MIB
    with path.open("wb") as file:
        for offset in range(0, size, chunk):
            data = os.urandom(min(chunk, size - offset))
            digest.update(data)
            file.write(data)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(16 * MIB):
            digest.update(block)
    return digest.hexdigest()


def pod(root: Path, name: str, node: str) -> dict[str, Any]:
    manifest = certification_pod(
        node=node,
        name=name,
        annotations={"ai-storage.io/checkpoint-artifacts.tensorflow-trainer": json.dumps([str(root / "scratch")])},
    )
    for container in manifest["spec"]["containers"]:
        container["volumeMounts"] = [{"name": "shared-data", "mountPath": str(root / "shared")}]
    manifest["spec"]["containers"][0]["volumeMounts"].append({"name": "scratch", "mountPath": str(root / "scratch")})
    manifest["spec"]["volumes"].append({"name": "scratch", "emptyDir": {}})
    return manifest


async def measure(cluster: LocalCluster, root: Path, size: int, index: int) -> dict[str, Any]:
    name = f"bench-{index}"
    case = root / name
    (case / "shared").mkdir(parents=True)
    (case / "scratch").mkdir()
    expected = write_artifact(case / "scratch" / "optimizer.bin", size)
    settings = Settings(kubeconfig=str(cluster.kubeconfig), namespace=NAMESPACE, leader_election=False)
    orchestrator = Orchestrator(settings)
    await orchestrator.start()
    try:
        await orchestrator.state.wait_for(lambda: orchestrator.state.synced, timeout=30)
        async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
            await client.CoreV1Api(api).create_namespaced_pod(
                NAMESPACE, cast(client.V1Pod, pod(case, name, cluster.node_names[0]))
            )
        await orchestrator.state.wait_for(
            lambda: ((orchestrator.state.pod(NAMESPACE, name) or {}).get("status") or {}).get("phase") == "Running",
            timeout=30,
        )
        assert orchestrator.service is not None
        before = rss_mib()
        sampler = PeakSampler()
        sampler.start()
        request = MigrationRequest(
            pod_name=name,
            pod_namespace=NAMESPACE,
            source_node=cluster.node_names[0],
            target_node=cluster.node_names[1],
            preserve_pv=True,
            timeout_seconds=3600,
        )
        created = await orchestrator.service.submit(request)
        terminal = {Phase.COMPLETED.value, Phase.FAILED.value}
        await orchestrator.state.wait_for(
            lambda: (
                ((orchestrator.state.migration(NAMESPACE, created["migration_id"]) or {}).get("status") or {}).get(
                    "phase"
                )
                in terminal
            ),
            timeout=3600,
        )
        sampler.running.clear()
        sampler.join()
        migration = orchestrator.service.get(created["migration_id"])
    finally:
        await orchestrator.stop()
    transitions = {t["phase"]: t["time"] for t in migration.get("phase_transitions") or []}
    return {
        "artifact_mib": size // MIB,
        "status": migration.get("status"),
        "error": migration.get("error"),
        **figures(migration.get("checkpoint") or {}, case / "scratch" / "optimizer.bin", expected),
        **memory(before, sampler.peak),
        "phases": list(transitions),
    }


def figures(checkpoint: dict[str, Any], artifact: Path, expected: str) -> dict[str, Any]:
    """What the checkpoint status reports, and whether the stored copy is the artifact; null and the reason for
    whatever it does not report (a failed or skipped checkpoint), never a 0."""
    found: dict[str, Any] = {
        "copy_seconds": checkpoint.get("copySeconds"),
        "checkpoint_seconds": checkpoint.get("durationSeconds"),
    }
    rate = checkpoint.get("throughputBytesPerSecond")
    found["throughput_mib_s"] = None if rate is None else round(rate / MIB, 1)
    if rate is None:
        found["throughput_reason"] = "the checkpoint status has no throughput" + (
            "" if checkpoint else " (no checkpoint status)"
        )
    if not checkpoint.get("directory"):
        found["identical"] = None
        found["identical_reason"] = "no checkpoint directory in the status"
        return found
    stored = Path(str(Path(checkpoint["directory"]) / "artifacts" / "tensorflow-trainer") + str(artifact))
    if not stored.exists():
        found["identical"] = None
        found["identical_reason"] = f"no stored copy at {stored}"
    else:
        found["identical"] = file_sha256(stored) == expected
    return found


def memory(before: float, peak: float | None) -> dict[str, Any]:
    if peak is None:
        reason = "the sampler took no sample during the migration"
        return {"rss_before_mib": round(before, 1), "rss_peak_mib": None, "rss_growth_mib": None, "rss_reason": reason}
    return {
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(peak, 1),
        "rss_growth_mib": round(peak - before, 1),
    }


async def run(cluster: LocalCluster, sizes: list[int], workdir: Path) -> list[dict[str, Any]]:
    async with await config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api:
        core = client.CoreV1Api(api)
        await core.create_namespace(cast(client.V1Namespace, {"metadata": {"name": NAMESPACE}}))
        pv, pvc = shared_volume(NAMESPACE)
        await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
        await core.create_namespaced_persistent_volume_claim(NAMESPACE, cast(client.V1PersistentVolumeClaim, pvc))
        await install_crd(KubeApi(api))
    return [await measure(cluster, workdir, size * MIB, index) for index, size in enumerate(sizes)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiso-bench-", dir=args.workdir) as workdir:
        cluster = LocalCluster(Path(workdir) / "cluster", node_names=["sim-node-0", "sim-node-1"])
        cluster.start()  # starts its own event loop to create the nodes: before ours
        try:
            results = asyncio.run(run(cluster, args.sizes_mib, Path(workdir)))
        finally:
            cluster.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
