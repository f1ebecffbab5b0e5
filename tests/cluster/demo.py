"""`make demo`: the main job on the embedded default. Starts a local control plane (3 simulated worker nodes), the
orchestrator as its own process (`ai-storage-orchestrator serve`), deploys the certification workload, migrates it
through the REST API with the seed's exact request, and prints what happened.

DEMO_KEEP=1 keeps everything running afterwards until Ctrl-C, and prints how to reach the cluster and the API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config

from tests.cluster.local_cluster import LocalCluster
from tests.cluster.processes import ManagedProcess, free_port
from tests.cluster.workloads import CERTIFICATION_POD, certification_pod, shared_volume

NAMESPACE = "ai-demo"


def say(text: str = "") -> None:
    print(text, flush=True)


async def _wait_ready(url: str, process: ManagedProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if not process.running():
                raise RuntimeError(f"orchestrator exited:\n{process.log_tail()}")
            try:
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)  # start-up probe of a child process
    raise RuntimeError("orchestrator not ready in time")


async def _deploy(kubeconfig: Path, node: str) -> None:
    async with await config.new_client_from_config(config_file=str(kubeconfig)) as api:
        core = client.CoreV1Api(api)
        await core.create_namespace({"metadata": {"name": NAMESPACE}})
        pv, pvc = shared_volume(NAMESPACE)
        await core.create_persistent_volume(pv)
        await core.create_namespaced_persistent_volume_claim(NAMESPACE, pvc)
        for _ in range(100):  # the namespace's default service account appears within a moment
            accounts = await core.list_namespaced_service_account(NAMESPACE)
            if accounts.items:
                break
            await asyncio.sleep(0.1)
        await core.create_namespaced_pod(NAMESPACE, certification_pod(node=node, complete_after="3s"))
        say(f"  deployed pod {CERTIFICATION_POD} on {node}; waiting for data-processor to complete …")
        while True:
            pod = await core.read_namespaced_pod(CERTIFICATION_POD, NAMESPACE)
            states = {s.name: s.state for s in pod.status.container_statuses or []}
            if states.get("data-processor") and states["data-processor"].terminated:
                break
            await asyncio.sleep(0.5)
        for name, state in states.items():
            shown = "Completed (exit 0)" if state.terminated else "Running" if state.running else "Waiting"
            say(f"    {name:<20} {shown}")


async def _migrate(url: str, source: str, target: str) -> dict[str, Any]:
    body = {
        "pod_name": CERTIFICATION_POD,
        "pod_namespace": NAMESPACE,
        "source_node": source,
        "target_node": target,
        "preserve_pv": True,
    }
    say(f"\n$ curl -X POST {url}/api/migrations -H 'Content-Type: application/json' -d '{json.dumps(body)}'")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/migrations", json=body) as response:
            created = await response.json()
            say(f"  → {response.status} migration_id={created.get('migration_id')} status={created.get('status')}")
            if response.status != 202:
                raise RuntimeError(f"migration refused: {created}")
        started = time.monotonic()
        last_phase = ""
        while True:
            async with http.get(f"{url}/api/migrations/{created['migration_id']}") as response:
                migration: dict[str, Any] = await response.json()
            if migration["phase"] != last_phase:
                last_phase = migration["phase"]
                elapsed = time.monotonic() - started
                say(f"  [{elapsed:5.2f}s] {migration['status']:<9} {last_phase}: {migration['message']}")
            if migration["status"] in ("completed", "failed", "cancelled"):
                return migration
            await asyncio.sleep(0.2)


def _report(migration: dict[str, Any]) -> None:
    say("\nContainer decisions:")
    for container in migration["containers"]:
        say(f"  {container['name']:<20} {container['action']:<8} {container['reason']}")
    resources = migration.get("resources") or {}
    before, after = resources.get("before", {}), resources.get("after", {})
    if before:
        say(
            f"\nRequests: {before['cpu_millicores']}m CPU / {before['memory_bytes'] / 2**30:.1f}Gi → "
            f"{after['cpu_millicores']}m CPU / {after['memory_bytes'] / 2**30:.1f}Gi"
        )
    say(f"New pod: {migration['new_pod_name']}  status: {migration['status']}")
    say(f"Wall time: {migration['duration_seconds']}s")
    if migration.get("error"):
        say(f"Error: {migration['error']}")


async def run(workdir: Path) -> int:
    say("Starting a local control plane (etcd, kube-apiserver, kube-controller-manager, KWOK) …")
    cluster = LocalCluster(workdir / "cluster")
    await asyncio.to_thread(cluster.start)  # the harness is synchronous and runs its own loop
    orchestrator: ManagedProcess | None = None
    try:
        say(f"  API server {cluster.server}; nodes {', '.join(cluster.node_names)}")
        port = int(os.environ.get("DEMO_PORT") or free_port())
        url = f"http://127.0.0.1:{port}"
        orchestrator = ManagedProcess(
            "orchestrator",
            [
                sys.executable,
                "-m",
                "ai_storage_orchestrator.cli",
                "serve",
                f"--kubeconfig={cluster.kubeconfig}",
                "--host=127.0.0.1",
                f"--port={port}",
                "--install-crd",
                "--no-leader-election",
                "--log-format=json",
            ],
            workdir,
        )
        orchestrator.start()
        await _wait_ready(url, orchestrator)
        say(f"Orchestrator ready at {url} (logs: {orchestrator.log_path})\n")
        source, target = cluster.node_names[0], cluster.node_names[1]
        await _deploy(cluster.kubeconfig, source)
        migration = await _migrate(url, source, target)
        _report(migration)
        say("\nReach them:")
        say(f"  kubectl --kubeconfig {cluster.kubeconfig} get nodes,pods,podmigrations -A")
        say(f"  curl {url}/api/migrations   ·   curl {url}/metrics")
        if os.environ.get("DEMO_KEEP"):
            say("DEMO_KEEP is set: press Ctrl-C to stop everything.")
            await asyncio.Event().wait()
        return 0 if migration["status"] == "completed" else 1
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        cluster.stop()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="aiso-demo-") as workdir:
        try:
            return asyncio.run(run(Path(workdir)))
        except KeyboardInterrupt:
            return 130


if __name__ == "__main__":
    sys.exit(main())
