"""The exec stream as ``tarfile`` needs it: the checkpoint copy receives the output of ``tar -c`` on the event loop,
a chunk at a time, while ``tarfile`` (``tarmembers.follow``) is synchronous and pulls with ``read(n)``.

The bridge is a worker thread per followed stream reading from a bounded pipe: ``feed`` queues each chunk and waits
while ``PIPE_CAPACITY`` bytes are still unread, so memory stays bounded whatever the stream's size and the copy goes
no faster than its tar stream is followed. The thread is the follower's own (not the loop's default executor, whose
few threads resolve host names: a long copy would hold one), ended and joined when the ``async with`` block exits,
an error or a cancellation included. ``on_entry`` runs in that thread.

The names the checkpoint shares with the tar follower (limits, errors, entries) are defined in ``tarmembers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Self

from ai_storage_orchestrator.checkpoint.tarmembers import (
    BLOCK,
    RECORD,
    TarEntry,
    TarLimits,
    TarStreamError,
    TarStreamLimitExceeded,
    TarSummary,
    follow,
)

__all__ = [
    "BLOCK",
    "PIPE_CAPACITY",
    "RECORD",
    "TarEntry",
    "TarLimits",
    "TarStreamError",
    "TarStreamFollower",
    "TarStreamLimitExceeded",
    "TarSummary",
]

PIPE_CAPACITY = 1024 * 1024  # bytes fed but not yet read by tarfile (plus the one chunk that crossed it)


def _ignore(entry: TarEntry) -> None:
    return None


class _Pipe:
    """Bytes from the event loop to one reader thread. ``write`` is the loop's, ``read`` and ``close`` the thread's."""

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int) -> None:
        self._loop = loop
        self._capacity = capacity
        self._lock = threading.Condition()
        self._chunks: deque[memoryview] = deque()
        self._queued = 0
        self._ended = False  # nothing more will be written
        self._closed = False  # the reader stopped: writes are dropped
        self._room = asyncio.Event()
        self._writer_waits = False

    async def write(self, data: bytes) -> bool:
        """Queue ``data``, waiting while the pipe is full; False (``data`` dropped) once the reader stopped."""
        while True:
            with self._lock:
                if self._closed:
                    return False
                if self._queued < self._capacity:
                    self._chunks.append(memoryview(data))
                    self._queued += len(data)
                    self._lock.notify()
                    return True
                self._writer_waits = True
                self._room.clear()
            await self._room.wait()

    def end(self) -> None:
        """The stream is complete: the reader gets what is queued, then end-of-file."""
        with self._lock:
            self._ended = True
            self._lock.notify()

    def abort(self) -> None:
        """End-of-file for the reader now; what is queued is dropped."""
        with self._lock:
            self._ended = True
            self._chunks.clear()
            self._queued = 0
            self._lock.notify()

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes (the next queued chunk, or part of it), waiting for one; ``b""`` at the end."""
        with self._lock:
            while not self._chunks and not self._ended:
                self._lock.wait()
            if not self._chunks:
                return b""
            head = self._chunks[0]
            if 0 <= size < len(head):
                taken, self._chunks[0] = head[:size], head[size:]
            else:
                taken = self._chunks.popleft()
            self._queued -= len(taken)
            wake, self._writer_waits = self._writer_waits, False
        if wake:
            self._wake_writer()
        return taken.tobytes()

    def close(self) -> None:
        """The reader stopped: drop what is queued, and every later write."""
        with self._lock:
            self._closed = True
            self._chunks.clear()
            self._queued = 0
        self._wake_writer()

    def _wake_writer(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._room.set)


class TarStreamFollower:
    """Follow a tar stream fed chunk by chunk on the event loop::

        async with TarStreamFollower(on_entry, limits) as follower:
            for chunk in ...:
                await follower.feed(chunk)
            summary = await follower.finish()

    ``on_entry`` gets every member as it completes, in archive order (``tarmembers.follow``). ``feed`` raises the
    follower's error (``TarStreamError``, or whatever ``on_entry`` raised) once it refused the stream, and again at
    every later call; ``finish`` returns the ``TarSummary`` or raises that error. Bytes fed after the end-of-archive
    marker are counted (``bytes_seen``) and dropped."""

    def __init__(
        self,
        on_entry: Callable[[TarEntry], None] = _ignore,
        limits: TarLimits | None = None,
        *,
        capacity: int = PIPE_CAPACITY,
    ) -> None:
        self._on_entry = on_entry
        self._limits = limits or TarLimits()
        self._capacity = capacity
        self.bytes_seen = 0
        self._error: BaseException | None = None

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._pipe = _Pipe(loop, self._capacity)
        self._done: asyncio.Future[TarSummary] = loop.create_future()
        self._thread = threading.Thread(target=self._follow, args=(loop,), name="checkpoint-tar-follower", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self._done.done():
            self._pipe.abort()
            await asyncio.wait([self._done])  # not cancelled with this task: the thread sets it just before it ends
        self._thread.join()  # returns at once: setting ``_done`` was the thread's last step
        if not self._done.cancelled():
            self._done.exception()  # retrieved: an error ``feed`` raised is not reported again as never retrieved

    async def feed(self, data: bytes) -> None:
        self.bytes_seen += len(data)
        if not await self._pipe.write(data) and self._error is not None:
            raise self._error

    async def finish(self) -> TarSummary:
        """The stream is complete: wait for the follower to read what is queued."""
        self._pipe.end()
        return await asyncio.shield(self._done)

    def _follow(self, loop: asyncio.AbstractEventLoop) -> None:
        summary: TarSummary | None = None
        try:
            summary = follow(self._pipe, self._on_entry, self._limits)
        except BaseException as error:  # handed to the event loop: ``feed`` and ``finish`` raise it
            self._error = error
        finally:
            self._pipe.close()  # after ``_error`` is set: a write that finds the pipe closed sees the error
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_settle, self._done, summary, self._error)


def _settle(done: asyncio.Future[TarSummary], summary: TarSummary | None, error: BaseException | None) -> None:
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        assert summary is not None
        done.set_result(summary)
