"""The comparison's timed migrations again, from the container runtime's nanosecond stamps (tests/cluster/
task_events.py) instead of the kubelet's whole seconds: the e2e harness's finer reading of the same moves.

For timed migration *k* (``report.json`` ``timing.migrations``), whose request went out at *r* (this machine's clock,
milliseconds), until the next one's request:

* trainer downtime = the first start of a ``tensorflow-trainer`` of the new pod on the target node minus the first
  exit of a ``tensorflow-trainer`` on the source node, both after *r*. Negative: the two trainers overlapped.
* request → trainer running = that start minus *r*. Containerd runs on this machine, so both are one clock.

Pure but for ``main``, which recomputes the figures from a run's saved files:
``python -m tests.cluster.runtime_timing E2E_OUTPUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_storage_orchestrator.compare.measuring import NS_PER_SECOND, ParseError, parse_rfc3339_ns
from ai_storage_orchestrator.compare.timing import NATIVE, ORCHESTRATOR, TRAINER, Stats, ratio, table_lines, table_row
from ai_storage_orchestrator.controller.planning.gate import GATE_CONTAINER
from tests.cluster.task_events import EXIT, START, TaskEvent

DOWNTIME, TO_RUNNING, TO_GATE_EXIT = "trainer_downtime", "request_to_trainer_running", "trainer_exit_to_gate_exit"
TO_ALL_RUNNING = "request_to_all_running"
FIGURES = (DOWNTIME, TO_RUNNING, TO_ALL_RUNNING, TO_GATE_EXIT)
TITLES = {
    DOWNTIME: "Trainer downtime",
    TO_RUNNING: "Request → trainer running",
    TO_ALL_RUNNING: "Request → all containers running",
    TO_GATE_EXIT: "Source trainer exit → gate exit",
}
RULES = {
    DOWNTIME: "first tensorflow-trainer start of the new pod on the target node minus the first tensorflow-trainer exit"
    " on the source node, both after the request (containerd's event stamps, ns)",
    TO_RUNNING: "that start minus the moment the request was sent (this machine's clock, ms; containerd runs here too)",
    TO_ALL_RUNNING: "the last start among the new pod's containers still running when the move was seen done"
    " (its init containers have exited by then), minus the request: when the kubelet can report a pod without"
    " readiness probes Ready",
    TO_GATE_EXIT: f"the exit of the new pod's {GATE_CONTAINER} init container (a pre-warmed target's) minus the source"
    " trainer's exit: what of the downtime passes before the kubelet can see the hand-off",
}


@dataclass(frozen=True, slots=True)
class TimedMove:
    number: int
    method: str
    from_node: str
    to_node: str
    pod: str
    requested_ns: int | None  # None: the report has no request time for it
    wall_seconds: float | None = None  # request → the new pod seen Ready (native) or the move completed


@dataclass(frozen=True, slots=True)
class MoveFigures:
    move: TimedMove
    downtime: float | None = None  # seconds
    to_running: float | None = None
    to_gate_exit: float | None = None
    to_all_running: float | None = None
    reason: str | None = None  # why not measured

    def figure(self, name: str) -> float | None:
        return {
            DOWNTIME: self.downtime,
            TO_RUNNING: self.to_running,
            TO_ALL_RUNNING: self.to_all_running,
            TO_GATE_EXIT: self.to_gate_exit,
        }[name]


def timed_moves(report: Mapping[str, Any]) -> list[TimedMove]:
    """The timed migrations of a comparison's report.json, in the order they ran."""
    moves = []
    for entry in ((report.get("timing") or {}).get("migrations")) or []:
        requested = ((entry.get("request_to_ready") or {}).get("start")) or None
        try:
            requested_ns = parse_rfc3339_ns(str(requested)) if requested else None
        except ParseError:
            requested_ns = None
        moves.append(
            TimedMove(
                int(entry["number"]),
                str(entry["method"]),
                str(entry["from_node"]),
                str(entry["to_node"]),
                str(entry["pod"]),
                requested_ns,
                None if entry.get("wall_seconds") is None else float(entry["wall_seconds"]),
            )
        )
    return sorted(moves, key=lambda move: move.number)


def _first(events: Iterable[TaskEvent]) -> TaskEvent | None:
    return min(events, key=lambda event: event.at_ns, default=None)


def move_figures(
    moves: Sequence[TimedMove], events: Sequence[TaskEvent], container: str = TRAINER
) -> list[MoveFigures]:
    out = []
    for index, move in enumerate(moves):
        if move.requested_ns is None:
            out.append(MoveFigures(move, reason="the report has no request time for it"))
            continue
        start = move.requested_ns
        end = next((later.requested_ns for later in moves[index + 1 :] if later.requested_ns is not None), None)

        def within(event: TaskEvent, start: int = start, end: int | None = end, container: str = container) -> bool:
            return event.container == container and event.at_ns >= start and (end is None or event.at_ns < end)

        stopped = _first(e for e in events if within(e) and e.kind == EXIT and e.node == move.from_node)
        started = _first(
            e for e in events if within(e) and e.kind == START and e.node == move.to_node and e.pod == move.pod
        )
        if started is None:
            out.append(MoveFigures(move, reason=f"no {container} start of {move.pod} on {move.to_node} was recorded"))
            continue
        to_running = (started.at_ns - start) / NS_PER_SECOND
        to_all = _all_running(move, events, start, end)
        if stopped is None:
            reason = f"no {container} exit on {move.from_node} was recorded"
            out.append(MoveFigures(move, to_running=to_running, to_all_running=to_all, reason=reason))
            continue
        gate = _first(
            e
            for e in events
            if within(e, container=GATE_CONTAINER) and e.kind == EXIT and e.node == move.to_node and e.pod == move.pod
        )
        to_gate = None if gate is None else (gate.at_ns - stopped.at_ns) / NS_PER_SECOND
        downtime = (started.at_ns - stopped.at_ns) / NS_PER_SECOND
        out.append(MoveFigures(move, downtime, to_running, to_gate, to_all))
    return out


