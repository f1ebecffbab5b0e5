"""The console text of the certification's specification (seed, "ai_migration_compare.sh" output), and a checker.

The comparison prints the specification's lines in its order and wording (this module builds the ones that carry
figures); our own detail stays, as indented lines or ``#`` comments, between them. ``spec_blocks_missing`` lists the
specification's lines (as patterns) that a console log lacks or has out of order.

Figures are only ever what was measured: a value that was not prints ``not measured`` (with the reason where there is
room). ``MB`` in these lines means MiB (1024 x 1024 bytes), the unit the figures are computed in; the summary's
footnote says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from ai_storage_orchestrator.compare.measuring import MIB, CounterRead, Interval, NotRunning, SamplingLog, trimmed_mean

RULE = "=" * 65
TITLE = "     AI Container Migration Performance Comparison Tool"
SUMMARY_TITLE = "                  PERFORMANCE COMPARISON SUMMARY"
NOT_MEASURED_TEXT = "not measured"
PROBE_SAMPLES = 3  # the specification's quick measurement before each migration
STATUS_EVERY = 3.0  # seconds between two "Migration status" lines while the status stays the same (the spec's poll)
MB_NOTE = "MB = MiB (1024 x 1024 bytes)"


# Values --------------------------------------------------------------------------------------------------------------
def cpu_text(millicores: float | None) -> str:
    return f"{millicores:.0f}m" if millicores is not None else NOT_MEASURED_TEXT


def mb_text(mib: float | None) -> str:
    return f"{mib:.0f}MB" if mib is not None else NOT_MEASURED_TEXT


# Header and progress lines -------------------------------------------------------------------------------------------
def header_lines(test_id: str, date: str) -> list[str]:
    """``date``: ``YYYY-MM-DD HH:MM:SS`` (the caller adds its zone)."""
    return [RULE, TITLE, RULE, f"Test ID: {test_id}", f"Date: {date}", RULE]


def waiting_line(pod: str, timeout: float) -> str:
    return f"Waiting for Pod {pod} to be ready (timeout: {timeout:g}s)..."


def ready_lines(pod: str) -> list[str]:
    return [f"pod/{pod} condition met", f"✓ Pod {pod} is ready"]


def cpu_block_head(pod: str, containers: int, samples: int) -> str:
    return f"# Pod {pod}: measuring {containers} containers ({samples} samples)"


def sample_line(number: int, interval: Interval) -> str:
    if not interval.valid:
        return f"# Sample {number}: not valid: {interval.reason}"
    return f"# Sample {number}: {cpu_text(interval.cpu_millicores)}"


def samples_not_measured_line(reason: str) -> str:
    return f"# Samples: {NOT_MEASURED_TEXT}: {reason}"


def minimum_line(samples: int, value: str) -> str:
    return f"# Minimum CPU usage (of {samples} samples): {value}"


def trimmed_mean_line(samples: int, trim: int, value: str) -> str:
    return f"# Trimmed mean CPU usage (of {samples} samples, {trim} highest and {trim} lowest dropped): {value}"


def figures_line(what: str, cpu: float | None, memory_mib: float | None) -> str:
    """``Pre-migration: CPU 2180m, Memory 654MB`` and ``Post-migration: …``."""
    return f"{what}: CPU {cpu_text(cpu)}, Memory {mb_text(memory_mib)}"


class MigrationStatusLines:
    """``# [0s] Migration status: running``, then ``.# [3s] Migration status: running`` …: one line when the observed
    status changes, and while it stays the same one every ``every`` seconds; real elapsed seconds."""

    def __init__(self, say: Callable[[str], None], *, every: float = STATUS_EVERY) -> None:
        self.say, self.every = say, every
        self.status: str | None = None
        self.printed_at = 0.0
        self.count = 0

    def _emit(self, status: str, elapsed: float) -> None:
        self.say(f"{'.' if self.count else ''}# [{int(elapsed)}s] Migration status: {status}")
        self.status, self.printed_at = status, elapsed
        self.count += 1

    def observe(self, status: str, elapsed: float) -> None:
        if status != self.status:
            self._emit(status, elapsed)

    def tick(self, elapsed: float) -> None:
        if self.status is not None and elapsed - self.printed_at >= self.every:
            self._emit(self.status, elapsed)

    def due_in(self, elapsed: float) -> float:
        """Seconds until ``tick`` would print."""
        return max(0.0, self.printed_at + self.every - elapsed)


# Memory per container ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ContainerMemory:
    """One container's memory over a window's valid samples: ``mib`` None when not measured; ``stopped`` counts the
    samples in which it was not running (no cgroup: 0 MiB), ``state`` the last such state."""

    mib: float | None
    samples: int
    stopped: int
    state: str | None = None


def container_memory(
    log: SamplingLog, containers: Sequence[str], *, samples: int, trim: int
) -> dict[str, ContainerMemory]:
    """Each container's memory at the end of each of the window's valid samples (the first ``samples``), as the
    trimmed mean (``trim`` highest and lowest dropped; a plain mean when too few). A container that was not running
    at a sample's end counts 0 there; a running one without a memory figure makes its value unknown."""
    by_index = {s.index: s for s in log.snapshots}
    valid = [i for i in log.intervals if i.valid][:samples]
    found: dict[str, ContainerMemory] = {}
    for name in containers:
        values: list[float] = []
        stopped, unknown, state = 0, 0, None
        for interval in valid:
            snapshot = by_index.get(interval.end_index)
            read = snapshot.reads.get(name) if snapshot else None
            if isinstance(read, NotRunning):
                values.append(0.0)
                stopped, state = stopped + 1, read.state
            elif isinstance(read, CounterRead) and read.memory_bytes is not None:
                values.append(read.memory_bytes / MIB)
            else:
                unknown += 1
        if unknown or not values:
            mib = None
        elif len(values) > 2 * trim:
            mib = trimmed_mean(values, trim)
        else:
            mib = math.fsum(values) / len(values)
        found[name] = ContainerMemory(mib, len(valid), stopped, state)
    return found


