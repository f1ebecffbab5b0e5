"""Items 1-3 of the benchmark issue: migration wall time against native delete + recreate, downtime per ordering,
and the controller's own overhead, from alternating runs (the order rotates every round so drift favours nobody)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from bench import stats
from bench.migration_runs import NATIVE, RunResult, native_run, orchestrated_run
from bench.stage import Stage

CHECKPOINT_RESTART = "checkpoint-restart"
MAKE_BEFORE_BREAK = "make-before-break"
# (method, strategy sent): the certification pod writes its shared volume, so `auto` resolves to checkpoint-restart.
ORCHESTRATED = ((CHECKPOINT_RESTART, "auto"), (MAKE_BEFORE_BREAK, MAKE_BEFORE_BREAK))
METHODS = (NATIVE, CHECKPOINT_RESTART, MAKE_BEFORE_BREAK)
JSON = dict[str, Any]


async def one_run(stage: Stage, method: str, round_no: int) -> RunResult:
    """One run; an event that never comes is recorded as a failed run (and its pods removed), not raised."""
    try:
        if method == NATIVE:
            return await native_run(stage, round_no)
        strategy = dict(ORCHESTRATED)[method]
        return await orchestrated_run(stage, round_no, strategy=strategy, method=method)
    except TimeoutError as error:
        with contextlib.suppress(TimeoutError):
            await stage.clean(f"{method}-{round_no}")
        return RunResult(method, round_no, status="timeout", error=f"an awaited event did not come: {error!r}")


async def run_rounds(
    stage: Stage,
    rounds: int,
    *,
    methods: Sequence[str] = METHODS,
    first_round: int = 0,
    say: Callable[[str], None] = print,
) -> list[RunResult]:
    results: list[RunResult] = []
    for round_no in range(first_round, first_round + rounds):
        shift = round_no % len(methods)
        for method in [*methods[shift:], *methods[:shift]]:
            result = await one_run(stage, method, round_no)
            results.append(result)
            say(
                f"  round {round_no + 1 - first_round}/{rounds} {method:<18} {result.status:<9} wall "
                f"{_ms(result.wall_s)} downtime {_ms(result.downtime_s)}"
            )
    return results


def _ms(value: float | None) -> str:
    return "not measured" if value is None else f"{value * 1000:6.0f} ms"


def _values(results: Sequence[RunResult], method: str, attribute: str) -> list[float]:
    found = (getattr(r, attribute) for r in results if r.method == method and r.status == "completed")
    return [v for v in found if v is not None]


def _ms_summary(values: Sequence[float]) -> dict[str, Any]:
    return stats.summary(stats.scaled(values, 1000), digits=1)


def pairs(results: Sequence[RunResult], method: str, figure: str = "wall_s") -> list[tuple[float, float]]:
    """(figure(method), figure(native)) of the same round, for rounds where both completed."""
    native = {r.round: getattr(r, figure) for r in results if r.method == NATIVE and r.status == "completed"}
    found = []
    for r in results:
        base, mine = native.get(r.round), getattr(r, figure)
        if r.method == method and r.status == "completed" and mine is not None and base:
            found.append((mine, base))
    return found


def _ratios(paired: Sequence[tuple[float, float]]) -> JSON:
    ratios = [mine / base for mine, base in paired]
    return {
        "pairs": len(ratios),
        "median": stats.rounded(stats.median(ratios), 3),
        "p90": stats.rounded(stats.percentile(ratios, 0.9), 3),
    }


def phase_medians(results: Sequence[RunResult], method: str) -> dict[str, float | None]:
    names: dict[str, None] = {}
    for r in results:
        if r.method == method:
            names.update(dict.fromkeys(r.phases_s))
    mine = [r for r in results if r.method == method]
    return {
        name: stats.rounded(stats.median([r.phases_s[name] * 1000 for r in mine if name in r.phases_s]), 1)
        for name in names
    }


def summarise(results: Sequence[RunResult]) -> dict[str, Any]:
    per_method: dict[str, Any] = {}
    for method in METHODS:
        runs = [r for r in results if r.method == method]
        if not runs:
            continue
        entry: dict[str, Any] = {
            "runs": len(runs),
            "completed": sum(1 for r in runs if r.status == "completed"),
            "errors": [f"round {r.round}: {r.status}: {r.error}" for r in runs if r.status != "completed"],
            "wall_ms": _ms_summary(_values(results, method, "wall_s")),
            "to_ready_ms": _ms_summary(_values(results, method, "to_ready_s")),
            "downtime_ms": _ms_summary(_values(results, method, "downtime_s")),
        }
        if method != NATIVE:
            paired = pairs(results, method)
            extra = stats.median([(mine - base) * 1000 for mine, base in paired])
            entry.update(
                ordering=sorted({r.ordering for r in runs if r.ordering}),
                skipped_containers=sorted({c for r in runs for c in r.skipped}),
                ratio_to_native=_ratios(paired),
                # request → replacement Ready, the figure the real-node comparison judges (compare/timing.py)
                ready_ratio_to_native=_ratios(pairs(results, method, "to_ready_s")),
                # median of (wall - native wall) per round, and the native wall time at which that extra time
                # would make the ratio 1.5
                extra_vs_native_ms=stats.rounded(extra, 1),
                native_ms_for_ratio_1_5=stats.rounded(None if extra is None else extra / 0.5, 0),
                post_ms=_ms_summary(_values(results, method, "post_s")),
                to_target_created_ms=_ms_summary(_values(results, method, "to_target_created_s")),
                ready_to_completed_ms=_ms_summary(_values(results, method, "ready_to_completed_s")),
                phases_median_ms=phase_medians(results, method),
            )
            if method == MAKE_BEFORE_BREAK:  # its source goes after the target is Ready
                entry["ready_to_removal_ms"] = _ms_summary(_values(results, method, "ready_to_removal_s"))
        per_method[method] = entry
    orchestrated = [m for m in (CHECKPOINT_RESTART, MAKE_BEFORE_BREAK) if m in per_method]
    all_posts = [v for m in orchestrated for v in _values(results, m, "post_s")]
    return {"methods": per_method, "post_all_ms": _ms_summary(all_posts)}
