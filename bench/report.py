"""bench/results/latest.json → Markdown: the targets table, the details of every scenario and the profiles' top
entries; the generated part of docs/BENCHMARKS.md is the text between its two markers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.machine import one_line
from bench.publish import run_scale
from bench.render import NOT_MEASURED, cell, labelled, missing, pairs, value
from bench.targets import dig, rows

JSON = dict[str, Any]
BEGIN = "<!-- bench:generated:begin (make bench rewrites everything up to the end marker) -->"
END = "<!-- bench:generated:end -->"


def reproduce(scenario: str, *, quick: bool, orchestrator_args: Sequence[str] = ()) -> str:
    extra = (" --quick" if quick else "") + "".join(f" --orchestrator-arg={flag}" for flag in orchestrator_args)
    return f'`make bench BENCH_ARGS="--only {scenario}{extra}"`'


def _table(header: list[str], body: list[list[Any]], *, absent: str = NOT_MEASURED) -> list[str]:
    """`absent` stands in for None: "not measured" unless the table says what else an empty cell means."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(absent if item is None else str(item) for item in row) + " |" for row in body]
    return [*lines, ""]


def _targets(results: JSON) -> list[str]:
    scenarios = results.get("scenarios") or {}
    body = [
        [
            row.item,
            row.figure,
            row.measured,
            row.target,
            row.verdict,
            reproduce(
                row.scenario,
                quick=bool(dig(scenarios, row.scenario, "quick")),
                orchestrator_args=dig(scenarios, row.scenario, "orchestrator_args") or (),
            ),
        ]
        for row in rows(scenarios)
    ]
    return _table(["#", "Figure", "Measured", "Target", "Met", "Reproduce"], body)


def _migration_details(migration: JSON) -> list[str]:
    summary = migration.get("summary") or {}
    methods = summary.get("methods") or {}
    lines = [f"### Migration runs ({value(migration.get('rounds'))} rounds, order rotated every round)", ""]
    body = []
    for name, entry in methods.items():
        for figure in (
            "wall_ms",
            "to_ready_ms",
            "downtime_ms",
            "to_target_created_ms",
            "ready_to_completed_ms",
            "ready_to_removal_ms",
        ):
            values = entry.get(figure)
            if values:
                cells = [cell(values, k) for k in ("median", "p90", "p99")]
                body.append([name, figure.removesuffix("_ms"), values.get("n"), *cells, values.get("max")])
    lines += _table(["method", "figure (ms)", "n", "median", "p90", "p99", "max"], body)
    lines += [_THIN_NOTE, ""]
    phases = {name: entry.get("phases_median_ms") or {} for name, entry in methods.items() if name != "native"}
    names = list(dict.fromkeys(p for values in phases.values() for p in values))
    lines += [
        "Per-phase breakdown (median ms, from `phase_transitions`; Pending = POST sent → Validating; — = the"
        " method has no such phase):",
        "",
    ]
    lines += _table(["phase", *phases], [[p, *(phases[m].get(p) for m in phases)] for p in names], absent="—")
    errors = [e for entry in methods.values() for e in entry.get("errors") or []]
    lines += [f"Runs that did not complete: {len(errors)}" + (f" ({'; '.join(errors[:5])})" if errors else ""), ""]
    return lines


def _api_details(api: JSON) -> list[str]:
    results = api.get("results") or {}
    if not results and api.get("error"):
        return ["### REST API load (bench.api_load, separate process)", "", missing(str(api["error"])[:300]), ""]
    body = []
    for name, entry in results.items():
        latency = entry.get("latency_ms") or {}
        lag = entry.get("send_lag_ms") or {}
        mode = {"open": entry.get("target_rps"), "closed": f"closed, {entry.get('concurrency')} clients"}
        body.append(
            [
                name,
                mode.get(entry.get("mode"), missing(str(entry.get("error", ""))[:200] or None)),
                entry.get("achieved_rps"),
                entry.get("ok"),
                entry.get("error_count", entry.get("error")),
                latency.get("n"),
                cell(latency, "median"),
                cell(latency, "p90"),
                cell(latency, "p99"),
                latency.get("max"),
                f"{cell(lag, 'p99')} (n={lag.get('n')})" if lag.get("n") else "— (closed loop)",
                entry.get("server_cpu_s"),
            ]
        )
    header = ["load", "target req/s", "achieved req/s", "ok", "errors", "n", "p50 ms", "p90 ms", "p99 ms", "max ms",
              "client send lag p99 ms", "server CPU s"]  # fmt: skip
    return ["### REST API load (bench.api_load, separate process)", "", *_table(header, body), _THIN_NOTE, ""]


