"""bench/results/latest.json → Markdown: the targets table, the details of every scenario and the profiles' top
entries; the generated part of docs/BENCHMARKS.md is the text between its two markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.machine import one_line
from bench.targets import dig, rows

JSON = dict[str, Any]
BEGIN = "<!-- bench:generated:begin (make bench rewrites everything up to the end marker) -->"
END = "<!-- bench:generated:end -->"


def reproduce(scenario: str, *, quick: bool) -> str:
    extra = " --quick" if quick else ""
    return f'`make bench BENCH_ARGS="--only {scenario}{extra}"`'


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "—"}[value]


def _table(header: list[str], body: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("—" if cell is None else str(cell) for cell in row) + " |" for row in body]
    return [*lines, ""]


def _targets(results: JSON) -> list[str]:
    scenarios = results.get("scenarios") or {}
    body = [
        [
            row.item,
            row.figure,
            row.measured,
            row.target,
            _met(row.met),
            reproduce(row.scenario, quick=bool(dig(scenarios, row.scenario, "quick"))),
        ]
        for row in rows(scenarios)
    ]
    return _table(["#", "Figure", "Measured", "Target", "Met", "Reproduce"], body)


def _migration_details(migration: JSON) -> list[str]:
    summary = migration.get("summary") or {}
    methods = summary.get("methods") or {}
    lines = [f"### Migration runs ({migration.get('rounds')} rounds, order rotated every round)", ""]
    body = []
    for name, entry in methods.items():
        for figure in ("wall_ms", "to_ready_ms", "downtime_ms", "to_target_created_ms", "ready_to_completed_ms"):
            values = entry.get(figure)
            if values:
                body.append([name, figure.removesuffix("_ms")] + [values.get(k) for k in ("n", "median", "p90", "p99",
                                                                                         "max")])  # fmt: skip
    lines += _table(["method", "figure (ms)", "n", "median", "p90", "p99", "max"], body)
    phases = {name: entry.get("phases_median_ms") or {} for name, entry in methods.items() if name != "native"}
    names = list(dict.fromkeys(p for values in phases.values() for p in values))
    lines += ["Per-phase breakdown (median ms, from `phase_transitions`; Pending = POST sent → Validating):", ""]
    lines += _table(["phase", *phases], [[p, *(phases[m].get(p) for m in phases)] for p in names])
    errors = [e for entry in methods.values() for e in entry.get("errors") or []]
    lines += [f"Runs that did not complete: {len(errors)}" + (f" ({'; '.join(errors[:5])})" if errors else ""), ""]
    return lines


def _api_details(api: JSON) -> list[str]:
    results = api.get("results") or {}
    body = []
    for name, entry in results.items():
        latency = entry.get("latency_ms") or {}
        body.append(
            [
                name,
                entry.get("target_rps") or f"closed, {entry.get('concurrency')} clients",
                entry.get("achieved_rps"),
                entry.get("ok"),
                entry.get("error_count", entry.get("error")),
                latency.get("median"),
                latency.get("p90"),
                latency.get("p99"),
                latency.get("max"),
                dig(entry, "send_lag_ms", "p99"),
                entry.get("server_cpu_s"),
            ]
        )
    header = ["load", "target req/s", "achieved req/s", "ok", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms",
              "client send lag p99 ms", "server CPU s"]  # fmt: skip
    return ["### REST API load (bench.api_load, separate process)", "", *_table(header, body)]


def _pairs(values: Any, unit: str = "") -> str:
    if not isinstance(values, dict):
        return str(values)
    return ", ".join(f"{key} {value}{unit}" for key, value in values.items()) or "none"


def _burst(name: str, burst: JSON) -> list[str]:
    if not burst:
        return []
    post, server = burst.get("post_ms") or {}, burst.get("post_server_side_ms") or {}
    duration = burst.get("migration_duration_s") or {}
    accepted = f"{burst.get('accepted')}/{burst.get('requested')} accepted"
    outcomes = f"outcomes {_pairs(burst.get('outcomes'))}, rejected {_pairs(burst.get('rejected'))}"
    posts = (
        f"POST latency p50 {post.get('median')} / p99 {post.get('p99')} ms at the client,"
        f" {server.get('median')} / {server.get('p99')} ms in the server's log"
    )
    return [
        f"- {name}: {accepted}, {outcomes}; all POSTs answered after {burst.get('all_posted_s')} s ({posts});"
        f" all done after {burst.get('all_done_s')} s",
        f"  - startedAt → finishedAt p50 {duration.get('median')} / p99 {duration.get('p99')} s; median time per"
        f" phase: {_pairs(burst.get('phases_median_ms'), ' ms')}",
        f"  - CPU seconds during the burst (the machine has CPUs times wall time; unattributed = machine busy minus the"
        f" listed processes): {_pairs(burst.get('cpu_s_by_process'))};"
        f" orchestrator {burst.get('orchestrator_cpu_ms_per_migration')} ms per migration",
        f"  - API server requests per migration (all clients): {_pairs(burst.get('apiserver_requests_per_migration'))}",
    ]


def _scale_details(scale: JSON) -> list[str]:
    outcome = scale.get("outcome") or {}
    population = outcome.get("population") or {}
    events = outcome.get("events") or {}
    lines = [
        "### Scale",
        "",
        f"- population: {population.get('pods')} pods created in {population.get('create_s')} s "
        f"({population.get('create_per_s')}/s, errors {_pairs(population.get('create_errors'))}); all Running after "
        f"{population.get('all_running_s')} s",
        f"- orchestrator: `{outcome.get('orchestrator_command')}`",
        f"- memory: after the sync {_pairs(outcome.get('memory_after_sync'))}; at the end"
        f" {_pairs(outcome.get('memory_at_end'))}",
        f"- events: {events.get('events')} in {events.get('events', 0) / (events.get('absorbed_per_s') or 1):.1f} s;"
        f" CPU seconds meanwhile: {_pairs(events.get('cpu_s_by_process'))}",
        *_burst("migrations", outcome.get("migrations") or {}),
        *_burst(
            f"migrations with --workers={dig(outcome, 'migrations_more_workers', 'workers')}",
            outcome.get("migrations_more_workers") or {},
        ),
    ]
    if outcome.get("error"):
        lines.append(f"- stopped early: {outcome['error']}")
    return [*lines, ""]


def _profiles(results: JSON) -> list[str]:
    lines = []
    for name, profile in (results.get("profiles") or {}).items():
        if not profile or "by_own_time" not in profile:
            lines += [f"### Profile: {name}", "", f"not measured: {profile}", ""]
            continue
        lines += [
            f"### Profile: {name}",
            "",
            f"{profile.get('what', '')} Total {profile['total_s']} s, of which {profile['idle_in_event_loop_poll_s']}"
            f" s idle in the event loop's poll. Full listing: `{profile.get('listing', '')}`.",
            "",
        ]
        body = [[r["function"], r["calls"], r["own_s"], r["cumulative_s"]] for r in profile["by_own_time"][:12]]
        lines += _table(["function (top own time)", "calls", "own s", "cumulative s"], body)
        project = profile.get("project_by_cumulative_time") or []
        body = [[r["function"], r["calls"], r["own_s"], r["cumulative_s"]] for r in project[:10]]
        lines += _table(["orchestrator function (top cumulative time)", "calls", "own s", "cumulative s"], body)
    return lines


def markdown(results: JSON) -> str:
    scenarios = results.get("scenarios") or {}
    lines = [
        f"Generated {results.get('finished_at')} by `{results.get('command')}`"
        f" on {one_line(results.get('machine') or {})}.",
        "",
        *_targets(results),
    ]
    if "migration" in scenarios:
        lines += _migration_details(scenarios["migration"])
    if "api" in scenarios:
        lines += _api_details(scenarios["api"])
    if "scale" in scenarios:
        lines += _scale_details(scenarios["scale"])
    lines += _profiles(results)
    return "\n".join(lines).rstrip() + "\n"


def update_docs(path: Path, generated: str) -> None:
    """Replace the text between the markers (append them when the file has none)."""
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n\n{generated}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
