"""Copy one artifact into the checkpoint and check what landed there.

The copy is two execs joined by the orchestrator: ``tar -c`` of the artifact in a container that can read it, piped
chunk by chunk into ``tar -x`` in a container that mounts the shared volume. Each chunk is forwarded and handed to
the tar follower (``tarstream.TarStreamFollower``: ``tarfile`` in stream mode in a worker thread, bounded by
``TarLimits``), which hashes every file on the way; every member goes to the spooled ``FileRecords``; nothing holds
more than one batch of websocket frames and the follower's bounded pipe, whatever the artifact's size or number of
files. A stream that is not a tar archive fails the copy with ``checkpoint_copy_failed``, one beyond the limits with
``checkpoint_too_large``.

The receiving ``tar`` stops at the end-of-archive marker rather than at end-of-file (a kubelet may not propagate the
close of stdin -- KWOK does not), so the stream is padded to a full tar record before stdin is closed.

Verification runs ``sha256sum -c`` on each artifact's checksum list in its store (``CHECK_FUNCTION``, a fixed ``sh``
script whose only inputs are its arguments; the restore init container runs the same function on the restored files)
and re-reads size and sha256 of single files (the lists themselves, the manifest) with ``verify_files``.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ai_storage_orchestrator.checkpoint.checksums import VERIFY_LIST_SCRIPT
from ai_storage_orchestrator.checkpoint.errors import (
    COPY_FAILED,
    TOO_LARGE,
    VERIFY_FAILED,
    CheckpointError,
    write_failure_reason,
)
from ai_storage_orchestrator.checkpoint.layout import ARTIFACTS_DIR
from ai_storage_orchestrator.checkpoint.manifest import ArtifactFile
from ai_storage_orchestrator.checkpoint.records import ArtifactSection, FileRecords
from ai_storage_orchestrator.checkpoint.redaction import redact_output
from ai_storage_orchestrator.checkpoint.tarstream import (
    RECORD,
    TarLimits,
    TarStreamError,
    TarStreamFollower,
    TarStreamLimitExceeded,
)
from ai_storage_orchestrator.checkpoint.transport import (
    CommandResult,
    ExecSessionLike,
    ExecTransport,
    Tail,
    drain,
    reading,
    run,
)
from ai_storage_orchestrator.kube.exec import STDOUT_CHANNEL, ExecError

VERIFY_SCRIPT = """set -eu
for f do
  size=$(wc -c < "$f")
  sum=$(sha256sum < "$f")
  printf '%s %s\\n' $size "${sum%% *}"
done
"""
_ARGV_BUDGET = 16 * 1024  # bytes of paths per verify exec (they travel in the URL)
# kube-apiserver sends stdout in 32 KiB frames; they are forwarded in batches of this size, because the stdin path
# through the API server costs per frame (about 80 MiB/s with 16 KiB frames, 110+ with 256 KiB ones).
_BATCH = 256 * 1024


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A container of the pod and a path as that container sees it; ``base``, when known, the mount point of the
    volume the path is on (the checkpoint's writer: nothing between it and the path may be a symbolic link)."""

    container: str
    path: str
    base: str = ""


@dataclass(frozen=True, slots=True)
class CopyStats:
    section: ArtifactSection
    stream_bytes: int
    seconds: float

    @property
    def files(self) -> int:
        return self.section.file_count

    @property
    def file_bytes(self) -> int:
        return self.section.file_bytes


def source_argv(path: str) -> list[str]:
    """``tar -c`` of ``path``, named ``./<basename>`` so no member name can be taken for an option."""
    parent, base = posixpath.split(posixpath.normpath(path))
    return ["tar", "-c", "-f", "-", "-C", parent or "/", f"./{base}"]


def destination_argv(directory: str) -> list[str]:
    return ["tar", "-x", "-f", "-", "-C", directory]


