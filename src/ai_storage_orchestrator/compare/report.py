"""The comparison's report: the console summary in the certification's shape, JSON, Markdown, and, with the
``report`` extra (matplotlib, markdown-it-py), the charts as PNG and SVG and one self-contained report.html."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ai_storage_orchestrator.compare import html, render
from ai_storage_orchestrator.compare import spec_output as spec
from ai_storage_orchestrator.compare.chart import ChartFile
from ai_storage_orchestrator.compare.measuring import iso_time
from ai_storage_orchestrator.compare.results import INSUFFICIENT, NOT_MEASURED, WINDOW_RULES, Comparison, MethodResult
from ai_storage_orchestrator.compare.timing import RESOLUTION_NOTE, Span
from ai_storage_orchestrator.compare.workload import scale_note
from ai_storage_orchestrator.controller.planning.quantities import format_cpu, format_memory

HEADERS = ("METRIC", "K8S NATIVE", "AI ORCHESTRATOR", "IMPROVEMENT")
NA = "n/a"
JSON_FILE, MARKDOWN_FILE = "report.json", "report.md"


@dataclass(frozen=True, slots=True)
class Row:
    metric: str
    native: str
    orchestrator: str
    improvement: str


def _percent(native: float | None, orchestrator: float | None) -> str:
    if native is None or orchestrator is None or native == 0:
        return NA
    return f"{(native - orchestrator) / native * 100:.1f}%"


def _measured(method: MethodResult, value: float | None, unit: str, digits: int = 0) -> str:
    m = method.measurement
    if m.status == NOT_MEASURED:
        return f"not measured: {m.reason}"
    if m.status == INSUFFICIENT and m.restarts:
        return f"insufficient (restarted in the window: {', '.join(m.restarts)})"
    if m.status == INSUFFICIENT:
        valid = m.log.valid_count if m.log else 0
        return f"insufficient ({valid} valid samples)"
    if value is None:
        return f"not measured: {m.figures.memory_reason if m.figures else 'no value'}"
    return f"{value:.{digits}f}{unit}"


def _figure(native: MethodResult, orchestrator: MethodResult, metric: str, unit: str, digits: int = 0) -> Row:
    def value(method: MethodResult) -> float | None:
        figures = method.measurement.figures
        if figures is None:
            return None
        return {"cpu": figures.cpu_millicores, "memory": figures.memory_mib, "cpu_seconds": figures.cpu_seconds}[metric]

    return Row(
        {"cpu": "CPU Usage", "memory": "Memory Usage", "cpu_seconds": "CPU-seconds"}[metric],
        _measured(native, value(native), unit, digits),
        _measured(orchestrator, value(orchestrator), unit, digits),
        _percent(value(native), value(orchestrator)),
    )


def _freed(native: int, orchestrator: int, text: str) -> str:
    percent = _percent(native, orchestrator)
    return f"{percent} ({text} freed)" if native != orchestrator else percent


def _times(native: Span, orchestrator: Span) -> str:
    """The orchestrator's figure as a multiple of the native one (both measured, the native one not 0)."""
    if native.seconds is None or orchestrator.seconds is None or native.seconds == 0:
        return NA
    return f"{orchestrator.seconds / native.seconds:.2f} x native"


