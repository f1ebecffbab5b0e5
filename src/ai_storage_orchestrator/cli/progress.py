"""The progress of `migrate --wait` and `status --wait`.

On a terminal: a live line drawn by rich -- a spinner, the elapsed time (ticking between polls), the phase and its
message; when the phase or the message changes, the finished line stays above the live one. Anywhere else (a pipe, a
file, CI, ``TERM=dumb``): plain lines, one per change of phase or message, exactly as before rich was used."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from ai_storage_orchestrator.cli import output

JSON = dict[str, Any]
REFRESH_PER_SECOND = 8
DUMB_TERMINALS = frozenset({"dumb", "unknown"})


def live_capable(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """A terminal that understands cursor movement: a tty whose TERM is not dumb."""
    term = (os.environ if environ is None else environ).get("TERM", "")
    try:
        return stream.isatty() and term.lower() not in DUMB_TERMINALS
    except (AttributeError, ValueError):  # closed or unusual streams
        return False


class Progress:
    """Shows each state of a migration as the waiting loop sees it. ``quiet`` (``--output json``) shows nothing."""

    def __init__(self, *, quiet: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet = quiet
        self.clock = clock
        self.started = clock()
        self.stream = sys.stdout
        self.live_mode = not quiet and live_capable(self.stream)
        self.last: tuple[Any, Any] | None = None
        self.current: JSON | None = None
        self._live: Live | None = None
        self._spinner = Spinner("dots", style="cyan")

    def elapsed(self) -> float:
        return self.clock() - self.started

    def line(self, migration: JSON) -> str:
        return output.progress_line(migration, self.elapsed())

    def show(self, migration: JSON) -> None:
        if self.quiet:
            return
        key = (migration.get("phase"), migration.get("message"))
        if not self.live_mode:
            if key != self.last:
                print(self.line(migration), flush=True)
            self.last = key
            return
        if self._live is not None and self.current is not None and key != self.last:
            self._live.console.print(Text(self.line(self.current)), soft_wrap=True)
        self.current, self.last = migration, key
        if self._live is None:
            console = Console(file=self.stream, force_terminal=True, force_interactive=True, highlight=False)
            self._live = Live(
                console=console,
                get_renderable=self._renderable,
                refresh_per_second=REFRESH_PER_SECOND,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        else:
            self._live.refresh()

    def _renderable(self) -> Spinner:
        text = Text(self.line(self.current) if self.current is not None else "", no_wrap=True, overflow="ellipsis")
        self._spinner.update(text=text)
        return self._spinner

    def break_line(self) -> None:
        """End the live line (it stays, without the spinner) before something else is written or the end."""
        if self._live is None:
            return
        live, self._live = self._live, None
        live.stop()
        if self.current is not None:
            live.console.print(Text(self.line(self.current)), soft_wrap=True)
        self.last = None