async def _pump(
    source: ExecSessionLike, destination: ExecSessionLike, follower: TarStreamFollower, errors: Tail, what: str
) -> bool:
    """Forward the source's stdout to the destination's stdin a few frames at a time (never more than ``_BATCH``
    bytes held), and to the tar follower; False when the destination stopped taking it."""
    batch = bytearray()
    async with reading(source) as output:
        async for channel, data in output:
            if channel != STDOUT_CHANNEL:
                errors.add(data)
                continue
            with _refusals(what):
                await follower.feed(data)
            batch += data
            if len(batch) >= _BATCH and not await _send(destination, batch):
                return False
    return await _send(destination, batch)


@contextlib.contextmanager
def _refusals(what: str) -> Iterator[None]:
    """The tar follower's refusal of the stream of ``what``, as the checkpoint's failure."""
    try:
        yield
    except TarStreamLimitExceeded as error:
        raise CheckpointError(
            f"{what} is too large to checkpoint: {error}",
            reason=TOO_LARGE,
            details={"limit": error.limit, "allowed": error.allowed},
        ) from error
    except TarStreamError as error:
        raise CheckpointError(
            # The error may quote bytes of the stream: the container's output, redacted like its error output.
            f"the stream of {what} is not a valid tar archive: {redact_output(str(error))}",
            reason=COPY_FAILED,
        ) from error


async def _send(destination: ExecSessionLike, batch: bytearray) -> bool:
    if not batch:
        return True
    try:
        await destination.write(bytes(batch))
    except ExecError:
        return False
    batch.clear()
    return True


async def _finish_stdin(destination: ExecSessionLike, stream_bytes: int) -> None:
    """Pad to a whole tar record (so ``tar -x`` sees the end without needing end-of-file), then close stdin."""
    with contextlib.suppress(ExecError):  # the receiving tar may already have stopped at the end marker
        padding = (-stream_bytes) % RECORD
        if padding:
            await destination.write(bytes(padding))
        await destination.close_stdin()


async def stream_artifact(
    transport: ExecTransport,
    *,
    namespace: str,
    pod: str,
    source: Endpoint,
    destination: Endpoint,
    container: str,
    declared: str,
    records: FileRecords,
    limits: TarLimits,
) -> CopyStats:
    """Copy ``source.path`` into the directory ``destination.path`` (which must exist); its members go to ``records``
    (a new section) as ``container`` sees them under its ``declared`` artifact path, stored as
    ``artifacts/<container><path>`` relative to the checkpoint directory."""
    section = records.begin(container, declared)
    what = f"artifact {declared} of container {container}"
    source_errors, destination_output = Tail(), Tail()
    started = time.monotonic()
    async with (
        transport.session(
            namespace=namespace, pod=pod, container=source.container, argv=source_argv(source.path)
        ) as src,
        transport.session(
            namespace=namespace,
            pod=pod,
            container=destination.container,
            argv=destination_argv(destination.path),
            stdin=True,
        ) as dst,
        TarStreamFollower(lambda entry: records.add(section, entry), limits) as follower,
    ):
        draining = asyncio.create_task(drain(dst, destination_output), name="checkpoint-copy-drain")
        try:
            accepted = await _pump(src, dst, follower, source_errors, what)
            with _refusals(what):
                followed = await follower.finish()
            if accepted:
                status = src.status
                assert status is not None
                if not status.success:
                    raise CheckpointError(
                        f"reading {declared} in container {source.container} failed"
                        f" ({redact_output(status.describe())}): {source_errors.redacted()}",
                        reason=COPY_FAILED,
                    )
                if not followed.finished:
                    raise CheckpointError(f"the tar stream of {declared} ended early", reason=COPY_FAILED)
                await _finish_stdin(dst, follower.bytes_seen)
            written = await draining
        finally:
            if not draining.done():
                draining.cancel()
                with contextlib.suppress(asyncio.CancelledError, ExecError):
                    await draining
    if not written.success:
        text = destination_output.text().strip() or written.message
        shown = destination_output.redacted() or redact_output(written.message)
        raise CheckpointError(
            f"writing {declared} to the checkpoint volume failed ({redact_output(written.describe())}): {shown}",
            reason=write_failure_reason(text),
        )
    if not accepted:
        raise CheckpointError(f"the checkpoint volume stopped accepting {declared}", reason=COPY_FAILED)
    return CopyStats(section=section, stream_bytes=follower.bytes_seen, seconds=time.monotonic() - started)