def rows(comparison: Comparison, *, memory_unit: str = "MiB") -> list[Row]:
    """The specification's rows (CPU Usage, Memory Usage) first, then ours. ``memory_unit``: the label of MiB values
    (the console prints the specification's ``MB``, meaning MiB)."""
    native, orchestrator = comparison.native, comparison.orchestrator
    if native is None or orchestrator is None:
        return []
    cpu_freed = native.requests.cpu_millicores - orchestrator.requests.cpu_millicores
    memory_freed = native.requests.memory_bytes - orchestrator.requests.memory_bytes
    fewer = len(native.started) - len(orchestrator.started)
    time_saving = NA
    if native.wall_seconds > 0:
        difference = orchestrator.wall_seconds - native.wall_seconds
        share = abs(difference) / native.wall_seconds * 100
        direction, amount = ("slower", "more") if difference > 0 else ("faster", "less")
        time_saving = f"{abs(difference):.2f}s {direction} ({share:.1f}% {amount} time)"
    return [
        _figure(native, orchestrator, "cpu", "m"),
        _figure(native, orchestrator, "memory", memory_unit),
        _figure(native, orchestrator, "cpu_seconds", "s", 2),
        Row(
            "CPU requests",
            format_cpu(native.requests.cpu_millicores),
            format_cpu(orchestrator.requests.cpu_millicores),
            _freed(native.requests.cpu_millicores, orchestrator.requests.cpu_millicores, format_cpu(cpu_freed)),
        ),
        Row(
            "Memory requests",
            format_memory(native.requests.memory_bytes),
            format_memory(orchestrator.requests.memory_bytes),
            _freed(native.requests.memory_bytes, orchestrator.requests.memory_bytes, format_memory(memory_freed)),
        ),
        Row(
            "Containers started",
            str(len(native.started)),
            str(len(orchestrator.started)),
            f"{fewer} fewer" if fewer > 0 else (f"{-fewer} more" if fewer < 0 else "same"),
        ),
        Row("Migration time", f"{native.wall_seconds:.2f}s", f"{orchestrator.wall_seconds:.2f}s", time_saving),
        Row(
            "Trainer downtime",
            native.downtime.text(),
            orchestrator.downtime.text(),
            _times(native.downtime, orchestrator.downtime),
        ),
        Row(
            "Request → Ready",
            native.request_to_ready.text(),
            orchestrator.request_to_ready.text(),
            _times(native.request_to_ready, orchestrator.request_to_ready),
        ),
    ]


def timing_notes(comparison: Comparison) -> list[str]:
    """Where Trainer downtime and Request → Ready come from, and why a figure was not measured."""
    notes = [f"Trainer downtime and Request → Ready: kubelet time stamps; {RESOLUTION_NOTE}"]
    for method in comparison.methods:
        for span, what in ((method.downtime, "Trainer downtime"), (method.request_to_ready, "Request → Ready")):
            if span.reason:
                notes.append(f"{what} ({method.title}) not measured: {span.reason}")
    return notes


def table_lines(table: Sequence[Row]) -> list[str]:
    cells = [HEADERS, *((r.metric, r.native, r.orchestrator, r.improvement) for r in table)]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]

    def line(row: Sequence[str], header: bool = False) -> str:
        first = row[0].ljust(widths[0])
        rest = [(value.ljust(w) if header else value.rjust(w)) for value, w in zip(row[1:], widths[1:], strict=True)]
        return " │ ".join([first, *rest]).rstrip()

    rule = "─┼─".join("─" * w for w in widths)
    return [line(HEADERS, header=True), rule, *(line(r) for r in cells[1:])]


def node_migration_lines(comparison: Comparison) -> list[str]:
    """``NODE MIGRATION:`` and its four bullets: where the pod started and where each method left it (as read from the
    new pods), and whether both reached their targets."""
    native, orchestrator = comparison.native, comparison.orchestrator
    original = native.from_node if native else (comparison.source_node.name if comparison.source_node else "unknown")
    native_node = (native.final_node or "unknown") if native else "not run"
    orchestrator_node = (orchestrator.final_node or "unknown") if orchestrator else "not run"
    missed = [
        f"{m.title} ended on {m.final_node or 'an unknown node'}, not {m.to_node}"
        for m in comparison.methods
        if m.final_node != m.to_node
    ]
    if native is None or orchestrator is None:
        missed.append("the comparison did not finish")
    achievement = "COMPLETE" if not missed else f"INCOMPLETE ({'; '.join(missed)})"
    return [
        "NODE MIGRATION:",
        f"• Original Location: {original}",
        f"• K8s Native Result: {native_node}",
        f"• AI Orchestrator Result: {orchestrator_node}",
        f"• Target Achievement: {achievement}",
    ]


