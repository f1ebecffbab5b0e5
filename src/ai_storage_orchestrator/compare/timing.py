"""How long the trainer is down and how long until the new pod is Ready, from the kubelet's own time stamps, and the
medians of ``--timing-pairs`` migrations (pure: no I/O; the scenario feeds it the pod objects it saw).

* Trainer downtime = the new pod's ``tensorflow-trainer`` ``state.running.startedAt`` minus the source pod's trainer
  ``state.terminated.finishedAt``, the last one seen (list and watch) before the source pod went. Both are the
  kubelet's clock, written to the API as RFC 3339 with whole seconds: each is the true moment rounded down, so the
  difference is within ± 1 s of the truth (``± resolution``). A source trainer never seen terminated is *not
  measured*, with the reason; nothing is estimated. A negative downtime is an overlap: the new trainer ran before the
  old one stopped.
* Request → Ready = the new pod's ``Ready`` condition ``lastTransitionTime`` (kubelet's clock, whole seconds) minus
  the moment the request was sent (this machine's clock: native, the DELETE of the pod; orchestrator, the POST). The
  true moment of Ready is in [t, t + 1 s) and not before the request: the figure is the middle of that interval,
  ± half its width (0.5 s, less when the request fell inside that second). The API has no finer
  time stamp of it (the containers' ``startedAt`` is whole seconds too). When the kubelet runs on another machine,
  the two clocks' skew adds in.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ai_storage_orchestrator.compare.measuring import NS_PER_SECOND, ParseError, iso_time, parse_rfc3339_ns

JSON = dict[str, Any]
TRAINER = "tensorflow-trainer"
NATIVE, ORCHESTRATOR = "native", "orchestrator"
DOWNTIME, REQUEST_TO_READY, WALL = "trainer_downtime", "request_to_ready", "wall"
FIGURE_TITLES = {REQUEST_TO_READY: "Request → Ready", DOWNTIME: "Trainer downtime", WALL: "Wall time"}
DOWNTIME_RULE = (
    "new pod's tensorflow-trainer state.running.startedAt minus the source pod's trainer state.terminated.finishedAt"
    " (last status seen before the source pod went); kubelet time stamps"
)
READY_RULE = (
    "new pod's Ready condition lastTransitionTime (kubelet) minus the moment the request was sent (this machine:"
    " native the DELETE, orchestrator the POST); the middle of the 1 s the time stamp rounds down, cut to what is"
    " known: not before the request, not after this machine saw the pod Ready (native) or the migration completed"
    " (orchestrator)"
)
WALL_RULE = (
    "this machine's monotonic clock, request sent to the new pod seen Ready (native) or completed (orchestrator)"
)
RESOLUTION_NOTE = (
    "time stamps from the API have whole seconds: Trainer downtime is ± 1s, Request → Ready ± 0.5s at most"
    " (request on this machine's clock, Ready on the kubelet's)"
)


def _resolution_seconds(stamp: str) -> float:
    """The resolution of an RFC 3339 time stamp as written: 1 s without a fraction, 10^-digits with one."""
    head = stamp.strip()[19:]
    if not head.startswith("."):
        return 1.0
    digits = len(head) - len(head[1:].lstrip("0123456789")) - 1
    return float(10**-digits) if digits > 0 else 1.0


@dataclass(frozen=True, slots=True)
class Span:
    """A duration between two time stamps, ± ``error`` from their resolution; ``seconds`` None: not measured."""

    seconds: float | None
    error: float = 0.0
    start: str | None = None  # the time stamps it was computed from, as read (ISO for this machine's clock)
    end: str | None = None
    reason: str | None = None

    @property
    def measured(self) -> bool:
        return self.seconds is not None

    def text(self) -> str:
        if self.seconds is None:
            return "not measured"
        return f"{_seconds(self.seconds, self.error)} ± {_seconds(self.error, self.error)}"  # 4s ± 1s, 8.6s ± 0.5s

    def to_json(self) -> JSON:
        return {
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "plus_minus_seconds": None if self.seconds is None else round(self.error, 3),
            "start": self.start,
            "end": self.end,
            "reason": self.reason,
        }


def _seconds(value: float, error: float) -> str:
    return f"{value:.0f}s" if error >= 1 else f"{value:.1f}s"


def not_measured(reason: str) -> Span:
    return Span(None, reason=reason)


def _container_status(pod: Mapping[str, Any] | None, container: str) -> Mapping[str, Any] | None:
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return dict(status)
    return None


class TrainerWatch:
    """Fed every object of the source pod that was seen while it went (``observe``): keeps the trainer's last
    ``state.terminated.finishedAt``, and what was last seen of the trainer otherwise (for the reason)."""

    def __init__(self, pod: str, container: str = TRAINER) -> None:
        self.pod, self.container = pod, container
        self.finished_at: str | None = None
        self.last_seen: str | None = None
        self.gone = False

    def observe(self, pod: Mapping[str, Any] | None) -> None:
        if pod is None:
            self.gone = True
            return
        status = _container_status(pod, self.container)
        if status is None:
            self.last_seen = "no status of the container"
            return
        state = status.get("state") or {}
        terminated = state.get("terminated") or {}
        if terminated.get("finishedAt"):
            self.finished_at = str(terminated["finishedAt"])
            self.last_seen = "terminated"
        else:
            self.last_seen = next(iter(state), "no state")

    def why_not(self) -> str:
        seen = f" (last seen: {self.last_seen})" if self.last_seen else " (never seen)"
        return f"the source pod {self.pod}'s {self.container} was never seen terminated before the pod went{seen}"


def trainer_downtime(watch: TrainerWatch, new_pod: Mapping[str, Any], container: str = TRAINER) -> Span:
    if watch.finished_at is None:
        return not_measured(watch.why_not())
    status = _container_status(new_pod, container) or {}
    started = ((status.get("state") or {}).get("running") or {}).get("startedAt")
    if not started:
        return not_measured(f"the new pod's {container} has no state.running.startedAt")
    try:
        end, start = parse_rfc3339_ns(str(started)), parse_rfc3339_ns(watch.finished_at)
    except ParseError as error:
        return not_measured(str(error))
    error_bound = max(_resolution_seconds(str(started)), _resolution_seconds(watch.finished_at))
    return Span((end - start) / NS_PER_SECOND, error_bound, start=watch.finished_at, end=str(started))


def ready_since(pod: Mapping[str, Any]) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            stamp = condition.get("lastTransitionTime")
            return str(stamp) if stamp else None
    return None


def request_to_ready(requested: float, new_pod: Mapping[str, Any], *, seen: float | None = None) -> Span:
    """``requested``: Unix time on this machine when the request went out; ``seen``: when this machine saw the pod
    Ready, or anything that comes only after it (an upper bound), if known."""
    stamp = ready_since(new_pod)
    if stamp is None:
        return not_measured("the new pod has no Ready=True condition with a lastTransitionTime")
    try:
        ready_ns = parse_rfc3339_ns(stamp)
    except ParseError as error:
        return not_measured(str(error))
    # Ready happened in [stamp, stamp + resolution) and not before the request: the figure is the middle of that.
    low = ready_ns / NS_PER_SECOND - requested
    high = low + _resolution_seconds(stamp)
    if high <= 0:
        return not_measured(
            f"Ready at {stamp} is before the request at {iso_time(requested)}: the kubelet's clock is behind this"
            " machine's"
        )
    low = max(low, 0.0)
    if seen is not None and low <= seen - requested < high:  # outside: the two clocks disagree, keep the stamp's
        high = seen - requested
    return Span((low + high) / 2, (high - low) / 2, start=iso_time(requested), end=stamp)


# The pairs -----------------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class TimedMigration:
    number: int  # 1, 2, … in the order they ran
    method: str  # NATIVE | ORCHESTRATOR
    from_node: str
    to_node: str
    pod: str  # the new pod
    request_to_ready: Span
    downtime: Span
    wall_seconds: float | None

    def figure(self, name: str) -> float | None:
        if name == WALL:
            return self.wall_seconds
        return (self.downtime if name == DOWNTIME else self.request_to_ready).seconds

    def line(self, total: int) -> str:
        width = len(str(total))
        wall = f"{self.wall_seconds:.2f}s" if self.wall_seconds is not None else "not measured"
        return (
            f"  timing {self.number:>{width}}/{total} {self.method:<12} {self.from_node} → {self.to_node}:"
            f" request→Ready {self.request_to_ready.text()}, trainer downtime {self.downtime.text()}, wall {wall}"
        )

    def to_json(self) -> JSON:
        return {
            "number": self.number,
            "method": self.method,
            "from_node": self.from_node,
            "to_node": self.to_node,
            "pod": self.pod,
            REQUEST_TO_READY: self.request_to_ready.to_json(),
            DOWNTIME: self.downtime.to_json(),
            "wall_seconds": None if self.wall_seconds is None else round(self.wall_seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class Stats:
    """Median, minimum and maximum of the measured values; ``not_measured`` of them left out (never counted as 0)."""

    n: int
    not_measured: int
    median: float | None
    minimum: float | None
    maximum: float | None

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Stats:
        measured = [v for v in values if v is not None]
        if not measured:
            return cls(0, len(values), None, None, None)
        return cls(
            len(measured), len(values) - len(measured), statistics.median(measured), min(measured), max(measured)
        )

    def text(self, digits: int) -> str:
        if self.median is None:
            return f"not measured (n=0 of {self.not_measured})"
        assert self.minimum is not None
        assert self.maximum is not None
        skipped = f"; {self.not_measured} not measured" if self.not_measured else ""
        return (
            f"{self.median:.{digits}f}s (n={self.n}, min {self.minimum:.{digits}f}s, max {self.maximum:.{digits}f}s"
            f"{skipped})"
        )

    def to_json(self) -> JSON:
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "n": self.n,
            "not_measured": self.not_measured,
            "median_seconds": r(self.median),
            "min_seconds": r(self.minimum),
            "max_seconds": r(self.maximum),
        }


def ratio(native: Stats, orchestrator: Stats) -> float | None:
    """Orchestrator median / native median; None when either is missing or the native one is 0."""
    if native.median is None or orchestrator.median is None or native.median == 0:
        return None
    return orchestrator.median / native.median


_DIGITS = {REQUEST_TO_READY: 1, DOWNTIME: 1, WALL: 2}
TABLE_HEADER = ("FIGURE", "K8S NATIVE", "AI ORCHESTRATOR", "ORCH/NATIVE")


@dataclass(slots=True)
class TimingRun:
    pairs: int  # asked for
    migrations: list[TimedMigration] = field(default_factory=list)
    error: str | None = None  # what stopped the pairs early

    def stats(self, method: str, figure: str) -> Stats:
        return Stats.of([m.figure(figure) for m in self.migrations if m.method == method])

    def ratio(self, figure: str) -> float | None:
        return ratio(self.stats(NATIVE, figure), self.stats(ORCHESTRATOR, figure))

    def _table(self) -> list[tuple[str, str, str, str]]:
        rows = []
        for figure in (DOWNTIME, REQUEST_TO_READY, WALL):  # the summary table's order
            native, orchestrator = self.stats(NATIVE, figure), self.stats(ORCHESTRATOR, figure)
            rows.append(table_row(FIGURE_TITLES[figure], native, orchestrator, _DIGITS[figure]))
        return rows

    def _done(self) -> str:
        done = sum(1 for m in self.migrations if m.method == ORCHESTRATOR)
        return f"{self.pairs} pairs" if done >= self.pairs and self.error is None else f"{done} of {self.pairs} pairs"

    def lines(self) -> list[str]:
        """The console block: ``TIMING (N pairs, medians)``, a table of medians side by side, the notes."""
        out = [f"TIMING ({self._done()}, medians)", *table_lines(self._table())]
        out.append(f"# {RESOLUTION_NOTE}; not measured figures are counted and left out of the medians, never 0")
        if self.error:
            out.append(f"# stopped early: {self.error}")
        for m in self.migrations:
            for span, what in ((m.downtime, "trainer downtime"), (m.request_to_ready, "request→Ready")):
                if span.reason:
                    out.append(f"# timing {m.number} ({m.method}) {what} not measured: {span.reason}")
        return out

    def markdown(self) -> list[str]:
        out = [
            f"## Timing ({self._done()}, medians)",
            "",
            "| figure | K8S NATIVE | AI ORCHESTRATOR | orchestrator / native |",
            "|---|---:|---:|---:|",
        ]
        out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self._table()]
        out += ["", f"- {RESOLUTION_NOTE}", f"- trainer downtime: {DOWNTIME_RULE}", f"- request → Ready: {READY_RULE}"]
        out.append(f"- wall: {WALL_RULE}")
        if self.error:
            out.append(f"- stopped early: {self.error}")
        out += [
            "",
            "| # | method | from → to | request → Ready | trainer downtime | wall |",
            "|---:|---|---|---:|---:|---:|",
        ]
        for m in self.migrations:
            wall = f"{m.wall_seconds:.2f}s" if m.wall_seconds is not None else "not measured"
            out.append(
                f"| {m.number} | {m.method} | {m.from_node} → {m.to_node} | {_cell(m.request_to_ready)} |"
                f" {_cell(m.downtime)} | {wall} |"
            )
        out.append("")
        return out

    def to_json(self) -> JSON:
        return {
            "pairs_requested": self.pairs,
            "pairs_done": sum(1 for m in self.migrations if m.method == ORCHESTRATOR),
            "error": self.error,
            "rules": {DOWNTIME: DOWNTIME_RULE, REQUEST_TO_READY: READY_RULE, WALL: WALL_RULE},
            "resolution": RESOLUTION_NOTE,
            "medians": {
                method: {figure: self.stats(method, figure).to_json() for figure in (REQUEST_TO_READY, DOWNTIME, WALL)}
                for method in (NATIVE, ORCHESTRATOR)
            },
            "ratio_orchestrator_to_native": {
                figure: None if (value := self.ratio(figure)) is None else round(value, 3)
                for figure in (REQUEST_TO_READY, DOWNTIME, WALL)
            },
            "migrations": [m.to_json() for m in self.migrations],
        }


def table_row(title: str, native: Stats, orchestrator: Stats, digits: int) -> tuple[str, str, str, str]:
    """A figure's row: both methods' medians (with n, min, max) and their ratio."""
    value = ratio(native, orchestrator)
    return (title, native.text(digits), orchestrator.text(digits), f"{value:.2f}" if value is not None else "n/a")


def table_lines(rows: Sequence[Sequence[str]]) -> list[str]:
    """A console table of figures side by side: the header ``FIGURE │ K8S NATIVE │ AI ORCHESTRATOR │ ORCH/NATIVE``,
    a rule, then `rows` (four cells each), every column as wide as its widest cell."""
    cells = [TABLE_HEADER, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE_HEADER))]

    def line(row: Sequence[str]) -> str:
        return " │ ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()

    return [line(TABLE_HEADER), "─┼─".join("─" * w for w in widths), *(line(row) for row in rows)]


def _cell(span: Span) -> str:
    return span.text() if span.measured else f"not measured: {span.reason}"