def _all_running(move: TimedMove, events: Sequence[TaskEvent], start: int, end: int | None) -> float | None:
    """Seconds from the request to the last start of the new pod's containers still running when the move was
    seen done (its wall time; else the next request)."""
    if move.wall_seconds is not None:
        done = start + round(move.wall_seconds * NS_PER_SECOND)
        end = done if end is None else min(end, done)
    mine = [
        e
        for e in events
        if e.node == move.to_node and e.pod == move.pod and e.at_ns >= start and (end is None or e.at_ns < end)
    ]
    exited = {e.container for e in mine if e.kind == EXIT}
    starts = [e.at_ns for e in mine if e.kind == START and e.container not in exited]
    return (max(starts) - start) / NS_PER_SECOND if starts else None


def _stats(figures: Sequence[MoveFigures], method: str, name: str) -> Stats:
    return Stats.of([f.figure(name) for f in figures if f.move.method == method])


def lines(figures: Sequence[MoveFigures]) -> list[str]:
    """The console block, shaped like the comparison's TIMING table."""
    if not figures:
        return ["RUNTIME TIMING: not measured (the report has no timed migrations)"]
    rows = [
        table_row(TITLES[name], _stats(figures, NATIVE, name), _stats(figures, ORCHESTRATOR, name), 3)
        for name in FIGURES
    ]
    out = ["RUNTIME TIMING (containerd's event stamps, medians)", *table_lines(rows)]
    out += [f"# {TITLES[name].lower()}: {RULES[name]}" for name in FIGURES]
    for f in figures:
        downtime = f"{f.downtime:.3f}s" if f.downtime is not None else "not measured"
        to_running = f"{f.to_running:.3f}s" if f.to_running is not None else "not measured"
        if f.to_all_running is not None:
            to_running += f" (all containers {f.to_all_running:.3f}s)"
        why = f" ({f.reason})" if f.reason else ""
        if f.to_gate_exit is not None:
            why = f", gate exited {f.to_gate_exit:.3f}s after the source trainer{why}"
        out.append(
            f"  runtime {f.move.number:>2} {f.move.method:<12} {f.move.from_node} → {f.move.to_node}:"
            f" trainer downtime {downtime}, request → trainer running {to_running}{why}"
        )
    return out


def to_json(figures: Sequence[MoveFigures]) -> dict[str, Any]:
    def value(number: float | None) -> float | None:
        return None if number is None else round(number, 4)

    medians = {
        method: {name: _stats(figures, method, name).to_json() for name in FIGURES} for method in (NATIVE, ORCHESTRATOR)
    }
    ratios = {
        name: value(ratio(_stats(figures, NATIVE, name), _stats(figures, ORCHESTRATOR, name))) for name in FIGURES
    }
    moves = [
        {
            "number": f.move.number,
            "method": f.move.method,
            "from_node": f.move.from_node,
            "to_node": f.move.to_node,
            "pod": f.move.pod,
            DOWNTIME: value(f.downtime),
            TO_RUNNING: value(f.to_running),
            TO_ALL_RUNNING: value(f.to_all_running),
            TO_GATE_EXIT: value(f.to_gate_exit),
            "reason": f.reason,
        }
        for f in figures
    ]
    return {"rules": RULES, "medians": medians, "ratio_orchestrator_to_native": ratios, "migrations": moves}


def event_json(event: TaskEvent, since_ns: int) -> dict[str, Any]:
    """One recorded event, its time as seconds after ``since_ns`` (the first timed request)."""
    return {
        "seconds": round((event.at_ns - since_ns) / NS_PER_SECOND, 4),
        "node": event.node,
        "kind": event.kind,
        "pod": event.pod,
        "container": event.container,
    }


def events_from_json(document: Mapping[str, Any]) -> list[TaskEvent]:
    """The events a runtime-timing.json recorded (``event_json``), back on the absolute clock."""
    since = parse_rfc3339_ns(str(document["events_since"]))
    return [
        TaskEvent(
            str(e["node"]),
            since + round(float(e["seconds"]) * NS_PER_SECOND),
            str(e["kind"]),
            "",
            str(e["pod"]),
            "",
            str(e["container"]),
        )
        for e in document.get("events") or []
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Recompute the figures from a run's report.json and runtime-timing.json (its raw events)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("directory", type=Path, help="the e2e output directory (E2E_OUTPUT_DIR)")
    args = parser.parse_args(argv)
    report = json.loads((args.directory / "report.json").read_text())
    recorded = json.loads((args.directory / "runtime-timing.json").read_text())
    print("\n".join(lines(move_figures(timed_moves(report), events_from_json(recorded)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
