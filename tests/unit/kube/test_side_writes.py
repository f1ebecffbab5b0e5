"""Side writes (Events, informative annotations) wait while a migration acts, for at most their hold, and go out in
the order they were made; a flush sends them at once."""

from __future__ import annotations

import asyncio

import pytest

from ai_storage_orchestrator.kube.events import EventRecorder

pytestmark = pytest.mark.unit


class Gate:
    """A hold that ends when the test says the migrations are done (or when its time is up)."""

    def __init__(self) -> None:
        self.quiet = asyncio.Event()
        self.asked: list[float] = []

    async def hold(self, seconds: float) -> None:
        self.asked.append(seconds)
        try:
            async with asyncio.timeout(seconds):
                await self.quiet.wait()
        except TimeoutError:
            pass


def _recorder(gate: Gate | None, *, max_hold_seconds: float = 30.0) -> tuple[EventRecorder, list[str]]:
    recorder = EventRecorder(api=None, instance="test", hold=None if gate is None else gate.hold)  # type: ignore[arg-type]
    recorder.max_hold_seconds = max_hold_seconds
    return recorder, []


async def _write(sent: list[str], name: str) -> None:
    sent.append(name)


async def _settle() -> None:
    """Let the sender run every step it can without waiting on anything."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_side_writes_wait_while_a_migration_acts_and_keep_their_order() -> None:
    gate = Gate()
    recorder, sent = _recorder(gate)
    for name in ("first", "second", "third"):
        recorder.run_in_background(_write(sent, name))
    await _settle()
    assert sent == [], "held while the migration acts"
    gate.quiet.set()
    await _settle()
    assert sent == ["first", "second", "third"]
    assert gate.asked
    assert all(0 < seconds <= 30.0 for seconds in gate.asked)


async def test_a_side_write_goes_out_when_its_hold_is_over_even_if_migrations_still_act() -> None:
    gate = Gate()
    recorder, sent = _recorder(gate, max_hold_seconds=0.01)
    done = asyncio.Event()

    async def late() -> None:
        sent.append("late")
        done.set()

    recorder.run_in_background(late())
    async with asyncio.timeout(5):
        await done.wait()
    assert sent == ["late"]
    assert not gate.quiet.is_set()


async def test_flush_sends_what_is_held_at_once() -> None:
    gate = Gate()
    recorder, sent = _recorder(gate)
    recorder.run_in_background(_write(sent, "one"))
    recorder.run_in_background(_write(sent, "two"))
    await _settle()
    await recorder.flush()
    assert sent == ["one", "two"]


async def test_without_a_hold_side_writes_start_at_once() -> None:
    recorder, sent = _recorder(None)
    recorder.run_in_background(_write(sent, "now"))
    await _settle()
    assert sent == ["now"]


async def test_a_later_side_write_never_overtakes_an_earlier_one() -> None:
    gate = Gate()
    gate.quiet.set()
    recorder, sent = _recorder(gate)
    slow_may_finish = asyncio.Event()

    async def slow() -> None:
        await slow_may_finish.wait()  # an annotation the API server answers late
        sent.append("Running")

    recorder.run_in_background(slow())
    recorder.run_in_background(_write(sent, "Failed: target_rejected"))
    await _settle()
    assert sent == [], "the later write waits for the earlier one"
    slow_may_finish.set()
    await _settle()
    assert sent == ["Running", "Failed: target_rejected"]