def container_line(name: str, memory: ContainerMemory | None, *, restarted: bool) -> str:
    if memory is None or memory.mib is None:
        return f"# Container {name}: {NOT_MEASURED_TEXT}"
    if memory.stopped == memory.samples:
        completed = (memory.state or "").startswith("terminated (exit 0")
        return f"# Container {name}: 0MB ({'completed' if completed else f'not running: {memory.state}'})"
    notes = ["restarted!"] if restarted else []
    if memory.stopped:
        notes.append(f"not running in {memory.stopped} of {memory.samples} samples: {memory.state}")
    return f"# Container {name}: {mb_text(memory.mib)}" + (f" ({'; '.join(notes)})" if notes else "")


def memory_block(
    pod: str,
    containers: Sequence[str],
    memory: dict[str, ContainerMemory] | None,
    total_mib: float | None,
    *,
    restarted: Collection[str] = (),
    total_reason: str | None = None,
) -> list[str]:
    """``# Pod X: measuring N containers``, one line per container, ``# Total Memory usage: …``."""
    lines = [f"# Pod {pod}: measuring {len(containers)} containers"]
    lines += [container_line(n, (memory or {}).get(n), restarted=n in restarted) for n in containers]
    total = (
        mb_text(total_mib)
        if total_mib is not None
        else NOT_MEASURED_TEXT + (f": {total_reason}" if total_reason else "")
    )
    lines.append(f"# Total Memory usage: {total}")
    return lines


# The checker ---------------------------------------------------------------------------------------------------------
_CPU = r"(\d+m|not measured.*|insufficient.*)"
_MB = r"(\d+MB( \(.*\))?|not measured.*)"
_FIGURES = r"CPU (\d+m|not measured), Memory (\d+MB|not measured)"
_POD = r"tensorflow-ai-workload"
_NEW_POD = r"tensorflow-ai-workload-migrated-\S+"


