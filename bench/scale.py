"""Item 5: many pods on many simulated nodes -- the orchestrator's initial sync, its memory, how fast its cache
absorbs pod events, and a burst of concurrent migrations. Runs on its own LocalCluster with more nodes.

Events absorbed: `patches` pods get an annotation patched as fast as the bench can (bounded concurrency); then one
more pod gets `ai-storage.io/migrate-to: <a node that does not exist>`. Watch events of one stream arrive in order,
so when the orchestrator's annotation trigger logs `trigger.refused` for that marker pod, its cache has applied every
earlier patch. Rate = (patches + 1) / (first patch sent → that log line's time stamp)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.cluster import create_namespace, kube_api
from bench.scale_load import ScaleContext, absorb_events, create_pods, migrate_all
from bench.scale_plan import NAMESPACE, ScaleSize, marker_pod, migration_plan, per_node_cap

JSON = dict[str, Any]
WORKERS = 16  # the variant of the migration burst (the orchestrator's default is 4)


@dataclass
class ScaleOutcome:
    size: dict[str, int]
    population: dict[str, Any]
    sync_s: float | None = None
    memory_after_sync: dict[str, float] | None = None
    events: dict[str, Any] | None = None
    migrations: dict[str, Any] | None = None
    migrations_more_workers: dict[str, Any] | None = None
    memory_at_end: dict[str, float] | None = None
    orchestrator_command: str = ""
    per_node_cap: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def run_scale(
    *,
    kubeconfig: Path,
    workdir: Path,
    size: ScaleSize,
    cluster_pids: dict[str, int],
    profile_to: Path | None,
    say: Callable[[str], None] = print,
) -> ScaleOutcome:
    plan = migration_plan(size)
    cap = per_node_cap(plan)
    # --trust-annotations: this cluster has no ValidatingAdmissionPolicy for the trigger, and the marker pod must be
    # refused for its target (the node that does not exist), not for the missing policy, to mark the last event.
    args = [f"--max-active-migrations={size.migrations}", f"--max-active-per-node={cap}", "--trust-annotations"]
    async with kube_api(kubeconfig) as api:
        ctx = ScaleContext(api, kubeconfig, workdir, size, cluster_pids, args, say)
        await create_namespace(api, NAMESPACE)
        population = await create_pods(ctx)
        outcome = ScaleOutcome(asdict(size), population, per_node_cap=cap)
        say(f"  {population['running']} pods Running after {population['all_running_s']} s; starting the orchestrator")
        orchestrator = ctx.orchestrator("orchestrator-scale")
        outcome.orchestrator_command = orchestrator.command
        orchestrator.start()
        try:
            outcome.sync_s = round(await orchestrator.wait_ready(timeout=600), 3)
            outcome.memory_after_sync = orchestrator.memory_mib()
            say(f"  initial sync {outcome.sync_s} s, {outcome.memory_after_sync}")
            outcome.events = await absorb_events(ctx, orchestrator, marker=marker_pod(size, 0), tag="1")
            say(f"  events: {outcome.events}")
            outcome.migrations = await migrate_all(ctx, orchestrator, plan)
            outcome.memory_at_end = orchestrator.memory_mib()
            say(f"  migrations: {outcome.migrations}")
        finally:
            orchestrator.stop()
        outcome.migrations_more_workers = await more_workers(ctx)
        if profile_to is not None:
            await profile_scale(ctx, profile_to)
    return outcome


async def more_workers(ctx: ScaleContext) -> JSON:
    """The same burst of migrations (of other pods) with --workers=16 instead of the default 4 reconcile workers."""
    variant = ctx.orchestrator("orchestrator-scale-workers", extra=[f"--workers={WORKERS}"])
    variant.start()
    try:
        await variant.wait_ready(timeout=600)
        result = await migrate_all(ctx, variant, migration_plan(ctx.size, first_pod=2))
    finally:
        variant.stop()
    ctx.say(f"  migrations with --workers={WORKERS}: {result}")
    return {"workers": WORKERS, **result}


async def profile_scale(ctx: ScaleContext, profile_to: Path) -> None:
    """Start-up, an event burst and a burst of migrations (of other pods) again, under cProfile (not timed: the
    profiler slows the process down)."""
    profiled = ctx.orchestrator("orchestrator-scale-profiled", profile_to=profile_to)
    profiled.start()
    try:
        await profiled.wait_ready(timeout=900)
        await absorb_events(ctx, profiled, marker=marker_pod(ctx.size, 1), tag="2")
        await migrate_all(ctx, profiled, migration_plan(ctx.size, first_pod=4))
    finally:
        profiled.stop()
    ctx.say(f"  profile of the initial sync, the event burst and the migrations: {profile_to}")
