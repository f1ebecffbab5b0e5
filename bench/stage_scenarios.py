"""Items 1-4 on one local control plane: warm-up, the timed migration rounds, the REST API load, then (optionally)
migrations and REST load again with the orchestrator under cProfile."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.api_bench import load, run_api
from bench.migration_runs import NATIVE
from bench.migration_speed import CHECKPOINT_RESTART, MAKE_BEFORE_BREAK, METHODS, one_run, run_rounds, summarise
from bench.stage import open_stage

WARM_UP_ROUND = 1000  # pod names of the warm-up runs (not recorded)
PROFILED_ROUND = 2000  # pod names of the profiled runs: never reuse a name (KWOK deletes by name)
JSON = dict[str, Any]


async def run_stage_scenarios(
    *,
    kubeconfig: Path,
    nodes: list[str],
    workdir: Path,
    rounds: int,
    migration: bool,
    api: bool,
    quick: bool,
    profile_dir: Path | None,
    say: Callable[[str], None],
    orchestrator_args: Sequence[str] = (),
) -> dict[str, JSON]:
    out: dict[str, JSON] = {}
    async with open_stage(
        kubeconfig=kubeconfig, nodes=nodes, workdir=workdir, name="orchestrator", extra_args=orchestrator_args
    ) as stage:
        out["startup"] = {"empty_cluster_start_to_ready_s": round(stage.startup_seconds, 3)}
        say(f"orchestrator ready {stage.startup_seconds:.2f} s after start; warm-up runs (not recorded)")
        warm_up = [await one_run(stage, method, WARM_UP_ROUND) for method in METHODS]
        finished = next((r.migration_id for r in warm_up if r.method != NATIVE and r.status == "completed"), None)
        if migration:
            say(f"migration rounds: {rounds} x {', '.join(METHODS)}")
            runs = await run_rounds(stage, rounds, say=say)
            out["migration"] = {
                "rounds": rounds,
                "summary": summarise(runs),
                "runs": [r.to_json() for r in runs],
                "warm_up": [r.to_json() for r in warm_up],
            }
        if api:
            if finished is None:
                out["api"] = {"error": f"no warm-up migration completed: {[r.to_json() for r in warm_up]}"}
            else:
                say("REST API load")
                out["api"] = {"results": await run_api(stage, migration_id=finished, quick=quick, say=say)}
    if profile_dir is not None and finished is not None:
        await _profiled_passes(
            kubeconfig=kubeconfig,
            nodes=nodes,
            workdir=workdir,
            quick=quick,
            finished=finished,
            out=profile_dir,
            say=say,
        )
    return out


async def _profiled_passes(
    *,
    kubeconfig: Path,
    nodes: list[str],
    workdir: Path,
    quick: bool,
    finished: str,
    out: Path,
    say: Callable[[str], None],
) -> None:
    """Two more orchestrators under cProfile: one while migrations run, one under REST load (their timings are not
    reported: the profiler slows the process down)."""
    say("profiled pass 1/2: migrations with the orchestrator under cProfile")
    async with open_stage(
        kubeconfig=kubeconfig, nodes=nodes, workdir=workdir, name="orchestrator-profiled-migration",
        profile_to=out / "migration.prof",
    ) as stage:  # fmt: skip
        await run_rounds(
            stage,
            2 if quick else 5,
            methods=(CHECKPOINT_RESTART, MAKE_BEFORE_BREAK),
            first_round=PROFILED_ROUND,
            say=say,
        )
    say("profiled pass 2/2: REST load with the orchestrator under cProfile")
    async with open_stage(
        kubeconfig=kubeconfig, nodes=nodes, workdir=workdir, name="orchestrator-profiled-api",
        profile_to=out / "api.prof",
    ) as stage:  # fmt: skip
        probe = "api-probe-profiled"
        await stage.prepare(probe, run=probe)
        await stage.orchestrator_sees_completed(probe)
        dry_run = json.dumps(stage.request_body(probe, dry_run=True))
        await load(["--url", f"{stage.migrations_url}/{finished}", "--rate", "500", "--duration", "5"], limit=60)
        await load(
            ["--url", stage.migrations_url, "--method", "POST", "--body", dry_run, "--rate", "200", "--duration", "5"],
            limit=60,
        )
        await stage.clean(probe)
