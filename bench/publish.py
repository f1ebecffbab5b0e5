"""The published scale, and the scale a run had, from its own parameters as its results record them.

Only a run at (or above) the published scale may rewrite docs/BENCHMARKS.md and bench/results/: a --quick run, or any
run smaller than the page states (fewer rounds, pods, nodes, migrations, shorter loads, smaller artifacts), writes its
page to its output directory only (bench.runner)."""

from __future__ import annotations

from typing import Any

from bench.scale_plan import FULL

JSON = dict[str, Any]
PUBLISHED_ROUNDS = 50  # migration rounds
PUBLISHED_API_SECONDS = {"get_open": 15.0, "dry_run_open": 10.0, "get_closed": 5.0, "dry_run_closed": 5.0}
PUBLISHED_CHECKPOINT_MIB = 1024  # the largest artifact
PUBLISHED_DECISION_BATCHES = 7


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _migration_scale(scenario: JSON) -> str:
    return f"migration: {scenario.get('rounds')} rounds of each method"


def _api_scale(scenario: JSON) -> str:
    loads = []
    for name, entry in (scenario.get("results") or {}).items():
        if entry.get("mode") == "closed":
            loads.append(f"{name} {entry.get('concurrency')} clients for {entry.get('duration_s')} s")
        elif entry.get("mode") == "open":
            loads.append(f"{name} {entry.get('target_rps')} req/s for {entry.get('duration_s')} s")
        else:
            loads.append(f"{name} not run ({str(entry.get('error', 'no result'))[:80]})")
    return "REST API: " + (", ".join(loads) or "no load ran")


def _scale_scale(scenario: JSON) -> str:
    size = _dig(scenario, "outcome", "size") or {}
    return (
        f"scale: {size.get('pods')} pods on {size.get('nodes')} nodes, {size.get('patches')} pod events,"
        f" {size.get('migrations')} migrations at once (twice)"
    )


def _checkpoint_scale(scenario: JSON) -> str:
    sizes = [str(entry.get("artifact_mib")) for entry in scenario.get("sizes") or []]
    return "checkpoint: artifacts of " + (" and ".join(sizes) + " MiB" if sizes else "no size measured")


def _decision_scale(scenario: JSON) -> str:
    return f"decision: median of {_dig(scenario, 'results', 'plan', 'batches')} timeit batches"


_DESCRIBE = {
    "decision": _decision_scale,
    "migration": _migration_scale,
    "api": _api_scale,
    "scale": _scale_scale,
    "checkpoint": _checkpoint_scale,
}


def run_scale(results: JSON) -> list[str]:
    """One phrase per scenario in the results: the scale it ran at, from its recorded parameters."""
    scenarios = results.get("scenarios") or {}
    return [_DESCRIBE[name](scenarios[name]) for name in _DESCRIBE if name in scenarios]


def _below(found: Any, published: float) -> bool:
    """A recorded parameter below the published one (one not recorded -- a scenario that failed before it ran --
    is no evidence either way: the --quick flag of every scenario is checked as well)."""
    return isinstance(found, int | float) and found < published


def smaller_than_published(results: JSON) -> list[str]:
    """Why these results may not be published (empty: at the published scale)."""
    scenarios = results.get("scenarios") or {}
    reasons = [f"{name} ran with --quick" for name, scenario in scenarios.items() if scenario.get("quick")]
    reasons += [
        f"{name} ran with serve flags {' '.join(scenario['orchestrator_args'])}"
        for name, scenario in scenarios.items()
        if scenario.get("orchestrator_args")
    ]
    if "migration" in scenarios and _below(scenarios["migration"].get("rounds"), PUBLISHED_ROUNDS):
        reasons.append(f"migration: {scenarios['migration'].get('rounds')} rounds < {PUBLISHED_ROUNDS}")
    if "api" in scenarios:
        loads = scenarios["api"].get("results") or {}
        for name, seconds in PUBLISHED_API_SECONDS.items():
            if _below(_dig(loads, name, "duration_s"), seconds):
                reasons.append(f"api: {name} {_dig(loads, name, 'duration_s')} s < {seconds} s")
    if "scale" in scenarios:
        size = _dig(scenarios["scale"], "outcome", "size") or {}
        for key in ("pods", "nodes", "migrations", "patches"):
            if _below(size.get(key), getattr(FULL, key)):
                reasons.append(f"scale: {size.get(key)} {key} < {getattr(FULL, key)}")
    if "checkpoint" in scenarios:
        sizes = [e.get("artifact_mib") for e in scenarios["checkpoint"].get("sizes") or []]
        largest = max((s for s in sizes if isinstance(s, int | float)), default=None)
        if _below(largest, PUBLISHED_CHECKPOINT_MIB):
            reasons.append(f"checkpoint: largest artifact {largest} MiB < {PUBLISHED_CHECKPOINT_MIB} MiB")
    if "decision" in scenarios:
        batches = _dig(scenarios["decision"], "results", "plan", "batches")
        if _below(batches, PUBLISHED_DECISION_BATCHES):
            reasons.append(f"decision: {batches} timeit batches < {PUBLISHED_DECISION_BATCHES}")
    return reasons
