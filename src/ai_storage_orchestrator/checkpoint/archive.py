"""Write files of any size onto the checkpoint volume without holding them: a tar archive is generated member by
member (each member's data pulled from a callable as it is sent) and streamed into ``tar -x`` in a container that
mounts the volume -- the one tool the checkpoint already needs, without a shell and without relying on stdin
end-of-file (the archive is padded to a whole record, so ``tar -x`` stops at its end marker)."""

from __future__ import annotations

import asyncio
import contextlib
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from ai_storage_orchestrator.checkpoint.errors import WRITE_FAILED, CheckpointError, write_failure_reason
from ai_storage_orchestrator.checkpoint.redaction import redact_output
from ai_storage_orchestrator.checkpoint.tarstream import BLOCK, RECORD
from ai_storage_orchestrator.checkpoint.transport import (
    CommandResult,
    ExecError,
    ExecSessionLike,
    ExecStatus,
    ExecTransport,
    Tail,
    reading,
)
from ai_storage_orchestrator.kube.exec import STDOUT_CHANNEL

BATCH = 256 * 1024  # bytes per stdin frame (the API server's stdin path costs per frame)
MAX_STDOUT = 4 * 1024 * 1024  # bytes of a command's stdout kept (like ``transport.run``)


@dataclass(frozen=True, slots=True)
class Member:
    """A directory (``chunks`` None) or a regular file of ``size`` bytes whose data ``chunks()`` yields."""

    name: str
    size: int = 0
    chunks: Callable[[], Iterable[bytes]] | None = None


def archive_chunks(members: Sequence[Member], *, mtime: float) -> Iterator[bytes]:
    """The tar archive holding ``members``, record-padded. ValueError when a member's data is not ``size`` bytes."""
    written = 0
    for member in members:
        info = tarfile.TarInfo(member.name)
        info.mtime = int(mtime)
        if member.chunks is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
        else:
            info.size, info.mode = member.size, 0o644
        header = info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape")
        yield header
        written += len(header)
        if member.chunks is None:
            continue
        sent = 0
        for chunk in member.chunks():
            sent += len(chunk)
            if sent > member.size:
                raise ValueError(f"{member.name} grew beyond the {member.size} bytes its header announced")
            yield chunk
        if sent != member.size:
            raise ValueError(f"{member.name} has {sent} bytes, its header announced {member.size}")
        padding = (-sent) % BLOCK
        yield bytes(padding)
        written += sent + padding
    end = bytes(2 * BLOCK)
    yield end
    written += len(end)
    yield bytes((-written) % RECORD)


def batched(chunks: Iterable[bytes], size: int = BATCH) -> Iterator[bytes]:
    batch = bytearray()
    for chunk in chunks:
        batch += chunk
        if len(batch) >= size:
            yield bytes(batch)
            batch.clear()
    if batch:
        yield bytes(batch)


async def stream_archive(
    transport: ExecTransport,
    *,
    namespace: str,
    pod: str,
    container: str,
    argv: Sequence[str],
    members: Sequence[Member],
    mtime: float,
    what: str,
    max_stdout: int = MAX_STDOUT,
) -> tuple[CommandResult, bool]:
    """Run ``argv`` with the tar archive holding ``members`` on its stdin, read its output as it comes (stdout up to
    ``max_stdout`` bytes, the last bytes of stderr and of both): (its result, whether it took the whole archive).
    CheckpointError(checkpoint_write_failed) when a member's data is not the size it announced."""
    stdout = bytearray()
    stderr, output = Tail(), Tail()

    async def collect(session: ExecSessionLike) -> ExecStatus:
        async with reading(session) as chunks:
            async for channel, data in chunks:
                output.add(data)
                if channel == STDOUT_CHANNEL:
                    stdout.extend(data[: max(0, max_stdout - len(stdout))])
                else:
                    stderr.add(data)
        assert session.status is not None
        return session.status

    accepted = True
    async with transport.session(namespace=namespace, pod=pod, container=container, argv=argv, stdin=True) as session:
        draining = asyncio.create_task(collect(session), name="checkpoint-archive-drain")
        try:
            for batch in batched(archive_chunks(members, mtime=mtime)):
                try:
                    await session.write(batch)
                except ExecError:
                    accepted = False
                    break
            with contextlib.suppress(ExecError):
                await session.close_stdin()
            status = await draining
        except ValueError as error:
            raise CheckpointError(f"{what}: {error}", reason=WRITE_FAILED) from error
        finally:
            if not draining.done():
                draining.cancel()
                with contextlib.suppress(asyncio.CancelledError, ExecError):
                    await draining
    return CommandResult(status, bytes(stdout), stderr.text(), output.text(), stderr.truncated), accepted


async def write_archive(
    transport: ExecTransport,
    *,
    namespace: str,
    pod: str,
    container: str,
    directory: str,
    members: Sequence[Member],
    mtime: float,
    what: str,
) -> None:
    """Extract ``members`` into ``directory`` (which must exist) through ``container``; CheckpointError with the
    precise write reason when ``tar -x`` fails."""
    result, accepted = await stream_archive(
        transport,
        namespace=namespace,
        pod=pod,
        container=container,
        argv=["tar", "-x", "-f", "-", "-C", directory],
        members=members,
        mtime=mtime,
        what=what,
        max_stdout=0,
    )
    archive_failure(result, accepted, what)


def archive_failure(result: CommandResult, accepted: bool, what: str, *, text: str | None = None) -> None:
    """CheckpointError with the precise write reason when the extraction of an archive failed (``text``: its error
    output, by default the last bytes of everything it wrote) or did not take the whole archive."""
    status = result.status
    if not status.success:
        text = (result.output if text is None else text).strip() or status.message
        shown = redact_output(text, truncated=result.stderr_truncated)  # the container's output: into the status
        raise CheckpointError(
            f"{what} failed ({redact_output(status.describe())}): {shown}", reason=write_failure_reason(text)
        )
    if not accepted:
        raise CheckpointError(f"{what}: the checkpoint volume stopped accepting data", reason=WRITE_FAILED)
