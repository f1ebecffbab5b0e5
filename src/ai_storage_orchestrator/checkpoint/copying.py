"""Copy one artifact into the checkpoint and check what landed there.

The copy is two execs joined by the orchestrator: ``tar -c`` of the artifact in a container that can read it, piped
chunk by chunk into ``tar -x`` in a container that mounts the shared volume. Each chunk is hashed on the way
(``TarStreamHasher``) and forwarded; nothing holds more than one websocket frame, whatever the artifact's size.

The receiving ``tar`` stops at the end-of-archive marker rather than at end-of-file (a kubelet may not propagate the
close of stdin -- KWOK does not), so the stream is padded to a full tar record before stdin is closed.

Verification re-reads every copied file on the volume (``wc -c`` and ``sha256sum`` through a fixed ``sh`` script whose
only inputs are its arguments) and compares size and digest with what was streamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ai_storage_orchestrator.checkpoint.errors import COPY_FAILED, VERIFY_FAILED, CheckpointError, write_failure_reason
from ai_storage_orchestrator.checkpoint.layout import ARTIFACTS_DIR
from ai_storage_orchestrator.checkpoint.manifest import ArtifactFile
from ai_storage_orchestrator.checkpoint.tarstream import RECORD, TarStreamError, TarStreamHasher
from ai_storage_orchestrator.checkpoint.transport import ExecSessionLike, ExecTransport, Tail, run
from ai_storage_orchestrator.kube.exec import STDOUT_CHANNEL, ExecError, ExecStatus

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
    """A container of the pod and a path as that container sees it."""

    container: str
    path: str


@dataclass(frozen=True, slots=True)
class CopyStats:
    files: list[ArtifactFile]
    stream_bytes: int
    seconds: float

    @property
    def file_bytes(self) -> int:
        return sum(f.size for f in self.files if f.kind == "file")


def source_argv(path: str) -> list[str]:
    """``tar -c`` of ``path``, named ``./<basename>`` so no member name can be taken for an option."""
    parent, base = posixpath.split(posixpath.normpath(path))
    return ["tar", "-c", "-f", "-", "-C", parent or "/", f"./{base}"]


def destination_argv(directory: str) -> list[str]:
    return ["tar", "-x", "-f", "-", "-C", directory]


async def _drain(session: ExecSessionLike, tail: Tail) -> ExecStatus:
    async for _channel, data in session.output():
        tail.add(data)
    assert session.status is not None
    return session.status


async def _pump(source: ExecSessionLike, destination: ExecSessionLike, hasher: TarStreamHasher, errors: Tail) -> bool:
    """Forward the source's stdout to the destination's stdin a few frames at a time (never more than ``_BATCH``
    bytes held); False when the destination stopped taking it."""
    batch = bytearray()
    async for channel, data in source.output():
        if channel != STDOUT_CHANNEL:
            errors.add(data)
            continue
        try:
            hasher.feed(data)
        except TarStreamError as error:
            raise CheckpointError(
                f"the artifact stream is not a valid tar archive: {error}", reason=COPY_FAILED
            ) from error
        batch += data
        if len(batch) >= _BATCH and not await _send(destination, batch):
            return False
    return await _send(destination, batch)


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
) -> CopyStats:
    """Copy ``source.path`` into the directory ``destination.path`` (which must exist); the files are reported as
    ``container`` sees them under its ``declared`` artifact path, stored as ``artifacts/<container><path>`` relative
    to the checkpoint directory."""
    hasher = TarStreamHasher()
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
    ):
        drain = asyncio.create_task(_drain(dst, destination_output), name="checkpoint-copy-drain")
        try:
            accepted = await _pump(src, dst, hasher, source_errors)
            if accepted:
                status = src.status
                assert status is not None
                if not status.success:
                    raise CheckpointError(
                        f"reading {declared} in container {source.container} failed ({status.describe()}):"
                        f" {source_errors.text().strip()}",
                        reason=COPY_FAILED,
                    )
                if not hasher.finished:
                    raise CheckpointError(f"the tar stream of {declared} ended early", reason=COPY_FAILED)
                await _finish_stdin(dst, hasher.bytes_seen)
            written = await drain
        finally:
            if not drain.done():
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError, ExecError):
                    await drain
    if not written.success:
        text = destination_output.text().strip() or written.message
        raise CheckpointError(
            f"writing {declared} to the checkpoint volume failed ({written.describe()}): {text}",
            reason=write_failure_reason(text),
        )
    if not accepted:
        raise CheckpointError(f"the checkpoint volume stopped accepting {declared}", reason=COPY_FAILED)
    return CopyStats(
        files=_artifact_files(hasher, container=container, declared=declared),
        stream_bytes=hasher.bytes_seen,
        seconds=time.monotonic() - started,
    )


def _artifact_files(hasher: TarStreamHasher, *, container: str, declared: str) -> list[ArtifactFile]:
    parent = posixpath.dirname(declared)
    files = []
    for entry in hasher.entries:
        relative = entry.name[2:] if entry.name.startswith("./") else entry.name.lstrip("/")
        relative = relative.rstrip("/")
        if not relative or relative == ".":
            continue
        path = posixpath.join(parent, relative)
        stored = posixpath.join(ARTIFACTS_DIR, container) + path
        files.append(
            ArtifactFile(
                container=container,
                artifact=declared,
                path=path,
                kind=entry.kind,
                size=entry.size,
                sha256=entry.sha256,
                stored=stored,
                link=entry.link,
            )
        )
    return files


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
        if not result.success:
            raise CheckpointError(
                f"could not re-read the copied artifacts ({result.describe()})",
                reason=VERIFY_FAILED,
            )
        lines = result.stdout.decode(errors="replace").splitlines()
        if len(lines) != len(batch):
            raise CheckpointError(
                f"re-reading the copied artifacts gave {len(lines)} results for {len(batch)} files",
                reason=VERIFY_FAILED,
            )
        for file, line in zip(expected, lines, strict=True):
            size_text, _, digest = line.strip().partition(" ")
            if size_text != str(file.size) or digest != file.sha256:
                raise CheckpointError(
                    f"artifact {file.path} of container {file.container} differs on the volume after copying:"
                    f" streamed {file.size} bytes sha256 {file.sha256}, found {size_text} bytes sha256 {digest}",
                    reason=VERIFY_FAILED,
                    details={"path": file.path, "container": file.container},
                )
