"""A fake exec transport for the checkpoint tests: like KWOK's local exec, every "container" runs the command on this
host (so the shared volume is a tmp directory), and faults can be injected per command."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from ai_storage_orchestrator.kube.exec import STDERR_CHANNEL, STDOUT_CHANNEL, ExecError, ExecStatus


@dataclass(frozen=True)
class Call:
    container: str
    argv: tuple[str, ...]
    stdin: bool


# A fault sees the call before it runs: return None to run it, or (status, stderr) to answer that instead.
Fault = Callable[[Call], tuple[ExecStatus, bytes] | None]


class LocalSession:
    def __init__(self, process: asyncio.subprocess.Process | None, answer: tuple[ExecStatus, bytes] | None) -> None:
        self._process = process
        self._answer = answer
        self.status: ExecStatus | None = None

    async def write(self, data: bytes) -> None:
        if self._process is None or self._process.stdin is None:
            raise ExecError("stdin closed")
        try:
            self._process.stdin.write(data)
            await self._process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as error:
            raise ExecError(f"the command ended before all of stdin was sent: {error}") from error

    async def close_stdin(self) -> None:
        if self._process is not None and self._process.stdin is not None and not self._process.stdin.is_closing():
            self._process.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self._process.stdin.wait_closed()

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        if self._process is None:
            assert self._answer is not None
            status, stderr = self._answer
            if stderr:
                yield STDERR_CHANNEL, stderr
            self.status = status
            return
        process = self._process
        assert process.stdout is not None
        assert process.stderr is not None
        queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue(maxsize=4)

        async def pump(channel: int, stream: asyncio.StreamReader) -> None:
            while chunk := await stream.read(32 * 1024):
                await queue.put((channel, chunk))

        readers = [
            asyncio.create_task(pump(STDOUT_CHANNEL, process.stdout)),
            asyncio.create_task(pump(STDERR_CHANNEL, process.stderr)),
        ]
        try:
            while not all(r.done() for r in readers) or not queue.empty():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait([getter, *readers], return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
            code = await process.wait()
            self.status = ExecStatus(code, "" if code == 0 else f"command terminated with exit code {code}")
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)


@dataclass
class LocalExec:
    """Implements ``checkpoint.transport.ExecTransport``; ``calls`` records every command in order."""

    faults: list[Fault] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def session(
        self, *, namespace: str, pod: str, container: str, argv: Sequence[str], stdin: bool = False
    ) -> AbstractAsyncContextManager[Any]:
        # Declared as the protocol declares it, so that the fakes built on this one may return any context manager.
        return self._session(container=container, argv=argv, stdin=stdin)

    @contextlib.asynccontextmanager
    async def _session(self, *, container: str, argv: Sequence[str], stdin: bool) -> AsyncIterator[Any]:
        call = Call(container, tuple(argv), stdin)
        self.calls.append(call)
        for fault in self.faults:
            answer = fault(call)
            if answer is not None:
                yield LocalSession(None, answer)
                return
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as error:  # what a kubelet reports as a failure without an exit code
            yield LocalSession(None, (ExecStatus(None, f"executable file not found: {error}"), b""))
            return
        try:
            yield LocalSession(process, None)
        finally:
            if process.returncode is None:
                process.kill()
                # Read what is left to the end: a pipe paused by unread output would never close, and wait()
                # waits for the pipes too.
                for stream in (process.stdout, process.stderr):
                    if stream is not None:
                        with contextlib.suppress(Exception):
                            await stream.read()
                await process.wait()

    def argvs(self) -> list[tuple[str, ...]]:
        return [c.argv for c in self.calls]
