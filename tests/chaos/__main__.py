"""`make chaos` / `make chaos-ci`: python -m tests.chaos [--scenarios N] [--seed S] [--parallel P].

Starts the local control plane (or uses --kubeconfig), creates two simulated nodes per parallel slot, runs the
scenarios, prints one line per scenario and the table, and exits 1 if any scenario lost a pod, left two copies, kept
the wrong one, got stuck or opened a pre-warmed target's gate while the source could still run. The replicas' logs
go to the work directory (printed), not to the console."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

from ai_storage_orchestrator import logging as logging_setup
from tests.chaos import report
from tests.chaos.campaign import Campaign
from tests.chaos.scenarios import GRID, plan
from tests.cluster.local_cluster import LocalCluster


def say(text: str = "") -> None:
    print(text, flush=True)


def _log_to(path: Path) -> None:
    logging_setup.configure(log_format="json", level="info")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().handlers[:] = [handler]


async def run(args: argparse.Namespace, workdir: Path) -> int:
    log_path = workdir / "orchestrators.log"
    _log_to(log_path)
    cluster: LocalCluster | None = None
    if args.kubeconfig:
        kubeconfig = Path(args.kubeconfig)
    else:
        say("Starting a local control plane (etcd, kube-apiserver, kube-controller-manager, KWOK) …")
        cluster = LocalCluster(workdir / "cluster", node_names=[])
        await asyncio.to_thread(cluster.start)
        kubeconfig = cluster.kubeconfig
    scenarios = plan(args.scenarios, args.seed)
    campaign = Campaign(
        kubeconfig=kubeconfig, namespace=f"chaos-{args.seed}-{int(time.time())}", seed=args.seed,
        parallel=args.parallel, say=say,
    )  # fmt: skip
    started = time.monotonic()
    try:
        await campaign.start()
        say(f"{len(scenarios)} scenarios (grid of {len(GRID)}), seed {args.seed}, {args.parallel} at a time")
        say(f"replica logs: {log_path}\n")
        outcomes = await campaign.run_all(scenarios)
    finally:
        await campaign.stop()
        if cluster is not None:
            cluster.stop()
    elapsed = time.monotonic() - started
    say(f"\n{len(outcomes)} scenarios in {elapsed:.0f}s (seed {args.seed}):\n")
    say(report.table(outcomes))
    say("")
    say(report.phase_coverage(outcomes))
    bad = report.violations(outcomes)
    say(f"\nviolations: {len(bad)}")
    for outcome in bad:
        say(f"  {outcome.scenario.label}: {outcome.verdict}: {outcome.detail}")
    if args.report:
        text = f"{report.table(outcomes)}\n\n{report.phase_coverage(outcomes)}\n"
        await asyncio.to_thread(Path(args.report).write_text, text)
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--scenarios", type=int, default=len(GRID) * 5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument(
        "--kubeconfig", help="use this cluster (with KWOK simulating nodes of type=kwok) instead of starting one"
    )
    parser.add_argument("--report", help="also write the tables (markdown) to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiso-chaos-") as workdir:
        try:
            return asyncio.run(run(args, Path(workdir)))
        except KeyboardInterrupt:
            return 130


if __name__ == "__main__":
    sys.exit(main())
