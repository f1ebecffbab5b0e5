"""The progress of --wait: rich's live line on a terminal (its elapsed time ticking between polls), plain lines
elsewhere."""

from __future__ import annotations

import io
import sys

import pytest

from ai_storage_orchestrator.cli.progress import Progress, live_capable
from tests.unit.cli.conftest import screen


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("stream", "term", "live"),
    [(Terminal(), "xterm", True), (Terminal(), "dumb", False), (io.StringIO(), "xterm", False)],
    ids=["terminal", "dumb-terminal", "pipe"],
)
def test_live_only_on_a_capable_terminal(stream: io.StringIO, term: str, live: bool) -> None:
    assert live_capable(stream, {"TERM": term}) is live


def test_the_live_line_ticks_and_finished_phases_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("TERM", "xterm")
    clock = Clock()
    shown = Progress(quiet=False, clock=clock)
    try:
        shown.show({"phase": "Validating", "message": "checking [the pod]"})
        clock.now += 2.5
        live = shown._live
        assert live is not None
        live.refresh()  # what rich's refresh thread does several times a second
        assert "[    2.5s] Validating       checking [the pod]" in terminal.getvalue()
        clock.now += 1.0
        shown.show({"phase": "CreatingTarget", "message": "creating"})
        clock.now += 4.0
    finally:
        shown.break_line()
    assert shown._live is None
    lines = screen(terminal.getvalue())
    assert lines == [
        "[    3.5s] Validating       checking [the pod]",  # markup in a message is shown as it is
        "[    7.5s] CreatingTarget   creating",
    ]


def test_plain_lines_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stdout", pipe)
    clock = Clock()
    shown = Progress(quiet=False, clock=clock)
    for phase, message in [("Validating", "a"), ("Validating", "a"), ("Validating", "b"), ("Completed", "done")]:
        shown.show({"phase": phase, "message": message})
        clock.now += 1
    shown.break_line()
    assert pipe.getvalue().splitlines() == [
        "[    0.0s] Validating       a",
        "[    2.0s] Validating       b",
        "[    3.0s] Completed        done",
    ]


def test_quiet_shows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    shown = Progress(quiet=True)
    shown.show({"phase": "Validating", "message": "a"})
    shown.break_line()
    assert terminal.getvalue() == ""
