"""The issue's targets next to the measured values: one row per figure, with the command that reproduces it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MB_PER_MIB = 1.048576
JSON = dict[str, Any]


@dataclass(frozen=True)
class Row:
    item: str
    figure: str
    measured: str
    target: str
    met: bool | None  # None: no target, or not measured
    scenario: str

    def to_json(self) -> JSON:
        return {
            "item": self.item,
            "figure": self.figure,
            "measured": self.measured,
            "target": self.target,
            "met": self.met,
            "scenario": self.scenario,
        }


def dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def ms(value: Any, digits: int = 0) -> str:
    return "not measured" if value is None else f"{value:.{digits}f} ms"


def check(value: Any, ok: Callable[[Any], bool]) -> bool | None:
    return None if value is None else bool(ok(value))


def within(summary: JSON, *, p50: float, p99: float) -> bool | None:
    if summary.get("median") is None or summary.get("p99") is None:
        return None
    return bool(summary["median"] <= p50 and summary["p99"] <= p99)


def _migration_rows(migration: JSON) -> list[Row]:
    methods = migration.get("methods") or {}
    native, cr, mbb = (methods.get(m) or {} for m in ("native", "checkpoint-restart", "make-before-break"))
    rows = []
    for name, entry in (
        ("native", native),
        ("orchestrator, auto → checkpoint-restart", cr),
        ("orchestrator, make-before-break", mbb),
    ):
        wall = entry.get("wall_ms") or {}
        rows.append(
            Row(
                "1",
                f"Wall time, {name}: median / p90 (n={wall.get('n')})",
                f"{ms(wall.get('median'))} / {ms(wall.get('p90'))}",
                "—",
                None,
                "migration",
            )
        )
    for name, entry in (("checkpoint-restart (auto)", cr), ("make-before-break", mbb)):
        ratio = dig(entry, "ratio_to_native", "median")
        rows.append(
            Row(
                "1",
                f"Ratio orchestrator / native, {name}: median of {dig(entry, 'ratio_to_native', 'pairs')} pairs",
                "not measured" if ratio is None else f"{ratio:.2f}",
                "≤ 1.10",
                check(ratio, lambda v: v <= 1.10),
                "migration",
            )
        )
    for name, entry in (("checkpoint-restart (auto)", cr), ("make-before-break", mbb)):
        extra = entry.get("extra_vs_native_ms")
        rows.append(
            Row(
                "1",
                f"Extra time over native, {name}: median of per-round differences (native wall time at which it"
                " would give the ratio 1.10)",
                f"{ms(extra)} ({ms(entry.get('native_ms_for_ratio_1_10'))})",
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
            f"{ms(native_down, 1)} / {ms(dig(native, 'downtime_ms', 'max'), 1)}",
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
            f"{ms(dig(mbb, 'downtime_ms', 'median'), 1)} / {ms(mbb_max, 1)}",
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
            f"{ms(cr_down, 1)} / {ms(dig(cr, 'downtime_ms', 'max'), 1)}",
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
                f"{ms(created.get('median'))} / {ms(created.get('p99'))}",
                "p50 ≤ 150 ms, p99 ≤ 500 ms",
                within(created, p50=150, p99=500),
                "migration",
            )
        )
        done = entry.get("ready_to_completed_ms") or {}
        rows.append(
            Row(
                "3",
                f"Target Ready seen → Completed seen, {name}: p50 / p99",
                f"{ms(done.get('median'))} / {ms(done.get('p99'))}",
                "p50 ≤ 150 ms, p99 ≤ 500 ms",
                within(done, p50=150, p99=500),
                "migration",
            )
        )
    post = migration.get("post_all_ms") or {}
    rows.append(
        Row(
            "4",
            f"POST /api/migrations (real, from item 1): p50 / p99 (n={post.get('n')})",
            f"{ms(post.get('median'), 1)} / {ms(post.get('p99'), 1)}",
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
        rows.append(
            Row(
                "4",
                f"{name} at {entry.get('target_rps')} req/s open loop: p50 / p99; achieved; errors",
                f"{ms(latency.get('median'), 2)} / {ms(latency.get('p99'), 2)}; {entry.get('achieved_rps')} "
                f"req/s; {entry.get('error_count')}",
                f"p99 ≤ {limit} ms",
                None if latency.get("p99") is None else latency["p99"] <= limit and entry.get("error_count") == 0,
                "api",
            )
        )
    for key, name in (("get_closed", "GET"), ("dry_run_closed", "POST dry_run")):
        entry = api.get(key) or {}
        rows.append(
            Row(
                "4",
                f"{name} sustained, closed loop ({entry.get('concurrency')} clients): req/s; p99",
                f"{entry.get('achieved_rps')} req/s; {ms(dig(entry, 'latency_ms', 'p99'), 1)}",
                "—",
                None,
                "api",
            )
        )
    return rows


def _scale_rows(scale: JSON) -> list[Row]:
    size = scale.get("size") or {}
    pods, nodes = size.get("pods"), size.get("nodes")
    sync = scale.get("sync_s")
    hwm = dig(scale, "memory_at_end", "hwm_mib") or dig(scale, "memory_after_sync", "hwm_mib")
    events = scale.get("events") or {}
    migrations = scale.get("migrations") or {}
    more = scale.get("migrations_more_workers") or {}
    return [
        Row(
            "5",
            f"Initial sync, {pods} pods / {nodes} nodes: process start → /readyz 200",
            "not measured" if sync is None else f"{sync:.2f} s",
            "≤ 15 s",
            check(sync, lambda v: v <= 15),
            "scale",
        ),
        Row(
            "5",
            "Orchestrator memory: RSS after sync; peak (VmHWM) over the scenario",
            f"{dig(scale, 'memory_after_sync', 'rss_mib')} MiB; {hwm} MiB"
            + ("" if hwm is None else f" (= {hwm * MB_PER_MIB:.0f} MB)"),
            "≤ 250 MB",
            check(hwm, lambda v: v * MB_PER_MIB <= 250),
            "scale",
        ),
        Row(
            "5",
            f"Pod events absorbed ({events.get('events')} annotation patches); lag after the last patch",
            f"{events.get('absorbed_per_s')} events/s (bench generated {events.get('patch_rate_per_s')}/s); "
            f"{ms(events.get('lag_after_last_patch_ms'))}",
            "—",
            None,
            "scale",
        ),
        Row(
            "5",
            "Orchestrator CPU per pod event (capacity if CPU-bound)",
            f"{events.get('cpu_us_per_event')} µs ({events.get('cpu_bound_capacity_per_s')} events/s)",
            "—",
            None,
            "scale",
        ),
        Row(
            "5",
            f"{migrations.get('requested')} migrations at once: errors; all done; throughput",
            f"{migrations.get('errors')} errors; {migrations.get('all_done_s')} s; "
            f"{migrations.get('throughput_per_s')} migrations/s",
            "0 errors",
            check(migrations.get("errors"), lambda v: v == 0),
            "scale",
        ),
        Row(
            "5",
            f"{more.get('requested')} more migrations at once, --workers={more.get('workers')} (default 4): errors; "
            "all done; throughput",
            f"{more.get('errors')} errors; {more.get('all_done_s')} s; {more.get('throughput_per_s')} migrations/s",
            "0 errors",
            check(more.get("errors"), lambda v: v == 0),
            "scale",
        ),
    ]


def _decision_rows(decision: JSON) -> list[Row]:
    rows = []
    for key, name in (("plan", "empty target node"), ("plan_target_with_100_pods", "target node with 100 pods")):
        median = dig(decision, key, "median_us")
        best = dig(decision, key, "best_us")
        rows.append(
            Row(
                "6",
                f"Decision (analysis + plan) for the certification pod, {name}: µs per plan, median (best) of"
                " the timeit batches",
                "not measured" if median is None else f"{median:.0f} µs ({best:.0f} µs)",
                "≤ 1 ms",
                check(median, lambda v: v <= 1000),
                "decision",
            )
        )
    return rows


def _checkpoint_rows(checkpoint: JSON) -> list[Row]:
    rows = []
    for entry in checkpoint.get("sizes") or []:
        rows.append(
            Row(
                "—",
                f"Checkpoint artifact copy, {entry.get('artifact_mib')} MiB: throughput; RSS growth",
                f"{entry.get('throughput_mib_s')} MiB/s; {entry.get('rss_growth_mib')} MiB"
                f" (identical: {entry.get('identical')})",
                "—",
                None,
                "checkpoint",
            )
        )
    if checkpoint.get("error"):
        rows.append(
            Row("—", "Checkpoint throughput", f"not measured: {checkpoint['error'][:200]}", "—", None, "checkpoint")
        )
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
