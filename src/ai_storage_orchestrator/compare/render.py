"""The comparison's charts, drawn with matplotlib (the optional ``report`` extra; Agg, no display), each as PNG and
SVG, and the command that draws them again from a report.json:

    python -m ai_storage_orchestrator.compare.render REPORT.json [DIRECTORY]

writes the charts and report.html (from the report.md beside REPORT.json) into DIRECTORY (default: REPORT.json's).

What is drawn comes from ``compare/chart.py``: values the run measured, nothing else. What a chart cannot show is
said on it (a legend entry or a note), never drawn as a guess."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ai_storage_orchestrator.compare.chart import ChartData, ChartFile, MethodChart, chart_data

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

EXTRA_MODULES = ("matplotlib", "markdown_it")
NEEDS_EXTRA = (
    "charts and report.html not written: they need the `report` extra (pip install 'ai-storage-orchestrator[report]')"
)
CPU_PER_CONTAINER, MEMORY_PER_CONTAINER, TIMELINE, CPU_PER_SAMPLE = (
    "cpu-per-container",
    "memory-per-container",
    "timeline",
    "cpu-per-sample",
)
TITLES = {
    CPU_PER_CONTAINER: "CPU per container, stacked",
    MEMORY_PER_CONTAINER: "Memory per container, stacked",
    TIMELINE: "Migration timeline",
    CPU_PER_SAMPLE: "Pod CPU per sample (all containers)",
}
METHOD_COLORS = {"native": "#1f77b4", "orchestrator": "#ff7f0e"}
CONTAINER_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
NATIVE_PHASE_COLORS = ("#bcbddc", "#9e9ac8", "#756bb1", "#54278f")
PHASE_COLORS = ("#9ecae1", "#6baed6", "#3182bd", "#fdd0a2", "#fdae6b", "#fd8d3c", "#e6550d", "#a6d96a", "#66bd63")
DOWNTIME_COLOR = "#d62728"
DPI = 100


def missing_extra() -> str | None:
    """The one line to print when the ``report`` extra is not installed; None when it is."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    return NEEDS_EXTRA if missing else None


def _since(method: MethodChart) -> str:
    return "seconds since the " + ("POST" if method.key == "orchestrator" else "DELETE")


def _x_label(methods: Sequence[MethodChart]) -> str:
    parts = [f"{m.title}: {'POST' if m.key == 'orchestrator' else 'DELETE'}" for m in methods]
    return f"seconds since the request ({', '.join(parts)})"