def console_lines(comparison: Comparison, *, threshold: float, allow_unmeasured: bool) -> list[str]:
    """The specification's summary: banner, NODE MIGRATION, the METRIC table (its two rows first, then ours), a
    footnote, and the RESULT line (our verdict and facts on the ``#`` line after it)."""
    lines = ["", spec.RULE, spec.SUMMARY_TITLE, spec.RULE, *node_migration_lines(comparison), ""]
    table = rows(comparison, memory_unit="MB")
    if table:
        lines += table_lines(table)
        note = f"# {spec.MB_NOTE}"
        if any(m.measurement.status != NOT_MEASURED for m in comparison.methods):
            window = comparison.settings.get("window_start", "ready")
            samples, trim = comparison.settings.get("samples"), comparison.settings.get("trim")
            note += (
                f". CPU Usage and Memory Usage: trimmed means of {samples} samples ({trim} highest and {trim} lowest"
                f" dropped); window starts at {window}: {WINDOW_RULES.get(str(window))}"
            )
        lines.append(note)
        if scaled := scale_note(comparison.workload):
            lines.append(f"# {scaled}")
        lines += [f"# {note}" for note in timing_notes(comparison)]
        lines.append("")
    verdict = comparison.verdict(threshold=threshold, allow_unmeasured=allow_unmeasured)
    lines += verdict.console_lines
    if comparison.timing is not None:
        lines += ["", *comparison.timing.lines()]
    return lines


def markdown(
    comparison: Comparison,
    *,
    threshold: float,
    allow_unmeasured: bool,
    charts: Sequence[ChartFile] = (),
    charts_note: str | None = None,
) -> str:
    """``charts``: the drawn charts, linked by their PNG; ``charts_note``: why there are none."""
    c = comparison
    verdict = c.verdict(threshold=threshold, allow_unmeasured=allow_unmeasured)
    out = [
        f"# AI migration comparison {c.test_id}",
        "",
        f"- date: {iso_time(c.started)}",
        f"- namespace: `{c.namespace}`, workload: `{c.workload}`",
        f"- source node: {c.source_node.describe() if c.source_node else NA}",
        f"- target node: {c.target_node.describe() if c.target_node else NA}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in c.versions.items())}",
        f"- measurement source: {c.measurement_source or NA} ({c.measurement_source_reason or NA})",
        f"- window start: `{c.settings.get('window_start')}` = {WINDOW_RULES.get(str(c.settings.get('window_start')))}",
        f"- samples: {c.settings.get('samples')} every {c.settings.get('interval')}s, trim {c.settings.get('trim')}",
        "",
    ]
    table = rows(c)
    if table:
        out += ["| " + " | ".join(HEADERS) + " |", "|---|---:|---:|---:|"]
        out += [f"| {r.metric} | {r.native} | {r.orchestrator} | {r.improvement} |" for r in table]
        out.append("")
        if scaled := scale_note(c.workload):
            out += [f"*{scaled}*", ""]
        out += [*(f"- {note}" for note in timing_notes(c)), ""]
    out += [f"**{verdict.line}**", ""]
    if c.timing is not None:
        out += c.timing.markdown()
    for method in c.methods:
        out += _method_markdown(method)
    if c.orchestrator and c.orchestrator.migration:
        out += ["## The orchestrator's decisions", "", "| container | action | reason |", "|---|---|---|"]
        for d in c.orchestrator.migration.get("containers") or []:
            out.append(f"| {d.get('name')} | {d.get('action')} | {d.get('reason')} |")
        out.append("")
    if charts:
        out += ["## Charts", ""]
        for chart in charts:
            out += [f"![{chart.title}]({chart.png.name})", ""]
    elif charts_note:
        out += [f"*{charts_note}*", ""]
    if c.cleanup:
        out += ["Clean-up: " + "; ".join(c.cleanup), ""]
    return "\n".join(out)


