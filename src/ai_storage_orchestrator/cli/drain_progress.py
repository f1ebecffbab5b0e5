"""The progress of `drain`: on a terminal a live table drawn by rich (pod, action, state, target node, elapsed),
redrawn as the pods move; anywhere else (a pipe, a file, CI, ``TERM=dumb``) one plain line per change of a pod's
action, state or target."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ai_storage_orchestrator.cli.drain_pods import PodWork
from ai_storage_orchestrator.cli.progress import live_capable

HEADERS = ("POD", "ACTION", "STATE", "TARGET", "ELAPSED")
REFRESH_PER_SECOND = 4


def row(work: PodWork, now: float) -> tuple[str, str, str, str, str]:
    elapsed = work.elapsed(now)
    return (
        work.key,
        work.action.value if work.action else "-",
        work.state,
        work.target or "-",
        "-" if elapsed is None else f"{elapsed:.1f}s",
    )


def plain_line(work: PodWork, now: float) -> str:
    pod, action, state, target, elapsed = row(work, now)
    line = f"[{elapsed:>7}] {pod} {action}: {state}"
    if target != "-":
        line += f" -> {target}"
    if work.outcome is not None and work.reason and work.outcome.value not in ("migrated", "evicted"):
        line += f" ({work.reason})"
    return line


def live_table(works: Sequence[PodWork], now: float) -> Table:
    shown = Table(*HEADERS, box=None, pad_edge=False, header_style="bold")
    for work in works:
        shown.add_row(*row(work, now))
    return shown


class DrainProgress:
    def __init__(
        self, works: Sequence[PodWork], *, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.works = works
        self.stream = stream if stream is not None else sys.stdout
        self.clock = clock
        self.live_mode = live_capable(self.stream)
        self._shown: dict[str, tuple[Any, ...]] = {}
        self._live: Live | None = None

    def start(self) -> None:
        if not self.live_mode:
            for work in self.works:
                if work.outcome is not None:  # skipped from the start
                    self.update(work)
            return
        console = Console(file=self.stream, force_terminal=True, force_interactive=True, highlight=False)
        self._live = Live(
            console=console,
            get_renderable=lambda: live_table(self.works, self.clock()),
            refresh_per_second=REFRESH_PER_SECOND,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def update(self, work: PodWork) -> None:
        if self._live is not None:
            self._live.refresh()
            return
        if self.live_mode:  # not started yet, or stopped: the table shows it when it is drawn
            return
        key = (work.action, work.state, work.target, work.outcome)
        if self._shown.get(work.key) != key:
            self._shown[work.key] = key
            print(plain_line(work, self.clock()), file=self.stream, flush=True)

    def stop(self) -> None:
        """Draw the table one last time and leave it on the screen."""
        if self._live is None:
            return
        live, self._live = self._live, None
        live.refresh()
        live.stop()
