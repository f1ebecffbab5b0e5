"""The exec the checkpoint needs, as a Protocol: ``kube.exec.KubeExec`` in production, a fake in unit tests.

``run`` is the simple case: one command, optional stdin bytes, its output (bounded) and status.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from ai_storage_orchestrator.checkpoint.redaction import redact_output
from ai_storage_orchestrator.kube.exec import STDOUT_CHANNEL, ExecError, ExecStatus

__all__ = [
    "CommandResult",
    "ExecError",
    "ExecSessionLike",
    "ExecStatus",
    "ExecTransport",
    "Tail",
    "drain",
    "finish",
    "reading",
    "run",
]


class ExecSessionLike(Protocol):
    status: ExecStatus | None

    async def write(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    def output(self) -> AsyncIterator[tuple[int, bytes]]: ...


class ExecTransport(Protocol):
    def session(
        self, *, namespace: str, pod: str, container: str, argv: Sequence[str], stdin: bool = False
    ) -> AbstractAsyncContextManager[ExecSessionLike]: ...


class Tail:
    """The last ``limit`` bytes written to it; ``truncated`` once more than that was written."""

    def __init__(self, limit: int = 2048) -> None:
        self.limit = limit
        self._data = bytearray()
        self.truncated = False

    def add(self, data: bytes) -> None:
        self._data += data[-self.limit :]
        excess = len(self._data) - self.limit
        if excess > 0 or len(data) > self.limit:
            self.truncated = True
        del self._data[: max(0, excess)]

    def text(self) -> str:
        return self._data.decode("utf-8", "replace")

    def redacted(self) -> str:
        """``text`` as it may appear in an error message (``redaction.redact_output``)."""
        return redact_output(self.text(), truncated=self.truncated)


@dataclass(frozen=True, slots=True)
class CommandResult:
    status: ExecStatus
    stdout: bytes
    stderr: str  # the last 2 KiB
    output: str  # the last 2 KiB of stdout and stderr, interleaved as they arrived
    stderr_truncated: bool = False  # stderr is the end of a longer output

    @property
    def success(self) -> bool:
        return self.status.success

    def describe(self) -> str:
        """Exit code and error output (else the exec's status message), redacted: the output is the container's and
        this text goes into error messages (status, Events, the REST view)."""
        detail = redact_output(self.stderr, truncated=self.stderr_truncated) or redact_output(self.status.message)
        code = "did not run" if self.status.exit_code is None else f"exit {self.status.exit_code}"
        return f"{code}: {detail}" if detail else code


@contextlib.asynccontextmanager
async def reading(session: ExecSessionLike) -> AsyncIterator[AsyncIterator[tuple[int, bytes]]]:
    """``session.output()``, closed as soon as its reader stops -- on an error too -- rather than whenever the
    abandoned generator is collected (its readers would hold the session's streams until then)."""
    output = session.output()
    try:
        yield output
    finally:
        close = getattr(output, "aclose", None)
        if close is not None:
            await close()


async def drain(session: ExecSessionLike, tail: Tail) -> ExecStatus:
    """Read a session's output to its end, keeping the last bytes in ``tail``; its status."""
    async with reading(session) as output:
        async for _channel, data in output:
            tail.add(data)
    assert session.status is not None
    return session.status


async def run(
    transport: ExecTransport,
    *,
    namespace: str,
    pod: str,
    container: str,
    argv: Sequence[str],
    stdin: bytes | None = None,
    max_stdout: int = 4 * 1024 * 1024,
) -> CommandResult:
    """Run ``argv`` to completion (the caller bounds it with ``asyncio.timeout``); stdout beyond ``max_stdout`` bytes
    is dropped. Raises ExecError when the exec could not be carried out."""
    async with transport.session(
        namespace=namespace, pod=pod, container=container, argv=argv, stdin=stdin is not None
    ) as session:
        return await finish(session, stdin=stdin, max_stdout=max_stdout)


async def finish(session: ExecSessionLike, *, stdin: bytes | None, max_stdout: int) -> CommandResult:
    """Send ``stdin`` (then its end) to a running command and read it to its end: ``run`` on a session opened
    earlier."""
    stdout = bytearray()
    stderr, output = Tail(), Tail()
    if stdin is not None:
        # A command that exits before reading all of stdin closes its end; its status says why.
        with contextlib.suppress(ExecError):
            await session.write(stdin)
            await session.close_stdin()
    async for channel, data in session.output():
        output.add(data)
        if channel == STDOUT_CHANNEL:
            if len(stdout) < max_stdout:
                stdout += data[: max_stdout - len(stdout)]
        else:
            stderr.add(data)
    assert session.status is not None
    return CommandResult(session.status, bytes(stdout), stderr.text(), output.text(), stderr.truncated)
