"""The issue's targets next to the measured values: one row per figure, with the command that reproduces it.

A figure that was not measured says so (bench.render); a target whose input is missing, or was measured at another
scale than the one the target names, is *not judged* (met None plus the reason), never passed or failed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.render import NOT_JUDGED, missing, percentiles, value
from bench.scale_plan import FULL

MB_PER_MIB = 1.048576
MEMORY_TARGET_MB = 250
MEMORY_TARGET_PODS = FULL.pods  # the target reads "≤ 250 MB at 10,000 pods"
JSON = dict[str, Any]


@dataclass(frozen=True)
class Row:
    item: str
    figure: str
    measured: str
    target: str
    met: bool | None  # None: no target, or not judged (see `verdict`)
    scenario: str
    not_judged: str | None = None  # why a target was not judged, when known

    @property
    def verdict(self) -> str:
        """yes / **no** / — (no target) / not judged: <reason>."""
        if self.met is not None:
            return "yes" if self.met else "**no**"
        if self.target == "—":
            return "—"
        return f"{NOT_JUDGED}: {self.not_judged or 'its input was not measured'}"

    def to_json(self) -> JSON:
        return {
            "item": self.item,
            "figure": self.figure,
            "measured": self.measured,
            "target": self.target,
            "met": self.met,
            "not_judged": None if self.met is not None or self.target == "—" else self.verdict,
            "scenario": self.scenario,
        }


def dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def ms(number: Any, digits: int = 0, *, reason: str | None = None) -> str:
    return value(number, "ms", digits, reason=reason)


def check(value: Any, ok: Callable[[Any], bool]) -> bool | None:
    return None if value is None else bool(ok(value))


def within(summary: JSON, *, p50: float, p99: float) -> bool | None:
    """Judged on the figures as printed; a p99 below the sample-size rule is ≈ the max, which only errs strict."""
    if summary.get("median") is None or summary.get("p99") is None:
        return None
    return bool(summary["median"] <= p50 and summary["p99"] <= p99)


# Issue #17 on simulated nodes: orchestrator / native ≤ 1.5, the controller's own overhead p50 ≤ 60 ms.
RATIO_TARGET = 1.5
OVERHEAD_P50_MS = 60


def _migration_rows(migration: JSON) -> list[Row]:
    methods = migration.get("methods") or {}
    native, cr, mbb = (methods.get(m) or {} for m in ("native", "checkpoint-restart", "make-before-break"))
    rows = []
    for name, entry in (
        ("native", native),
        ("orchestrator, auto → checkpoint-restart", cr),
        ("orchestrator, make-before-break", mbb),
    ):
        rows.append(
            Row(
                "1",
                f"Wall time, {name}: median / p90",
                percentiles(entry.get("wall_ms"), ("median", "p90")),
                "—",
                None,
                "migration",
            )
        )
    for key, what in (("ratio_to_native", "wall time"), ("ready_ratio_to_native", "request → replacement Ready")):
        for name, entry in (("checkpoint-restart (auto)", cr), ("make-before-break", mbb)):
            ratio = dig(entry, key, "median")
            rows.append(
                Row(
                    "1",
                    f"Ratio orchestrator / native, {what}, {name}: median of the per-round pairs",
                    missing("no round where both completed")
                    if ratio is None
                    else f"{ratio:.2f} (n={dig(entry, key, 'pairs')} pairs)",
                    f"≤ {RATIO_TARGET}",
                    check(ratio, lambda v: v <= RATIO_TARGET),
                    "migration",
                )
            )
    for name, entry in (("checkpoint-restart (auto)", cr), ("make-before-break", mbb)):
        extra = entry.get("extra_vs_native_ms")
        rows.append(
            Row(
                "1",
                f"Extra time over native, {name}: median of per-round differences (native wall time at which it"
                f" would give the ratio {RATIO_TARGET})",
                missing("no round where both completed")
                if extra is None
                else f"{ms(extra)} ({ms(entry.get('native_ms_for_ratio_1_5'))})"
                f" (n={dig(entry, 'ratio_to_native', 'pairs')} pairs)",
                "—",
                None,
                "migration",
            )
        )
    native_down = dig(native, "downtime_ms", "median")
    rows.append(
        Row(
            "2",
            "Downtime, native: median / max",
            percentiles(native.get("downtime_ms"), ("median", "max"), digits=1),
            "—",
            None,
            "migration",
        )
    )
    mbb_max = dig(mbb, "downtime_ms", "max")
    rows.append(
        Row(
            "2",
            "Downtime, make-before-break: median / max",
            percentiles(mbb.get("downtime_ms"), ("median", "max"), digits=1),
            "0 s",
            check(mbb_max, lambda v: v == 0),
            "migration",
        )
    )
    cr_down = dig(cr, "downtime_ms", "median")
    rows.append(
        Row(
            "2",
            "Downtime, checkpoint-restart: median / max",
            percentiles(cr.get("downtime_ms"), ("median", "max"), digits=1),
            f"≤ native ({ms(native_down, 1)})",
            None if cr_down is None or native_down is None else cr_down <= native_down,
            "migration",
        )
    )
    for name, entry in (("make-before-break", mbb), ("checkpoint-restart", cr)):
        created = entry.get("to_target_created_ms") or {}
        rows.append(
            Row(
                "3",
                f"POST sent → target pod ADDED, {name}: p50 / p99",
                percentiles(created),
                f"p50 ≤ {OVERHEAD_P50_MS} ms, p99 ≤ 500 ms",
                within(created, p50=OVERHEAD_P50_MS, p99=500),
                "migration",
            )
        )
        done = entry.get("ready_to_completed_ms") or {}
        rows.append(
            Row(
                "3",
                f"Target Ready seen → Completed seen, {name}: p50 / p99",
                percentiles(done),
                f"p50 ≤ {OVERHEAD_P50_MS} ms, p99 ≤ 500 ms",
                within(done, p50=OVERHEAD_P50_MS, p99=500),
                "migration",
            )
        )
        removal = entry.get("ready_to_removal_ms") or {}
        if removal:  # make-before-break: the part of the above that is the orchestrator's own reaction
            rows.append(
                Row(
                    "3",
                    f"Target Ready seen → source's removal seen (eviction), {name}: p50 / p99",
                    percentiles(removal),
                    f"p50 ≤ {OVERHEAD_P50_MS} ms, p99 ≤ 500 ms",
                    within(removal, p50=OVERHEAD_P50_MS, p99=500),
                    "migration",
                )
            )
    post = migration.get("post_all_ms") or {}
    rows.append(
        Row(
            "4",
            "POST /api/migrations (real, from item 1): p50 / p99",
            percentiles(post, digits=1),
            "p99 ≤ 50 ms",
            check(post.get("p99"), lambda v: v <= 50),
            "migration",
        )
    )
    return rows


def _api_rows(api: JSON) -> list[Row]:
    rows = []
    for key, name, limit in (("get_open", "GET /api/migrations/<id>", 10), ("dry_run_open", "POST dry_run", 50)):
        entry = api.get(key) or {}
        latency = entry.get("latency_ms") or {}
        p99, errors = latency.get("p99"), entry.get("error_count")
        if entry.get("error") and not latency:
            measured = missing(str(entry["error"])[:200])
        else:
            measured = (
                f"{percentiles(latency, digits=2)}; {value(entry.get('achieved_rps'), 'req/s')};"
                f" {value(errors, 'errors')}"
            )
        rows.append(
            Row(
                "4",
                f"{name} at {value(entry.get('target_rps'))} req/s open loop: p50 / p99; achieved; errors",
                measured,
                f"p99 ≤ {limit} ms, 0 errors",
                None if p99 is None or errors is None else p99 <= limit and errors == 0,
                "api",
                not_judged="no p99 measured" if p99 is None else None if errors is not None else "errors not counted",
            )
        )
    for key, name in (("get_closed", "GET"), ("dry_run_closed", "POST dry_run")):
        entry = api.get(key) or {}
        rows.append(
            Row(
                "4",
                f"{name} sustained, closed loop ({value(entry.get('concurrency'))} clients): req/s; p99",
                f"{value(entry.get('achieved_rps'), 'req/s', reason=entry.get('error'))};"
                f" {percentiles(entry.get('latency_ms'), ('p99',), digits=1)}",
                "—",
                None,
                "api",
            )
        )
    return rows


def pods_in_model(scale: JSON) -> int | None:
    """Pods Running when the orchestrator started (all of them are in its model after the sync)."""
    running = dig(scale, "population", "running")
    return dig(scale, "size", "pods") if running is None else int(running)


def memory_judgement(scale: JSON) -> tuple[float | None, bool | None, str | None]:
    """(the reading judged in MiB, met, why not judged). The 250 MB target names 10,000 pods: it is judged only on
    VmHWM read at the end of the scenario (the peak over the initial sync, the event burst and the migrations, with
    the whole population in the orchestrator's model), never on the reading right after the start-up sync, and only
    when that population was at least the target's 10,000 pods."""
    pods = pods_in_model(scale)
    peak = dig(scale, "memory_at_end", "hwm_mib")
    if peak is None:
        stopped = f" (stopped early: {str(scale['error'])[:120]})" if scale.get("error") else ""
        return None, None, f"no reading at the end of the scenario{stopped}; the start-up reading is not judged"
    if pods is None:
        return peak, None, "the number of pods in the model was not recorded"
    if pods < MEMORY_TARGET_PODS:
        return peak, None, f"read with {pods} pods in the model, the target names {MEMORY_TARGET_PODS}"
    return peak, peak * MB_PER_MIB <= MEMORY_TARGET_MB, None


def _memory_row(scale: JSON) -> Row:
    peak, met, why = memory_judgement(scale)
    pods = pods_in_model(scale)
    after_sync = dig(scale, "memory_after_sync", "rss_mib")
    judged = (
        missing("no reading at the end of the scenario")
        if peak is None
        else f"{peak} MiB (= {peak * MB_PER_MIB:.0f} MB), VmHWM read at the end"
    )
    return Row(
        "5",
        f"Orchestrator memory, {value(pods)} pods in its model: peak (VmHWM) read at the end of the scenario (sync,"
        " events, migrations) -- the judged reading; RSS right after the sync",
        f"{judged}; after the sync {value(after_sync, 'MiB')}",
        f"≤ {MEMORY_TARGET_MB} MB at {MEMORY_TARGET_PODS} pods",
        met,
        "scale",
        not_judged=why,
    )


def _scale_rows(scale: JSON) -> list[Row]:
    size = scale.get("size") or {}
    pods, nodes = size.get("pods"), size.get("nodes")
    sync = scale.get("sync_s")
    events = scale.get("events") or {}
    events_error = events.get("error")
    migrations = scale.get("migrations") or {}
    more = scale.get("migrations_more_workers") or {}
    rows = [
        Row(
            "5",
            f"Initial sync, {value(pods)} pods / {value(nodes)} nodes: process start → /readyz 200",
            value(sync, "s", 2),
            "≤ 15 s",
            check(sync, lambda v: v <= 15),
            "scale",
        ),
        _memory_row(scale),
        Row(
            "5",
            f"Pod events absorbed ({value(events.get('events'))} annotation patches); lag after the last patch",
            f"{value(events.get('absorbed_per_s'), 'events/s', reason=events_error)} (bench generated"
            f" {value(events.get('patch_rate_per_s'), '/s')}); {ms(events.get('lag_after_last_patch_ms'))}",
            "—",
            None,
            "scale",
        ),
        Row(
            "5",
            "Orchestrator CPU per pod event (capacity if CPU-bound)",
            f"{value(events.get('cpu_us_per_event'), 'µs', reason=events_error)}"
            f" ({value(events.get('cpu_bound_capacity_per_s'), 'events/s')})",
            "—",
            None,
            "scale",
        ),
    ]
    for label, burst in (
        (f"{value(migrations.get('requested'))} migrations at once", migrations),
        (
            f"{value(more.get('requested'))} more migrations at once, --workers={value(more.get('workers'))}"
            " (default 4)",
            more,
        ),
    ):
        rows.append(
            Row(
                "5",
                f"{label}: errors; all done; throughput",
                f"{value(burst.get('errors'), 'errors')}; {value(burst.get('all_done_s'), 's', reason=_why(burst))};"
                f" {value(burst.get('throughput_per_s'), 'migrations/s', reason=_why(burst))}",
                "0 errors",
                check(burst.get("errors"), lambda v: v == 0),
                "scale",
            )
        )
    return rows


def _why(burst: JSON) -> str | None:
    reasons = burst.get("not_measured") or {}
    return reasons.get("all_done_s") if isinstance(reasons, dict) else None


def _decision_rows(decision: JSON) -> list[Row]:
    rows = []
    for key, name in (("plan", "empty target node"), ("plan_target_with_100_pods", "target node with 100 pods")):
        median = dig(decision, key, "median_us")
        best = dig(decision, key, "best_us")
        batches = dig(decision, key, "batches")
        rows.append(
            Row(
                "6",
                f"Decision (analysis + plan) for the certification pod, {name}: µs per plan, median (best) of"
                " the timeit batches",
                missing() if median is None else f"{median:.0f} µs ({value(best, 'µs', 0)}) (n={batches} batches)",
                "≤ 1 ms",
                check(median, lambda v: v <= 1000),
                "decision",
            )
        )
    return rows


def _checkpoint_rows(checkpoint: JSON) -> list[Row]:
    rows = []
    for entry in checkpoint.get("sizes") or []:
        reason = entry.get("throughput_reason") or (
            f"migration {entry.get('status')}: {entry.get('error')}" if entry.get("status") != "completed" else None
        )
        rows.append(
            Row(
                "—",
                f"Checkpoint artifact copy, {entry.get('artifact_mib')} MiB: throughput; RSS growth",
                f"{value(entry.get('throughput_mib_s'), 'MiB/s', reason=reason)};"
                f" {value(entry.get('rss_growth_mib'), 'MiB', reason=entry.get('rss_reason'))}"
                f" (identical: {value(entry.get('identical'), reason=entry.get('identical_reason'))})",
                "—",
                None,
                "checkpoint",
            )
        )
    if checkpoint.get("error"):
        rows.append(Row("—", "Checkpoint throughput", missing(checkpoint["error"][:200]), "—", None, "checkpoint"))
    return rows


def rows(scenarios: JSON) -> list[Row]:
    found: list[Row] = []
    if "migration" in scenarios:
        found += _migration_rows(scenarios["migration"].get("summary") or {})
    if "api" in scenarios:
        found += _api_rows(scenarios["api"].get("results") or {})
    if "scale" in scenarios:
        found += _scale_rows(scenarios["scale"].get("outcome") or {})
    if "decision" in scenarios:
        found += _decision_rows(scenarios["decision"].get("results") or {})
    if "checkpoint" in scenarios:
        found += _checkpoint_rows(scenarios["checkpoint"])
    return found
