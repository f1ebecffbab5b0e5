"""`make demo`: the main job on the embedded default. Starts a local control plane (3 simulated worker nodes) and the
orchestrator as its own process (`ai-storage-orchestrator serve`), then runs the certification comparison
(`ai-storage-orchestrator compare --workload simulated --allow-unmeasured`): the workload is deployed, moved the
Kubernetes way (delete, recreate) and back with the orchestrator through the REST API, and the table is printed.
Simulated nodes have no cgroups, so CPU and memory say "not measured"; times, containers and requests are real.

DEMO_KEEP=1 keeps everything running afterwards until Ctrl-C, and prints how to reach the cluster and the API.
DEMO_OUTPUT_DIR chooses where the report goes (default: a directory in the system's temp dir, printed at the end);
DEMO_COMPLETE_AFTER sets when the simulated data-processor completes (default 10s; the real one takes about 45 s)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from ai_storage_orchestrator.cli import compare as compare_command
from tests.cluster.local_cluster import LocalCluster
from tests.cluster.processes import ManagedProcess, free_port

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


async def run_compare(argv: list[str]) -> int:
    """`ai-storage-orchestrator compare ARGV` in this process, the command line printed first."""
    say(f"$ ai-storage-orchestrator compare {' '.join(argv)}\n")
    parser = argparse.ArgumentParser(prog="ai-storage-orchestrator compare")
    compare_command.configure(parser)
    return await compare_command.compare(parser.parse_args(argv))


async def _compare(kubeconfig: Path, url: str, source: str, target: str, output: Path, *, keep: bool) -> int:
    return await run_compare(
        [
            f"--kubeconfig={kubeconfig}",
            f"--orchestrator-url={url}",
            f"--namespace={NAMESPACE}",
            f"--source-node={source}",
            f"--target-node={target}",
            "--workload=simulated",
            f"--simulated-complete-after={os.environ.get('DEMO_COMPLETE_AFTER') or '10s'}",
            "--allow-unmeasured",
            f"--output-dir={output}",
            "--timeout=120",
            *(["--keep"] if keep else []),
        ]
    )


async def start_orchestrator(kubeconfig: Path, workdir: Path, *, port: int) -> tuple[ManagedProcess, str]:
    """`ai-storage-orchestrator serve` as its own process on 127.0.0.1:`port`, once /readyz answers 200; with its
    admission webhooks self-registered on another loopback port, so owned pods move and drains migrate."""
    url = f"http://127.0.0.1:{port}"
    orchestrator = ManagedProcess(
        "orchestrator",
        [
            sys.executable, "-m", "ai_storage_orchestrator.cli", "serve", f"--kubeconfig={kubeconfig}",
            "--host=127.0.0.1", f"--port={port}", "--install-crd", "--no-leader-election", "--log-format=json",
            "--webhooks=self", f"--webhook-port={free_port()}",
        ],
        workdir,
    )  # fmt: skip
    orchestrator.start()
    try:
        await _wait_ready(url, orchestrator)
    except BaseException:
        orchestrator.stop()
        raise
    return orchestrator, url


async def run(workdir: Path) -> int:
    say("Starting a local control plane (etcd, kube-apiserver, kube-controller-manager, KWOK) …")
    cluster = LocalCluster(workdir / "cluster")
    await asyncio.to_thread(cluster.start)  # the harness is synchronous and runs its own loop
    orchestrator: ManagedProcess | None = None
    try:
        say(f"  API server {cluster.server}; nodes {', '.join(cluster.node_names)}")
        orchestrator, url = await start_orchestrator(
            cluster.kubeconfig, workdir, port=int(os.environ.get("DEMO_PORT") or free_port())
        )
        say(f"Orchestrator ready at {url} (logs: {orchestrator.log_path})\n")
        source, target = cluster.node_names[0], cluster.node_names[1]
        keep = bool(os.environ.get("DEMO_KEEP"))
        output = Path(os.environ.get("DEMO_OUTPUT_DIR") or Path(tempfile.gettempdir()) / "ai-storage-orchestrator-demo")
        code = await _compare(cluster.kubeconfig, url, source, target, output, keep=keep)
        if keep:
            say("\nReach them (DEMO_KEEP is set; Ctrl-C stops everything):")
            say(f"  kubectl --kubeconfig {cluster.kubeconfig} get nodes,pods,podmigrations -A")
            say(f"  curl {url}/api/migrations   ·   curl {url}/metrics")
            await asyncio.Event().wait()
        else:
            say("\nEverything is stopped now; `DEMO_KEEP=1 make demo` keeps the cluster and the orchestrator up.")
        return code
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
