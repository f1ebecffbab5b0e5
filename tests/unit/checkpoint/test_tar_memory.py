"""The tar follower's memory bound, measured: a 256 MiB file streamed through ``TarStreamFollower`` in 32 KiB frames
(as kube-apiserver delivers exec output), each frame a new object, while tracemalloc records the peak of everything
allocated -- the feeding loop, the pipe, the worker thread and ``tarfile``. Nothing is held per member or per file:
the peak is the pipe's capacity and a few buffers, whatever the file's size."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Iterator

from ai_storage_orchestrator.checkpoint.tarstream import PIPE_CAPACITY, TarEntry, TarStreamFollower
from tests.unit.checkpoint.tarblocks import END, header

SIZE = 256 * 1024 * 1024
FRAME = 32 * 1024
PATTERN = memoryview(bytes(range(256)) * (FRAME // 256))


def frames(size: int) -> Iterator[bytes]:
    """A tar stream of one ``size``-byte file, generated frame by frame: nothing of it is kept here."""
    yield header("./big.bin", size=size)
    left = size
    while left:
        take = min(left, FRAME)
        yield PATTERN[:take].tobytes()  # a new object each time, like a websocket frame
        left -= take
    yield bytes((-size) % 512) + END


def expected_sha256(size: int) -> str:
    digest = hashlib.sha256()
    left = size
    while left:
        take = min(left, FRAME)
        digest.update(PATTERN[:take])
        left -= take
    return digest.hexdigest()


async def test_a_256_mib_file_streams_through_in_bounded_memory() -> None:
    entries: list[TarEntry] = []
    tracemalloc.start()
    try:
        async with TarStreamFollower(entries.append) as follower:
            for frame in frames(SIZE):
                await follower.feed(frame)
            summary = await follower.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.finished
    assert [(e.name, e.size, e.sha256) for e in entries] == [("./big.bin", SIZE, expected_sha256(SIZE))]
    # The pipe's capacity (1 MiB), the frame that crossed it, tarfile's read buffers: about 1.3 MiB measured.
    assert peak < PIPE_CAPACITY + 2 * 1024 * 1024, f"peak {peak:,} bytes for a {SIZE:,}-byte file"