_THIN_NOTE = (
    "n = samples per figure; a percentile marked ≈ max rests on fewer samples than it needs (p99 100, p90 10,"
    " see bench/stats.py) and is in fact about the largest of them."
)


def events_duration(events: JSON) -> float | None:
    """Seconds the orchestrator took to absorb the events: measured (absorbed_s), or derived from the count and the
    measured rate; None when either is missing (no made-up divisor)."""
    if events.get("absorbed_s") is not None:
        return float(events["absorbed_s"])
    count, rate = events.get("events"), events.get("absorbed_per_s")
    if count is None or not rate:
        return None
    return float(count) / float(rate)


def _burst(name: str, burst: JSON) -> list[str]:
    if not burst:
        return []
    reasons = burst.get("not_measured") or {}
    cpu_per_migration = burst.get("orchestrator_cpu_ms_per_migration")
    accepted = f"{value(burst.get('accepted'))}/{value(burst.get('requested'))} accepted"
    outcomes = f"outcomes {pairs(burst.get('outcomes'))}, rejected {pairs(burst.get('rejected'))}"
    posts = (
        f"POST latency {labelled(burst.get('post_ms'))} at the client,"
        f" {labelled(burst.get('post_server_side_ms'))} in the server's log"
    )
    return [
        f"- {name}: {accepted}, {outcomes}; all POSTs answered after {value(burst.get('all_posted_s'), 's')}"
        f" ({posts}); all done after {value(burst.get('all_done_s'), 's', reason=reasons.get('all_done_s'))}",
        f"  - startedAt → finishedAt {labelled(burst.get('migration_duration_s'), unit='s')}; median time per"
        f" phase: {pairs(burst.get('phases_median_ms'), 'ms')}",
        f"  - CPU seconds during the burst (the machine has CPUs times wall time; unattributed = machine busy minus the"
        f" listed processes): {pairs(burst.get('cpu_s_by_process'))};"
        f" orchestrator {value(cpu_per_migration, 'ms', reason=reasons.get('orchestrator_cpu_ms_per_migration'))}"
        " per migration",
        f"  - API server requests per migration (all clients): {pairs(burst.get('apiserver_requests_per_migration'))}",
    ]


def _scale_details(scale: JSON) -> list[str]:
    outcome = scale.get("outcome") or {}
    population = outcome.get("population") or {}
    events = outcome.get("events") or {}
    lines = [
        "### Scale",
        "",
        f"- population: {value(population.get('pods'))} pods created in {value(population.get('create_s'), 's')}"
        f" ({value(population.get('create_per_s'), '/s')}, errors {pairs(population.get('create_errors'))}); all"
        f" Running after {value(population.get('all_running_s'), 's')}",
        f"- orchestrator: `{outcome.get('orchestrator_command')}`",
        f"- memory: after the sync {pairs(outcome.get('memory_after_sync'))}; at the end"
        f" {pairs(outcome.get('memory_at_end'))}",
        f"- events: {value(events.get('events'), reason=events.get('error'))} in"
        f" {value(events_duration(events), 's', 1, reason=events.get('error'))};"
        f" CPU seconds meanwhile: {pairs(events.get('cpu_s_by_process'))}",
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
            reason = profile.get("error") if isinstance(profile, dict) else None
            lines += [f"### Profile: {name}", "", missing(str(reason) if reason else None), ""]
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


def markdown(results: JSON, *, unpublished: list[str] | None = None) -> str:
    """The page of a run; `unpublished`: why it is below the published scale (said at the top, and never written
    into docs/BENCHMARKS.md, see bench.runner)."""
    scenarios = results.get("scenarios") or {}
    lines = []
    if unpublished:
        lines += [f"**Not at the published scale** ({'; '.join(unpublished)}): not a published result.", ""]
    lines += [
        f"Generated {results.get('finished_at')} by `{results.get('command')}`"
        f" on {one_line(results.get('machine') or {})}.",
        "",
        "Scale of this run (from its own parameters): " + ("; ".join(run_scale(results)) or "no scenario ran") + ".",
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