def _wrap(text: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def _not_measured(ax: Axes, method: MethodChart, what: str) -> None:
    reason = method.reason or ("no valid samples" if method.status == "measured" else method.status)
    ax.text(0.5, 0.5, _wrap(f"{what} not measured: {reason}", 48), ha="center", va="center", transform=ax.transAxes)


def _colors(data: ChartData) -> dict[str, str]:
    return {name: CONTAINER_COLORS[i % len(CONTAINER_COLORS)] for i, name in enumerate(data.containers)}


def _ready_line(ax: Axes, method: MethodChart) -> None:
    if method.wall_seconds is not None:
        what = "completed" if method.key == "orchestrator" else "Ready"
        ax.axvline(method.wall_seconds, color="#555555", linestyle=":", linewidth=1, label=f"{what} seen by compare")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _panels(data: ChartData) -> tuple[Figure, list[Axes]]:
    """One panel per method side by side, sharing both axes, titled and labelled for that method."""
    fig = _figure(12, 5)
    axes = list(fig.subplots(1, max(len(data.methods), 1), sharex=True, sharey=True, squeeze=False)[0])
    for ax, method in zip(axes, data.methods, strict=False):
        ax.set_title(method.title)
        ax.set_xlabel(_since(method))
        ax.grid(axis="y", color="#e5e5e5")
        ax.set_axisbelow(True)
    return fig, axes


def cpu_per_container(data: ChartData) -> Figure:
    """Per method, one bar per valid sample interval (its width = the interval), stacked by container; the report's
    CPU figure (trimmed mean) dashed."""
    fig, axes = _panels(data)
    colors = _colors(data)
    for ax, method in zip(axes, data.methods, strict=False):
        if not method.cpu:
            _not_measured(ax, method, "CPU")
            continue
        for name in method.containers:
            starts = [i.start for i in method.cpu]
            widths = [i.end - i.start for i in method.cpu]
            values = [i.millicores.get(name, 0.0) for i in method.cpu]
            bottoms = [sum(i.millicores.get(n, 0.0) for n in method.containers[: method.containers.index(name)])
                       for i in method.cpu]  # fmt: skip
            ax.bar(starts, values, widths, bottoms, align="edge", color=colors[name], label=name, linewidth=0)
        if method.cpu_figure is not None:
            ax.axhline(method.cpu_figure, color="black", linestyle="--", linewidth=1.2,
                       label=f"pod CPU figure (trimmed mean): {method.cpu_figure:.0f}m")  # fmt: skip
        _ready_line(ax, method)
        if method.invalid_samples:
            ax.plot([], [], " ", label=f"{method.invalid_samples} invalid sample(s) not drawn")
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
        ax.set_xlim(left=0)
    axes[0].set_ylabel("CPU (millicores, 1000m = 1 core)")
    fig.suptitle(f"{TITLES[CPU_PER_CONTAINER]}: one bar per sample interval, each container's own counter")
    return fig


def _runs(method: MethodChart) -> list[list[int]]:
    """Indices of consecutive memory points where every container of the pod was read."""
    runs: list[list[int]] = [[]]
    for index, point in enumerate(method.memory):
        if all(point.mib.get(name) is not None for name in method.containers):
            runs[-1].append(index)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def memory_per_container(data: ChartData) -> Figure:
    fig, axes = _panels(data)
    colors = _colors(data)
    for ax, method in zip(axes, data.methods, strict=False):
        runs = _runs(method)
        if not runs:
            _not_measured(ax, method, "memory")
            continue
        for number, run in enumerate(runs):
            times = [method.memory[i].time for i in run]
            bottom = [0.0] * len(run)
            for name in method.containers:
                top = [b + (method.memory[i].mib[name] or 0.0) for b, i in zip(bottom, run, strict=True)]
                ax.fill_between(times, bottom, top, color=colors[name], alpha=0.85, linewidth=0,
                                label=name if number == 0 else None)  # fmt: skip
                bottom = top
            ax.plot(times, bottom, color="black", linewidth=0.8, marker=".", markersize=4,
                    label="pod total (each read)" if number == 0 else None)  # fmt: skip
        if method.memory_figure is not None:
            ax.axhline(method.memory_figure, color="black", linestyle="--", linewidth=1.2,
                       label=f"pod memory figure (trimmed mean): {method.memory_figure:.0f} MiB")  # fmt: skip
        _ready_line(ax, method)
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    axes[0].set_ylabel("memory (MiB)")
    fig.suptitle(f"{TITLES[MEMORY_PER_CONTAINER]}: each container's memory at every read")
    return fig


def _phase_colors(data: ChartData) -> dict[str, str]:
    colors: dict[str, str] = {}
    for method in data.methods:
        palette = NATIVE_PHASE_COLORS if method.key == "native" else PHASE_COLORS
        for segment in method.segments:
            if segment.label not in colors:
                used = sum(1 for c in colors.values() if c in palette)
                colors[segment.label] = palette[used % len(palette)]
    return colors


MARKERS = {"sent": ("k", ">"), "seen by compare": ("#555555", "|"), "kubelet": ("#2ca02c", "D")}


def _mark_style(label: str) -> tuple[str, str]:
    return next((style for key, style in MARKERS.items() if key in label), ("#7f7f7f", "o"))


def timeline(data: ChartData) -> Figure:
    """One row per method: its phases (named inside when there is room), then the trainer's downtime below it."""
    fig = _figure(12, 2.6 + 1.5 * len(data.methods))
    ax = fig.add_subplot()
    phase_colors = _phase_colors(data)
    ticks: list[float] = []
    labels: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
    end = max([1.0, *(s.end for m in data.methods for s in m.segments), *(m.time + m.error for m in
               (k for m in data.methods for k in m.marks))])  # fmt: skip
    end = max([end, *(m.downtime.end for m in data.methods if m.downtime.end is not None)])

    def once(label: str) -> str | None:
        if label in seen:
            return None
        seen.add(label)
        return label

    for row, method in enumerate(reversed(data.methods)):
        y = row * 2.0
        ticks += [y + 0.5, y - 0.35]
        labels += [f"{method.title}\nphases", "trainer\ndowntime"]
        for segment in method.segments:
            width = segment.end - segment.start
            ax.broken_barh([(segment.start, width)], (y + 0.15, 0.7),
                           color=phase_colors[segment.label], edgecolor="white", label=once(segment.label))  # fmt: skip
            if width > end * 0.12:
                ax.text(segment.start + width / 2, y + 0.5, segment.label, ha="center", va="center", fontsize=8)
        for mark in method.marks:
            color, marker = _mark_style(mark.label)
            label = once(mark.label + (f" (± {mark.error:g}s)" if mark.error else ""))
            if mark.error:
                ax.errorbar(mark.time, y + 0.5, xerr=mark.error, fmt=marker, color=color, capsize=4, label=label)
            else:
                ax.plot(mark.time, y + 0.5, marker=marker, color=color, markersize=9, linestyle="none", label=label)
        down = method.downtime
        if down.start is not None and down.end is not None:
            label = once("trainer downtime (kubelet time stamps)")
            ax.broken_barh([(down.start, down.end - down.start)], (y - 0.6, 0.5), color=DOWNTIME_COLOR, alpha=0.75,
                           hatch="//", edgecolor="white", label=label)  # fmt: skip
            ax.text(down.end + end * 0.01, y - 0.35, down.label(), va="center", fontsize=8)
        else:
            ax.text(end * 0.01, y - 0.35, "not measured: nothing drawn", va="center", fontsize=8, color="#555555")
            notes.append(f"{method.title} trainer downtime: {down.label()}")
        notes += [f"{method.title} {text}" for text in method.missing]
    for note in notes:  # long reasons wrapped, so the legend stays inside the figure
        ax.plot([], [], " ", label=_wrap(note, 60))
    ax.set_yticks(ticks, labels)
    ax.set_ylim(-1.0, 2.0 * len(data.methods) - 0.9)
    ax.set_xlim(0, end * 1.08)
    ax.set_xlabel(_x_label(data.methods))
    ax.grid(axis="x", color="#e5e5e5")
    ax.set_axisbelow(True)
    ax.set_title(
        "clocks: phases the orchestrator's, downtime and Ready (kubelet) the nodes', the rest this machine's",
        fontsize=8,
        color="#555555",
    )
    fig.suptitle(f"{TITLES[TIMELINE]}: both methods on one time axis")
    if not data.methods:
        ax.text(0.5, 0.5, "no migration in this report", ha="center", va="center", transform=ax.transAxes)
    else:
        fig.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return fig


def cpu_per_sample(data: ChartData) -> Figure:
    """The pod's CPU per valid sample, one line per method (560 x 300 pixels)."""
    fig = _figure(5.6, 3.0)
    ax = fig.add_subplot()
    drawn = False
    for method in data.methods:
        if method.cpu:
            values = method.pod_cpu
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3,
                    color=METHOD_COLORS.get(method.key), label=method.title)  # fmt: skip
            drawn = True
    if drawn:
        from matplotlib.ticker import MaxNLocator

        ax.legend(fontsize=7)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        reasons = [m.reason for m in data.methods if m.reason]
        text = "CPU not measured" + (f": {reasons[0]}" if reasons else "")
        ax.text(0.5, 0.5, _wrap(text, 50), ha="center", va="center", transform=ax.transAxes, fontsize=8)
    ax.set_title(TITLES[CPU_PER_SAMPLE], fontsize=9)
    ax.set_xlabel("valid sample (1 per interval)", fontsize=8)
    ax.set_ylabel("CPU (millicores)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(color="#e5e5e5")
    return fig


DRAWINGS = (
    (CPU_PER_CONTAINER, cpu_per_container),
    (MEMORY_PER_CONTAINER, memory_per_container),
    (TIMELINE, timeline),
    (CPU_PER_SAMPLE, cpu_per_sample),
)


def draw(document: dict[str, object], directory: Path) -> list[ChartFile]:
    """Every chart of the report document as ``NAME.png`` and ``NAME.svg`` in ``directory``."""
    import matplotlib

    directory.mkdir(parents=True, exist_ok=True)
    data = chart_data(document)
    files = []
    # fixed SVG ids (the same report draws the same files); text as paths (no font needed to view them)
    with matplotlib.rc_context({"svg.hashsalt": "ai-storage-orchestrator", "svg.fonttype": "path", "font.size": 9.0}):
        for name, drawing in DRAWINGS:
            fig = drawing(data)
            png, svg = directory / f"{name}.png", directory / f"{name}.svg"
            fig.savefig(png, dpi=DPI, metadata={"Software": None})
            fig.savefig(svg, metadata={"Date": None})
            files.append(ChartFile(name, TITLES[name], png, svg))
    return files


def render(report_json: Path, directory: Path | None = None) -> list[Path]:
    """The charts and report.html of a written report again (report.md is read from beside ``report_json``)."""
    from ai_storage_orchestrator.compare import html

    directory = directory or report_json.parent
    document = json.loads(report_json.read_text())
    charts = draw(document, directory)
    markdown = report_json.with_name("report.md")
    text = markdown.read_text() if markdown.exists() else f"# AI migration comparison {document.get('test_id')}\n"
    page = html.write(directory, text, charts)
    return [*(path for chart in charts for path in (chart.png, chart.svg)), page]


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ai_storage_orchestrator.compare.render", description=__doc__)
    parser.add_argument("report", type=Path, help="a report.json written by `ai-storage-orchestrator compare`")
    parser.add_argument("directory", type=Path, nargs="?", help="where to write (default: beside the report)")
    args = parser.parse_args(None if argv is None else list(argv))
    if (missing := missing_extra()) is not None:
        print(missing, file=sys.stderr)
        return 2
    for path in render(args.report, args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