def _method_markdown(method: MethodResult) -> list[str]:
    m = method.measurement
    out = [
        f"## {method.title}: {method.from_node} -> {method.to_node}",
        "",
        f"- pod `{method.pod}`, migration {method.wall_seconds:.3f}s (started {iso_time(method.started_at)})",
        f"- containers started: {len(method.started)} ({', '.join(method.started)}), restarts {method.restarts}",
        f"- requests: {format_cpu(method.requests.cpu_millicores)} CPU, {format_memory(method.requests.memory_bytes)}",
        f"- measurement: {m.status}" + (f" ({m.reason})" if m.reason else ""),
        f"- trainer downtime: {_span_markdown(method.downtime)}",
        f"- request → Ready: {_span_markdown(method.request_to_ready)}",
    ]
    if m.window_start is not None:
        out.append(f"- window: {iso_time(m.window_start)} to {iso_time(m.window_end or m.window_start)}")
    if method.probe is not None:
        p = method.probe
        found = (
            f"minimum CPU {p.minimum_cpu_millicores:.1f}m"
            + (f", mean memory {p.memory_mib:.1f} MiB" if p.memory_mib is not None else "")
            if p.minimum_cpu_millicores is not None
            else f"{p.status}" + (f" ({p.reason})" if p.reason else "")
        )
        out.append(f"- pre-migration probe of `{p.pod}` ({p.samples} samples): {found}")
    if method.final_node:
        out.append(f"- final pod location: {method.final_node}")
    out.append("")
    if m.log and m.log.intervals:
        out += ["| sample | end | seconds | CPU (m) | memory (MiB) | note |", "|---:|---|---:|---:|---:|---|"]
        for number, i in enumerate(m.log.intervals, start=1):
            memory = f"{i.memory_bytes / (1 << 20):.1f}" if i.memory_bytes is not None else ""
            cpu = f"{i.cpu_millicores:.1f}" if i.cpu_millicores is not None else ""
            seconds = f"{i.duration_seconds:.3f}" if i.duration_seconds is not None else ""
            out.append(f"| {number} | {iso_time(i.end_wall_time)} | {seconds} | {cpu} | {memory} | {i.reason or ''} |")
        out.append("")
    return out


def _span_markdown(span: Span) -> str:
    if span.seconds is None:
        return f"not measured: {span.reason}"
    return f"{span.text()} ({span.start} → {span.end})"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def write(
    comparison: Comparison,
    directory: Path,
    *,
    threshold: float,
    allow_unmeasured: bool,
    say: Callable[[str], None] = _stderr,
) -> list[Path]:
    """report.json and report.md always; the charts (PNG and SVG) and report.html when the ``report`` extra is
    installed, else one line through ``say`` saying so (and the same line in report.md). A chart that fails to draw
    costs the charts, never the report."""
    directory.mkdir(parents=True, exist_ok=True)
    document = comparison.to_json(threshold=threshold, allow_unmeasured=allow_unmeasured)
    paths = [directory / JSON_FILE, directory / MARKDOWN_FILE]
    paths[0].write_text(json.dumps(document, indent=2) + "\n")
    charts: list[ChartFile] = []
    note = render.missing_extra()
    if note is None:
        try:
            charts = render.draw(document, directory)
        except Exception as error:  # a drawing library's failure must not lose the report
            note = f"charts not drawn: {type(error).__name__}: {error}"
    if note is not None:
        say(note)
    text = markdown(comparison, threshold=threshold, allow_unmeasured=allow_unmeasured, charts=charts, charts_note=note)
    paths[1].write_text(text)
    if charts:
        try:
            paths.append(html.write(directory, text, charts))
        except Exception as error:  # as above: the report stays
            say(f"report.html not written: {type(error).__name__}: {error}")
        paths += [path for chart in charts for path in (chart.png, chart.svg)]
    return paths
