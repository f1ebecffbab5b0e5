"""`make e2e`: the certification procedure, as the auditor types it, on two real nodes of this machine
(tests/cluster/real_nodes.py).

Starts the local control plane with real-node support, two kubelet + containerd nodes with the locally built images
imported, checks that exec and the kubelet's stats/summary work through the API server on both nodes, then types the
procedure's three commands (tests/cluster/certification.py): `./scripts/build.sh`, `./scripts/deploy.sh` (the
orchestrator as a Deployment in kube-system, with its Service and TLS) and a bare `./scripts/ai_migration_compare.sh`,
which discovers the rest and measures CPU and memory in real cgroups. Everything it started is torn down at the end
(processes, cgroups, mount namespaces, bridges).

E2E_WORKLOAD=tensorflow-local (`make e2e-tensorflow`) runs the TensorFlow programs on a locally built TensorFlow
image instead of the numpy stand-in. E2E_KEEP=1 keeps the cluster, the nodes and the orchestrator up after the
comparison until Ctrl-C.
E2E_OUTPUT_DIR: where the report and console.log go (default: a directory in the system's temp dir, printed at the
end); `make e2e E2E_OUTPUT_DIR=docs/results/e2e-real-nodes` publishes it. E2E_KEEP_WORKDIR for debugging."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

from ai_storage_orchestrator.compare.measuring import CounterRead
from ai_storage_orchestrator.compare.sampling import CgroupReader, KubeletReader, PathApi
from ai_storage_orchestrator.compare.workload import NUMPY_IMAGE
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.exec import KubeExec
from ai_storage_orchestrator.kube.resources import PODS
from tests.cluster.certification import SERVICE_NETWORK, UnreachableServiceNetwork, certify, kubectl_dir
from tests.cluster.demo import say, start_orchestrator
from tests.cluster.local_cluster import LocalCluster, cache_dir
from tests.cluster.nodes import wait_nodes_ready
from tests.cluster.processes import ManagedProcess, free_port
from tests.cluster.real_nodes import RealNodeTier, export_dir

PROBE_NAMESPACE = "default"
NFS_PATH = "/exports/training-data"


IMAGE_ARCHIVES = {"numpy": "numpy-workload-1.oci.tar", "tensorflow-local": "tensorflow-workload-2.13.oci.tar"}


def image_archives(workload: str = "numpy") -> list[Path]:
    """The pause image, the numpy image (the probe pods use it) and the workload's own."""
    images = cache_dir("tools/nodes/images.sh")
    archives = [
        images / name
        for name in dict.fromkeys(["pause-3.10.oci.tar", IMAGE_ARCHIVES["numpy"], IMAGE_ARCHIVES[workload]])
    ]
    missing = [a.name for a in archives if not a.is_file()]
    if missing:
        raise RuntimeError(
            f"no {', '.join(missing)} in {images}: run tools/nodes/images.sh (--tensorflow for that one)"
        )
    return archives


def _probe_pod(name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "e2e-probe"}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "probe",
                    "image": NUMPY_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "3600"],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
        },
    }


