"""`python -m bench.timeline [--method M] [--runs N]`: where the time of one migration goes, event by event.

Starts the local control plane and the orchestrator as the migration benchmark does, then moves the certification pod
N times and prints every pod and PodMigration event this process received, in ms since the action was sent (POST for
the orchestrator, DELETE for native). A diagnostic: nothing is written to the published results."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.availability import is_ready
from bench.migration_runs import MIGRATION_ID_LABEL
from bench.migration_speed import METHODS, one_run
from bench.observer import Seen
from bench.stage import RUN_LABEL, open_stage
from tests.cluster.local_cluster import LocalCluster

JSON = dict[str, Any]
FIRST_ROUND = 3000  # pod names of these runs: never reuse a name (KWOK deletes by name)


def describe_pod(obj: JSON) -> str:
    meta, status = obj["metadata"], obj.get("status") or {}
    states = []
    for entry in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state = next(iter(entry.get("state") or {}), "?")
        states.append(f"{entry.get('name')}={state}")
    flags = [str(status.get("phase") or "-")]
    if is_ready(obj):
        flags.append("Ready")
    if meta.get("deletionTimestamp"):
        flags.append("terminating")
    return f"pod {meta['name']} {' '.join(flags)} [{', '.join(states)}]"


def describe_migration(obj: JSON) -> str:
    status = obj.get("status") or {}
    extra = " sourceStopped" if status.get("sourceStopped") else ""
    return f"migration {status.get('phase') or '-'}{extra}: {status.get('message') or ''}"[:150]


def lines_of(seen: Sequence[tuple[str, Seen]], start: float) -> list[str]:
    out = []
    for kind, event in sorted(seen, key=lambda pair: pair[1].at):
        text = describe_pod(event.obj) if kind == "pod" else describe_migration(event.obj)
        out.append(f"  {(event.at - start) * 1000:7.1f} ms  {event.type:<8} {text}")
    return out


async def trace(kubeconfig: Path, nodes: list[str], workdir: Path, method: str, runs: int) -> None:
    async with open_stage(kubeconfig=kubeconfig, nodes=nodes, workdir=workdir, name="orchestrator") as stage:
        for warm in METHODS:
            await one_run(stage, warm, FIRST_ROUND - 1)
        for round_no in range(FIRST_ROUND, FIRST_ROUND + runs):
            pods_mark, migrations_mark = stage.pods.mark(), stage.migrations.mark()
            result = await one_run(stage, method, round_no)
            run = f"{method}-{round_no}"
            pods = [
                ("pod", s)
                for s in stage.pods.log[pods_mark:]
                if s.labels.get(RUN_LABEL) == run or s.labels.get(MIGRATION_ID_LABEL) == result.migration_id
            ]
            migrations = [
                ("migration", s) for s in stage.migrations.log[migrations_mark:] if s.name == result.migration_id
            ]
            start = result.started_at or 0.0
            wall = "-" if result.wall_s is None else f"{result.wall_s * 1000:.1f} ms"
            ready = "-" if result.to_ready_s is None else f"{result.to_ready_s * 1000:.1f} ms"
            print(f"{run}: {result.status}, wall {wall}, to Ready {ready} (ms since the action was sent)")
            print("\n".join(lines_of([*pods, *migrations], start)), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.timeline", description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=METHODS, default="checkpoint-restart")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aiso-timeline-") as tmp:
        workdir = Path(tmp)
        cluster = LocalCluster(workdir / "cluster", node_names=["sim-node-0", "sim-node-1"])
        cluster.start()
        try:
            asyncio.run(trace(cluster.kubeconfig, cluster.node_names, workdir, args.method, args.runs))
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