@dataclass(frozen=True, slots=True)
class _Line:
    label: str
    pattern: str
    next_line: bool = False  # must be the very next non-empty line after the previous one (the table's first rows)

    def matches(self, line: str) -> bool:
        return re.fullmatch(self.pattern, line) is not None


@dataclass(frozen=True, slots=True)
class _Samples:
    """``# Sample 1..count: NNNm`` in order (or the one line of a window that could not be measured)."""

    label: str
    count: int = PROBE_SAMPLES

    def find(self, lines: Sequence[str], start: int) -> int | None:
        position = start
        for number in range(1, self.count + 1):
            pattern = rf"# Sample {number}: (\d+m|not valid: .*)"
            at = next((i for i in range(position, len(lines)) if re.fullmatch(pattern, lines[i])), None)
            if at is None:
                break
            position = at + 1
        else:
            return position - 1
        unmeasured = r"# Samples: not measured.*"
        return next((i for i in range(start, len(lines)) if re.fullmatch(unmeasured, lines[i])), None)


def _cpu_block(where: str, pod: str, *, window: str) -> list[_Line | _Samples]:
    if window == "probe":
        head = _Line(
            f"{where} # Pod {pod}: measuring N containers (3 samples)",
            rf"# Pod {pod}: measuring \d+ containers \(3 samples\)",
        )
        close = _Line(
            f"{where} # Minimum CPU usage (of 3 samples): <cpu>m", rf"# Minimum CPU usage \(of 3 samples\): {_CPU}"
        )
    else:
        head = _Line(
            f"{where} # Pod {pod}: measuring N containers (N samples)",
            rf"# Pod {pod}: measuring \d+ containers \(\d+ samples\)",
        )
        close = _Line(
            f"{where} # Trimmed mean CPU usage (of N samples, T highest and T lowest dropped): <cpu>m",
            rf"# Trimmed mean CPU usage \(of \d+ samples, \d+ highest and \d+ lowest dropped\): {_CPU}",
        )
    return [head, _Samples(f"{where} # Sample 1..3: <cpu>m"), close]


def _memory_block(where: str, pod: str, containers: Sequence[tuple[str, str, str]]) -> list[_Line | _Samples]:
    """``containers``: (name, its value as the label shows it, the value's pattern)."""
    lines: list[_Line | _Samples] = [
        _Line(f"{where} # Pod {pod}: measuring N containers", rf"# Pod {pod}: measuring \d+ containers")
    ]
    for name, label, pattern in containers:
        lines.append(_Line(f"{where} # Container {name}: {label}", rf"# Container {name}: ({pattern})"))
    lines.append(_Line(f"{where} # Total Memory usage: <mb>MB", rf"# Total Memory usage: {_MB}"))
    return lines


def _ready(where: str) -> list[_Line | _Samples]:
    return [
        _Line(
            f"{where} Waiting for Pod {_POD} to be ready (timeout: Ns)...",
            rf"Waiting for Pod {_POD} to be ready \(timeout: \d+(\.\d+)?s\)\.\.\.",
        ),
        _Line(f"{where} pod/{_POD} condition met", rf"pod/{_POD} condition met"),
        _Line(f"{where} ✓ Pod {_POD} is ready", rf"✓ Pod {_POD} is ready"),
    ]


_COMPLETED = r"0MB \(completed\)|not measured.*"
_RESTARTED = r"\d+MB \(restarted!.*\)|not measured.*"
_TRAINER = ("tensorflow-trainer", "<mb>MB", _MB)
_MONITOR = ("model-monitor", "<mb>MB", _MB)
_ROW = r"\s*│\s*(\S.*?)\s*│\s*(\S.*?)\s*│\s*(\d+\.\d%|n/a)"