async def _wait_running(kube: PathApi, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    phase = ""
    while time.monotonic() < deadline:
        pod = await kube.get(PODS, name, namespace=PROBE_NAMESPACE)
        phase = pod.get("status", {}).get("phase", "")
        if phase == "Running":
            return
        if phase in ("Failed", "Succeeded"):
            break
        await asyncio.sleep(0.5)  # polling a pod's phase through the API: bounded by the deadline
    raise RuntimeError(f"probe pod {name} is {phase or 'not started'}: {pod.get('status')}")


async def probe_nodes(kubeconfig: Path, nodes: list[str], *, timeout: float = 120.0) -> None:
    """A pod on each node, read through exec (cgroup counters) and through the kubelet's stats/summary."""
    api_client = await create_api_client(str(kubeconfig))
    try:
        kube, execs = PathApi(api_client), KubeExec(api_client)
        for node in nodes:
            name = f"e2e-probe-{node.replace('.', '-')}"
            await kube.create(PODS, _probe_pod(name, node), namespace=PROBE_NAMESPACE)
            try:
                await _wait_running(kube, name, timeout)
                common: dict[str, Any] = {"namespace": PROBE_NAMESPACE, "pod": name, "containers": ["probe"]}
                by_exec = (await CgroupReader(kube, execs, **common).read(index=0)).reads["probe"]
                by_kubelet = (await KubeletReader(kube, node=node, **common).read(index=0)).reads["probe"]
                for source, read in (("exec (cgroup)", by_exec), ("stats/summary", by_kubelet)):
                    if not isinstance(read, CounterRead):
                        raise RuntimeError(f"node {node}: {source} failed: {read}")
                    say(f"  node {node}: {source:14} cpu {read.cpu_ns / 1e6:9.1f} ms  memory {read.memory_bytes} B")
            finally:
                await kube.delete(PODS, name, namespace=PROBE_NAMESPACE)
    finally:
        await api_client.close()


@dataclass(frozen=True)
class RunningTier:
    cluster: LocalCluster
    tier: RealNodeTier
    orchestrator: ManagedProcess | None
    url: str | None


@contextlib.asynccontextmanager
async def real_node_cluster(
    workdir: Path, archives: list[Path], *, orchestrator_process: bool = True
) -> AsyncIterator[RunningTier]:
    """Control plane, two real nodes Ready, and (unless told not to) the orchestrator as its own process; all torn
    down on exit, which fails if the tier left anything behind."""
    say("Starting a local control plane (etcd, kube-apiserver, kube-controller-manager) …")
    cluster = LocalCluster(workdir / "cluster", node_names=[], real_nodes=True)
    await asyncio.to_thread(cluster.start)
    tier = RealNodeTier(cluster, workdir / "nodes", archives)
    orchestrator: ManagedProcess | None = None
    try:
        say(f"Starting two real nodes (kubelet + containerd), images {', '.join(a.name for a in archives)} …")
        started = time.monotonic()
        await asyncio.to_thread(tier.start)
        api_client = await create_api_client(str(cluster.kubeconfig))
        try:
            await wait_nodes_ready(client.CoreV1Api(api_client), tier.node_names, timeout=tier.startup_timeout)
        finally:
            await api_client.close()
        say(f"  nodes {', '.join(tier.node_names)} Ready after {time.monotonic() - started:.1f} s")
        url = None
        if orchestrator_process:
            orchestrator, url = await start_orchestrator(cluster.kubeconfig, workdir, port=free_port())
            say(f"Orchestrator ready at {url} (logs: {orchestrator.log_path})\n")
        yield RunningTier(cluster, tier, orchestrator, url)
    finally:
        stopping = time.monotonic()
        if orchestrator is not None:
            orchestrator.stop()
        await asyncio.to_thread(tier.stop)
        cluster.stop()
        say(f"Torn down in {time.monotonic() - stopping:.1f} s.")
        if leftovers := tier.leftovers():
            raise RuntimeError(f"the tier left behind: {', '.join(leftovers)}")
        say("Everything the run started is stopped: no process, cgroup, mount or interface of the tier is left.")


async def run(workdir: Path, output: Path) -> int:
    main_task = asyncio.current_task()
    if main_task is not None:  # `kill` tears down like Ctrl-C (the finally below), instead of orphaning containers
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    with UnreachableServiceNetwork():
        code = await _certify_on_tier(workdir, output, os.environ.get("E2E_WORKLOAD") or "numpy")
    if UnreachableServiceNetwork.left():
        raise RuntimeError(f"the route for {SERVICE_NETWORK} was left behind")
    return code


async def _certify_on_tier(workdir: Path, output: Path, workload: str) -> int:
    async with real_node_cluster(workdir, image_archives(workload), orchestrator_process=False) as running:
        kubeconfig = running.cluster.kubeconfig
        export_dir(running.tier.exports, NFS_PATH).mkdir(parents=True, exist_ok=True)
        say("Checking exec and stats/summary through the API server on both nodes …")
        await probe_nodes(kubeconfig, running.tier.node_names)
        say()
        code = await certify(running.cluster, running.tier, workdir, output)
        if os.environ.get("E2E_KEEP"):
            say("\nEverything stays up (E2E_KEEP is set; Ctrl-C tears it down):")
            say(f"  export KUBECONFIG={kubeconfig} PATH={kubectl_dir()}:$PATH")
            say("  kubectl get nodes -o wide; kubectl -n kube-system get pods -o wide")
            await asyncio.Event().wait()
        return code


def print_log_tails(workdir: Path, lines: int = 25) -> None:
    """A failed run's last words from every process it started (the work directory goes away with the run)."""
    for log in sorted(workdir.rglob("*.log")):
        if any("snapshotter" in part for part in log.parts):
            continue  # a container image's own files (dpkg.log …), not a process of the run
        try:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:  # a container log the kubelet removed with its pod, or a dangling symlink
            continue
        say(f"\n--- last {len(tail)} lines of {log.relative_to(workdir)} ---")
        say("\n".join(tail))


def main() -> int:
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1` prints every thread's stack: a run that seems stuck
    output = Path(os.environ.get("E2E_OUTPUT_DIR") or Path(tempfile.gettempdir()) / "ai-storage-orchestrator-e2e")
    keep = bool(os.environ.get("E2E_KEEP_WORKDIR"))
    workdir = Path(tempfile.mkdtemp(prefix="aiso-e2e-"))
    code = 2
    try:
        code = asyncio.run(run(workdir, output.resolve()))
    except (KeyboardInterrupt, asyncio.CancelledError):
        code = 130
    finally:
        if code not in (0, 130):
            print_log_tails(workdir)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    say(f"Report: {output.resolve()}" + (f"   (work directory kept: {workdir})" if keep else ""))
    return code


if __name__ == "__main__":
    sys.exit(main())