def _batches(paths: Sequence[str]) -> list[list[str]]:
    batches: list[list[str]] = [[]]
    used = 0
    for path in paths:
        if batches[-1] and used + len(path) > _ARGV_BUDGET:
            batches.append([])
            used = 0
        batches[-1].append(path)
        used += len(path) + 1
    return [b for b in batches if b]


async def verify_files(
    transport: ExecTransport,
    *,
    namespace: str,
    pod: str,
    container: str,
    checkpoint_dir: str,
    files: Sequence[ArtifactFile],
) -> None:
    """Re-read size and sha256 of every copied regular file on the volume; CheckpointError(checkpoint_verify_failed)
    at the first difference."""
    regular = [f for f in files if f.kind == "file"]
    for batch in _batches([posixpath.join(checkpoint_dir, f.stored) for f in regular]):
        expected = regular[: len(batch)]
        regular = regular[len(batch) :]
        result = await run(
            transport,
            namespace=namespace,
            pod=pod,
            container=container,
            argv=["sh", "-c", VERIFY_SCRIPT, "verify", *batch],
        )
        check_reread(expected, result)


def check_reread(files: Sequence[ArtifactFile], result: CommandResult) -> None:
    """``VERIFY_SCRIPT``'s answer (one ``<size> <sha256>`` line per file) against ``files``;
    CheckpointError(checkpoint_verify_failed) at the first difference."""
    if not result.success:
        raise CheckpointError(
            f"could not re-read the copied artifacts ({result.describe()})",
            reason=VERIFY_FAILED,
        )
    lines = result.stdout.decode(errors="replace").splitlines()
    if len(lines) != len(files):
        raise CheckpointError(
            f"re-reading the copied artifacts gave {len(lines)} results for {len(files)} files",
            reason=VERIFY_FAILED,
        )
    for file, line in zip(files, lines, strict=True):
        size_text, _, digest = line.strip().partition(" ")
        if size_text != str(file.size) or digest != file.sha256:
            raise CheckpointError(
                f"artifact {file.path} of container {file.container} differs on the volume after copying:"
                f" streamed {file.size} bytes sha256 {file.sha256}, found {size_text} bytes sha256 {digest}",
                reason=VERIFY_FAILED,
                details={"path": file.path, "container": file.container},
            )


async def verify_artifact(
    transport: ExecTransport,
    *,
    namespace: str,
    pod: str,
    container: str,
    checkpoint_dir: str,
    section: ArtifactSection,
) -> None:
    """``sha256sum -c`` of ``section``'s checksum list in its store on the volume; CheckpointError
    (checkpoint_verify_failed) naming the first file that differs."""
    if not section.file_count:
        return
    store = posixpath.join(checkpoint_dir, ARTIFACTS_DIR, section.container) + section.parent
    result = await run(
        transport,
        namespace=namespace,
        pod=pod,
        container=container,
        argv=["sh", "-c", VERIFY_LIST_SCRIPT, "verify-list", store, posixpath.join(checkpoint_dir, section.list_path)],
    )
    if not result.success:
        raise CheckpointError(
            f"artifact {section.artifact} of container {section.container} differs on the volume after copying:"
            f" {redact_output(result.stderr, truncated=result.stderr_truncated) or result.describe()}",
            reason=VERIFY_FAILED,
            details={"path": section.artifact, "container": section.container},
        )