SPEC_LINES: list[_Line | _Samples] = [
    _Line("[header] =====", r"={20,}"),
    _Line(
        "[header] AI Container Migration Performance Comparison Tool",
        r"\s*AI Container Migration Performance Comparison Tool",
    ),
    _Line("[header] Test ID: AI-MIGRATION-<timestamp>", r"Test ID: AI-MIGRATION-\d{14}\S*"),
    _Line("[header] Date: YYYY-MM-DD HH:MM:SS", r"Date: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d( \S+)?"),
    _Line("[setup] • Setting up test environment...", r"• Setting up test environment\.\.\."),
    _Line("[setup] • Deploying TensorFlow AI workload...", r"• Deploying TensorFlow AI workload\.\.\."),
    *_ready("[setup]"),
    _Line("[TEST 1] TEST 1: Kubernetes Native Migration", r"TEST 1: Kubernetes Native Migration"),
    _Line("[TEST 1] Original Pod location: <node>", r"Original Pod location: \S+"),
    _Line("[TEST 1] K8s Native Target: <node> → <node>", r"K8s Native Target: \S+ → \S+"),
    *_cpu_block("[TEST 1 pre]", _POD, window="probe"),
    *_memory_block("[TEST 1 pre]", _POD, [_TRAINER, ("data-processor", "0MB (completed)", _COMPLETED), _MONITOR]),
    _Line("[TEST 1] Pre-migration: CPU <cpu>m, Memory <mb>MB", rf"Pre-migration: {_FIGURES}"),
    _Line("[TEST 1] Deleting pod...", r"Deleting pod\.\.\."),
    _Line("[TEST 1] Recreating pod on target node: <node>", r"Recreating pod on target node: \S+"),
    *_ready("[TEST 1]"),
    _Line(
        "[TEST 1 post] # Post-migration measurement (all N containers restarted)",
        r"# Post-migration measurement \(all \d+ containers restarted\)",
    ),
    *_cpu_block("[TEST 1 post]", _POD, window="post"),
    *_memory_block(
        "[TEST 1 post]",
        _POD,
        [_TRAINER, ("data-processor", "<mb>MB (restarted!)", _RESTARTED), _MONITOR],
    ),
    _Line("[TEST 1] ✓ K8s Migration: <s>s", r"✓ K8s Migration: \d+\.\d+s"),
    _Line("[TEST 1] Post-migration: CPU <cpu>m, Memory <mb>MB", rf"Post-migration: {_FIGURES}"),
    _Line("[TEST 1] Final Pod location: <node>", r"Final Pod location: \S+"),
    _Line("[TEST 2] TEST 2: AI Orchestrator Migration (Optimized)", r"TEST 2: AI Orchestrator Migration \(Optimized\)"),
    _Line(f"[TEST 2] Using pod: {_POD}", rf"Using pod: {_POD}"),
    _Line("[TEST 2 pre] # Pre-migration measurement", r"# Pre-migration measurement"),
    *_cpu_block("[TEST 2 pre]", _POD, window="probe"),
    _Line("[TEST 2] Pre-migration: CPU <cpu>m, Memory <mb>MB", rf"Pre-migration: {_FIGURES}"),
    _Line(
        "[TEST 2] AI Orchestrator Migration: <node> -> <node> (back to original for comparison)",
        r"AI Orchestrator Migration: \S+ -> \S+ \(back to original for comparison\)",
    ),
    _Line("[TEST 2] Starting AI migration...", r"Starting AI migration\.\.\."),
    _Line("[TEST 2] # [0s] Migration status: <status>", r"# \[\d+s\] Migration status: \w+"),
    _Line("[TEST 2] .# [Ns] Migration status: completed", r"\.?# \[\d+s\] Migration status: completed"),
    _Line("[TEST 2] ✓ Migration completed!", r"✓ Migration completed!"),
    _Line(
        "[TEST 2 post] # Post-migration measurement (only N containers - completed container excluded)",
        r"# Post-migration measurement \(only \d+ containers - completed container excluded\)",
    ),
    _Line(
        "[TEST 2 post] Measuring post-migration metrics for pod: <pod>",
        rf"Measuring post-migration metrics for pod: {_NEW_POD}",
    ),
    *_cpu_block("[TEST 2 post]", _NEW_POD, window="post"),
    *_memory_block("[TEST 2 post]", _NEW_POD, [_TRAINER, _MONITOR]),
    _Line("[TEST 2] ✓ AI Migration: <s>s", r"✓ AI Migration: \d+\.\d+s"),
    _Line("[TEST 2] Post-migration: CPU <cpu>m, Memory <mb>MB", rf"Post-migration: {_FIGURES}"),
    _Line("[TEST 2] Final Pod location: <node>", r"Final Pod location: \S+"),
    _Line("[summary] =====", r"={20,}"),
    _Line("[summary] PERFORMANCE COMPARISON SUMMARY", r"\s*PERFORMANCE COMPARISON SUMMARY"),
    _Line("[summary] =====", r"={20,}"),
    _Line("[summary] NODE MIGRATION:", r"NODE MIGRATION:"),
    _Line("[summary] • Original Location: <node>", r"• Original Location: \S+"),
    _Line("[summary] • K8s Native Result: <node>", r"• K8s Native Result: \S+"),
    _Line("[summary] • AI Orchestrator Result: <node>", r"• AI Orchestrator Result: \S+"),
    _Line("[summary] • Target Achievement: COMPLETE", r"• Target Achievement: COMPLETE"),
    _Line(
        "[summary] METRIC │ K8S NATIVE │ AI ORCHESTRATOR │ IMPROVEMENT",
        r"METRIC\s*│\s*K8S NATIVE\s*│\s*AI ORCHESTRATOR\s*│\s*IMPROVEMENT",
    ),
    _Line("[summary] ────┼────┼────┼────", r"─+┼─+┼─+┼─+", next_line=True),
    _Line("[summary] CPU Usage │ <cpu>m │ <cpu>m │ <n.n>% (first row)", rf"CPU Usage{_ROW}", next_line=True),
    _Line("[summary] Memory Usage │ <mb>MB │ <mb>MB │ <n.n>% (second row)", rf"Memory Usage{_ROW}", next_line=True),
    _Line(
        "[summary] RESULT: AI Orchestrator achieved X% CPU reduction and Y% memory reduction",
        r"RESULT: AI Orchestrator achieved \d+(\.\d+)?% CPU reduction and \d+(\.\d+)?% memory reduction",
    ),
    _Line("[cleanup] • Cleaning up...", r"• Cleaning up\.\.\."),
]


def _find(entry: _Line | _Samples, lines: Sequence[str], start: int) -> int | None:
    if isinstance(entry, _Samples):
        return entry.find(lines, start)
    if entry.next_line:
        at = next((i for i in range(start, len(lines)) if lines[i].strip()), None)
        return at if at is not None and entry.matches(lines[at]) else None
    return next((i for i in range(start, len(lines)) if entry.matches(lines[i])), None)


def spec_blocks_missing(log_text: str) -> list[str]:
    """The specification's console lines (``SPEC_LINES``, as patterns, in its order) that ``log_text`` lacks:
    ``"missing: <label>"`` when no line of the log matches, ``"out of order: <label>"`` when one does but not after the
    previous spec line found. An empty list: every line is there, in order. Lines in between (our detail) are free."""
    lines = [line.rstrip() for line in log_text.splitlines()]
    problems: list[str] = []
    position = 0
    for entry in SPEC_LINES:
        at = _find(entry, lines, position)
        if at is not None:
            position = at + 1
            continue
        if isinstance(entry, _Line):
            anywhere = any(entry.matches(line) for line in lines)
        else:
            anywhere = entry.find(lines, 0) is not None
        problems.append(f"{'out of order' if anywhere else 'missing'}: {entry.label}")
    return problems
