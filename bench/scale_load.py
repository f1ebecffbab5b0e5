"""The load of the scale scenario: a population of pods, a burst of pod events, a burst of migrations."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, PODS, KubeApi
from bench import stats
from bench.apiserver_metrics import per_unit, request_counts
from bench.clock import epoch
from bench.cluster import create_pod, poll_until, retrying
from bench.observer import Observer, Seen
from bench.orchestrator import CpuMeter, OrchestratorChild, log_time
from bench.scale_plan import NAMESPACE, ScaleSize, pod_name, small_pod

T = TypeVar("T")
JSON = dict[str, Any]
CONCURRENCY = 32
TERMINAL = frozenset({"Completed", "Failed", "Cancelled"})


@dataclass
class ScaleContext:
    api: KubeApi
    kubeconfig: Path
    workdir: Path
    size: ScaleSize
    cluster_pids: dict[str, int]
    orchestrator_args: list[str]
    say: Callable[[str], None] = print

    def orchestrator(
        self, name: str, *, extra: Iterable[str] = (), profile_to: Path | None = None
    ) -> OrchestratorChild:
        return OrchestratorChild(
            self.workdir,
            kubeconfig=self.kubeconfig,
            name=name,
            extra_args=[*self.orchestrator_args, *extra],
            profile_to=profile_to,
        )

    def meter(self, orchestrator: OrchestratorChild) -> CpuMeter:
        return CpuMeter({**self.cluster_pids, "orchestrator": orchestrator.pid})


async def bounded(items: Iterable[T], work: Callable[[T], Awaitable[None]], *, concurrency: int) -> None:
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def create_pods(ctx: ScaleContext) -> JSON:
    """size.pods minimal pods bound to the nodes round-robin, created with bounded concurrency; waits until KWOK
    runs them all (a pod watch in this process)."""
    api, size, say = ctx.api, ctx.size, ctx.say
    running: set[str] = set()

    def on_event(seen: Seen) -> None:
        if seen.type != "DELETED" and (seen.obj.get("status") or {}).get("phase") == "Running":
            running.add(seen.name)
        else:
            running.discard(seen.name)

    observer = Observer(api, PODS, NAMESPACE, keep_log=False, on_event=on_event)
    await observer.start()
    errors: Counter[str] = Counter()
    per_node = size.pods // size.nodes
    items = [(n, i) for i in range(per_node) for n in range(size.nodes)]

    async def create(item: tuple[int, int]) -> None:
        node, index = item
        try:
            await create_pod(api, small_pod(f"scale-{node:03d}", pod_name(node, index)), NAMESPACE)
        except KubeApiError as error:
            errors[f"{error.status} {error.reason}"] += 1

    started = time.monotonic()
    await bounded(items, create, concurrency=CONCURRENCY)
    created = time.monotonic() - started
    say(f"  {len(items)} pods created in {created:.1f} s; waiting until KWOK runs them all")
    try:
        await observer.wait_for(lambda: len(running) >= len(items), timeout=1200)
    finally:
        await observer.stop()
    all_running = time.monotonic() - started
    return {
        "pods": len(items),
        "create_errors": dict(errors),
        "create_s": round(created, 1),
        "create_per_s": round(len(items) / created, 1),
        "all_running_s": round(all_running, 1),
        "running": len(running),
    }


async def absorb_events(ctx: ScaleContext, orchestrator: OrchestratorChild, *, marker: str, tag: str) -> JSON:
    """See the module docstring of bench.scale: patches, then a marker the annotation trigger refuses and logs."""
    api, size = ctx.api, ctx.size
    names = [pod_name(n, i) for i in range(size.pods // size.nodes) for n in range(size.nodes)][-size.patches :]
    errors: Counter[str] = Counter()

    async def patch(name: str) -> None:
        body = {"metadata": {"annotations": {"bench.ai-storage.io/tick": tag}}}
        try:
            await retrying(lambda: api.merge_patch(PODS, name, body, namespace=NAMESPACE))
        except KubeApiError as error:
            errors[f"{error.status} {error.reason}"] += 1

    meter = ctx.meter(orchestrator)
    first_sent = time.time()
    await bounded(names, patch, concurrency=CONCURRENCY)
    last_ack = time.time()
    nowhere = f"no-such-node-{tag}"
    await api.merge_patch(
        PODS, marker, {"metadata": {"annotations": {"ai-storage.io/migrate-to": nowhere}}}, namespace=NAMESPACE
    )
    seen: list[dict[str, Any]] = []

    async def refused() -> bool:
        seen[:] = [
            e
            for e in orchestrator.log_events("trigger.refused")
            if e.get("pod") == marker and nowhere in str(e.get("message", ""))
        ]
        return bool(seen)

    if not await poll_until(refused, timeout=300, interval=0.05):
        return {"error": "the orchestrator never logged the marker pod's refusal", "patch_errors": dict(errors)}
    by_process = meter.used()
    cpu = by_process["orchestrator"]
    absorbed_at = log_time(seen[0])
    events = len(names) + 1
    found: JSON = {
        "events": events,
        "patch_errors": dict(errors),
        "patch_rate_per_s": round(len(names) / (last_ack - first_sent), 1),
        "absorbed_s": round(absorbed_at - first_sent, 3),
        "absorbed_per_s": round(events / (absorbed_at - first_sent), 1),
        "lag_after_last_patch_ms": round((absorbed_at - last_ack) * 1000, 1),
        "cpu_s_by_process": by_process,
        "cpu_us_per_event": None if cpu is None else round(cpu / events * 1e6, 1),
        "cpu_bound_capacity_per_s": round(events / cpu, 1) if cpu else None,
    }
    if cpu is None:
        found["not_measured"] = {"cpu_us_per_event": "the orchestrator's /proc entry was gone"}
    return found


async def migrate_all(ctx: ScaleContext, orchestrator: OrchestratorChild, plan: list[tuple[str, str, str]]) -> JSON:
    """POST every migration of the plan at once; wait until the PodMigration watch has seen all of them end."""
    api = ctx.api
    done: dict[str, Seen] = {}

    def on_event(seen: Seen) -> None:
        if (seen.obj.get("status") or {}).get("phase") in TERMINAL:
            done.setdefault(seen.name, seen)

    observer = Observer(api, POD_MIGRATIONS, NAMESPACE, keep_log=False, on_event=on_event)
    await observer.start()
    requests_before = await request_counts(api)
    meter = ctx.meter(orchestrator)
    posts: list[float] = []
    rejected: Counter[str] = Counter()
    ids: list[str] = []
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:

        async def post(item: tuple[str, str, str]) -> None:
            pod, source, target = item
            body = {"pod_name": pod, "pod_namespace": NAMESPACE, "source_node": source, "target_node": target}
            sent = time.monotonic()
            try:
                async with http.post(f"{orchestrator.url}/api/migrations", json=body) as response:
                    payload = await response.json()
            except (aiohttp.ClientError, TimeoutError) as error:
                rejected[type(error).__name__] += 1
                return
            posts.append(time.monotonic() - sent)
            if response.status == 202:
                ids.append(str(payload["migration_id"]))
            else:
                rejected[f"http_{response.status} {payload.get('error')}"] += 1

        await asyncio.gather(*(post(item) for item in plan))
    posted = time.monotonic() - started
    try:
        await observer.wait_for(lambda: all(i in done for i in ids), timeout=900)
        timed_out = False
    except TimeoutError:
        timed_out = True
    finally:
        await observer.stop()
    cpu = meter.used()
    api_requests = per_unit(requests_before, await request_counts(api), len(ids))
    server_posts = [
        float(e["duration_ms"])
        for e in orchestrator.log_events("http.request")
        if e.get("method") == "POST" and e.get("route") == "/api/migrations"
    ]
    phases = Counter(str((s.obj.get("status") or {}).get("phase")) for s in done.values())
    finished = [s.at - started for s in done.values()]
    durations = [d for s in done.values() if (d := _duration(s.obj)) is not None]
    unfinished = len([i for i in ids if i not in done])
    failed = sum(n for phase, n in phases.items() if phase != "Completed")
    orchestrator_cpu = cpu["orchestrator"]
    # "all done" only when all did end: the last of those that did is not when all were done
    all_done = max(finished) if finished and not unfinished else None
    not_measured: dict[str, str] = {}
    if unfinished:
        not_measured["all_done_s"] = f"{unfinished} of {len(ids)} migrations never ended within the wait"
    elif not finished:
        not_measured["all_done_s"] = "no migration was accepted"
    if orchestrator_cpu is None:
        not_measured["orchestrator_cpu_ms_per_migration"] = "the orchestrator's /proc entry was gone"
    return {
        "requested": len(plan),
        "accepted": len(ids),
        "rejected": dict(rejected),
        "outcomes": dict(phases),
        "unfinished": unfinished,
        "timed_out": timed_out,
        "errors": sum(rejected.values()) + failed + unfinished,
        "all_posted_s": round(posted, 3),
        "post_ms": stats.summary(stats.scaled(posts, 1000), digits=1),
        "post_server_side_ms": stats.summary(server_posts, digits=1),
        "phases_median_ms": phase_medians([s.obj for s in done.values()]),
        "all_done_s": None if all_done is None else round(all_done, 3),
        "throughput_per_s": round(len(finished) / all_done, 2) if all_done else None,
        "cpu_s_by_process": cpu,
        "apiserver_requests_per_migration": api_requests,
        "orchestrator_cpu_ms_per_migration": (
            round(orchestrator_cpu / len(ids) * 1000, 1) if ids and orchestrator_cpu is not None else None
        ),
        "migration_duration_s": stats.summary(durations, digits=3),
        "not_measured": not_measured,
    }


def phase_medians(migrations: list[JSON]) -> dict[str, float | None]:
    """Median time in each phase (between consecutive phaseTransitions), the orchestrator's clock."""
    spent: dict[str, list[float]] = {}
    for migration in migrations:
        transitions = (migration.get("status") or {}).get("phaseTransitions") or []
        for before, after in itertools.pairwise(transitions):
            spent.setdefault(str(before["phase"]), []).append(epoch(after["time"]) - epoch(before["time"]))
    return {phase: stats.rounded(stats.median(stats.scaled(values, 1000)), 1) for phase, values in spent.items()}


def _duration(migration: JSON) -> float | None:
    """startedAt → finishedAt of a migration (the orchestrator's clock)."""
    status = migration.get("status") or {}
    if not status.get("startedAt") or not status.get("finishedAt"):
        return None
    return epoch(str(status["finishedAt"])) - epoch(str(status["startedAt"]))
