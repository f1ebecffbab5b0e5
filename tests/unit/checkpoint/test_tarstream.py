"""The tar follower (``tarfile`` in stream mode behind ``tarstream.TarStreamFollower``): every regular file's size and
sha256, whatever the chunking and tar format; the limits; one clear error type whatever the stream; its thread
joined however the stream ends."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import shutil
import tarfile
import threading
import tracemalloc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ai_storage_orchestrator.checkpoint.tarmembers import MAX_EXTENSIONS, TarSummary, follow
from ai_storage_orchestrator.checkpoint.tarstream import (
    RECORD,
    TarEntry,
    TarLimits,
    TarStreamError,
    TarStreamFollower,
    TarStreamLimitExceeded,
)
from tests.unit.checkpoint.tarblocks import END, header, member, padded, pax_member, pax_record, small_files

LONG = "d" * 60 + "/" + "very-long-file-name-" * 6 + ".bin"  # a last component > 100 characters: GNU L / pax
PREFIXED = "p" * 50 + "/" + "q" * 60  # > 100 characters in short components: ustar's name prefix


def archive(fmt: int, files: dict[str, bytes], *, link: tuple[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        directory = tarfile.TarInfo("./top")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type = tarfile.SYMTYPE
            info.linkname = link[1]
            tar.addfile(info)
    return buffer.getvalue()


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    position, index = 0, 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        yield data[position : position + size]
        position += size
        index += 1


@dataclass
class Followed:
    """What a follower handed over and added up to."""

    entries: list[TarEntry] = field(default_factory=list)
    summary: TarSummary | None = None
    bytes_seen: int = 0

    @property
    def files(self) -> list[TarEntry]:
        return [e for e in self.entries if e.kind == "file"]

    @property
    def finished(self) -> bool:
        return self.summary is not None and self.summary.finished


async def followed(chunks: Iterable[bytes], limits: TarLimits | None = None, into: Followed | None = None) -> Followed:
    """``chunks`` fed to a follower, as the copy feeds it; raises what the follower raises."""
    result = into or Followed()
    async with TarStreamFollower(result.entries.append, limits) as follower:
        for chunk in chunks:
            await follower.feed(chunk)
        result.summary = await follower.finish()
        result.bytes_seen = follower.bytes_seen
    return result


def follower_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "checkpoint-tar-follower"]


def with_checksum(block: bytearray) -> bytes:
    block[148:156] = b" " * 8
    block[148:155] = f"{sum(block):06o}\0".encode()
    return bytes(block)


FILES = {
    "./top/empty": b"",
    "./top/one-block": b"x" * 512,
    "./top/odd": os.urandom(1234),
    "./top/" + LONG: os.urandom(25_000),  # across records (RECORD bytes each), fed even one byte at a time
    "./top/" + PREFIXED: os.urandom(600),
    "./top/ünïcode": "grüße".encode(),
}


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("sizes", [[1], [7, 511], [512], [513, 4096], [RECORD], [1 << 20]])
async def test_hashes_every_file_whatever_the_chunks(fmt: int, sizes: list[int]) -> None:
    files = dict(FILES)
    if fmt == tarfile.USTAR_FORMAT:  # ustar holds neither non-ASCII names nor a 100+ character last component
        files = {k: v for k, v in files.items() if k.isascii() and LONG not in k}
    data = archive(fmt, files, link=("./top/latest", "odd"))
    result = await followed(pieces(data, sizes))
    assert result.finished
    assert result.bytes_seen == len(data)
    assert {e.name: (e.size, e.sha256) for e in result.files} == {
        name: (len(content), hashlib.sha256(content).hexdigest()) for name, content in files.items()
    }
    kinds = {e.name: e.kind for e in result.entries}
    assert kinds["./top"] == "directory"
    assert kinds["./top/latest"] == "symlink"
    assert next(e.link for e in result.entries if e.name == "./top/latest") == "odd"
    assert result.summary is not None
    assert (result.summary.entry_count, result.summary.file_count) == (len(result.entries), len(files))
    assert result.summary.file_bytes == sum(len(content) for content in files.values())
    assert follower_threads() == []


@pytest.mark.tools
@pytest.mark.skipif(shutil.which("tar") is None, reason="needs a tar binary")
async def test_follows_what_the_tar_binary_writes(tmp_path: Path) -> None:
    source = tmp_path / "scratch"
    (source / ("deep/" * 30)).mkdir(parents=True)
    payload = {
        "a.bin": os.urandom(200_000),
        ("deep/" * 30) + ("long-name-" * 12): b"hidden deep",
    }
    for name, content in payload.items():
        (source / name).write_bytes(content)
    (source / "hard").hardlink_to(source / "a.bin")
    tar = await asyncio.create_subprocess_exec(
        "tar", "-c", "-f", "-", "-C", str(tmp_path), "./scratch", stdout=asyncio.subprocess.PIPE
    )
    data, _ = await tar.communicate()
    assert tar.returncode == 0
    result = await followed(pieces(data, [random.Random(1).randint(1, 9000) for _ in range(50)]))
    assert result.finished
    found = {e.name: e.sha256 for e in result.files}
    for name, content in payload.items():
        assert found[f"./scratch/{name}"] == hashlib.sha256(content).hexdigest()
    assert any(e.kind == "hardlink" for e in result.entries)


async def test_truncated_stream_is_not_finished() -> None:
    data = archive(tarfile.GNU_FORMAT, {"./f": os.urandom(5000)})
    end = 512 + 512 + 5120  # the directory's header, the file's header and data: the end-of-archive marker's offset
    for cut in (0, 300, 3000, end, end + 512):  # nothing, in a header, in data, before the end marker, in it
        result = await followed([data[:cut]])
        assert not result.finished, cut
        assert [e.name for e in result.files] == (["./f"] if cut >= end else []), cut


async def test_padding_after_the_end_is_ignored() -> None:
    data = archive(tarfile.GNU_FORMAT, {"./f": b"abc"}) + bytes(3 * RECORD)
    result = await followed(pieces(data, [1000]))
    assert result.finished
    assert result.bytes_seen == len(data)
    assert [e.name for e in result.files] == ["./f"]


async def test_garbage_is_refused() -> None:
    with pytest.raises(TarStreamError, match="not a tar archive"):
        await followed([b"not a tar archive".ljust(512, b"!")])


async def test_a_bad_checksum_is_refused_anywhere_in_the_stream() -> None:
    second = bytearray(member("./g", b"data"))
    second[2:3] = b"h"  # the name changed, the checksum not
    for stream in (bytes(second), member("./f", b"x") + bytes(second)):  # tarfile ends quietly here past the first
        with pytest.raises(TarStreamError, match="checksum mismatch"):
            await followed([stream + END])


async def test_a_lone_zero_block_in_the_middle_is_refused() -> None:
    with pytest.raises(TarStreamError, match="lone zero block"):
        await followed([member("./a", b"x") + bytes(512) + member("./b", b"y") + END])


async def test_sparse_files_are_refused() -> None:
    block = bytearray(archive(tarfile.GNU_FORMAT, {"./f": b""})[:512])
    block[156:157] = b"S"
    with pytest.raises(TarStreamError, match="sparse"):
        await followed([with_checksum(block)])


async def test_numbers() -> None:
    """Octal and GNU base-256 sizes are read; a number that is not one is refused."""
    base256 = bytearray(header("./f", size=3))
    base256[124:136] = bytes([0x80]) + (3).to_bytes(11, "big")
    result = await followed([with_checksum(base256) + padded(b"abc") + END])
    assert [(e.name, e.size, e.sha256) for e in result.files] == [("./f", 3, hashlib.sha256(b"abc").hexdigest())]
    huge = bytearray(header("./f"))
    huge[124:136] = bytes([0x80]) + (12 * 1024**3).to_bytes(11, "big")  # 12 GiB, announced but not sent
    assert not (await followed([with_checksum(huge) + bytes(RECORD)])).finished
    bad = bytearray(header("./f"))
    bad[124:136] = b"zz\0".ljust(12, b"\0")
    with pytest.raises(TarStreamError, match="malformed number"):
        await followed([with_checksum(bad) + END])


@pytest.mark.parametrize(
    ("records", "says"),
    [
        (b"abc path=./x\n", "not a number"),  # tarfile of Python 3.11.7 skips it silently
        (b"99 path=./x\n", "does not match"),  # longer than the header
        (b"5 path=./x\n", "does not match"),  # shorter than its own prefix
        (b"12 pathx./y\n", "key=value"),
        (b"10 size=z\n", "size"),  # tarfile makes it 0
        (pax_record("GNU.sparse.major", "1"), "sparse"),
    ],
)
async def test_malformed_pax_headers_raise_tar_stream_errors(records: bytes, says: str) -> None:
    async with TarStreamFollower() as follower:
        await follower.feed(pax_member(records, data=b"abc") + END)  # taken: the follower has not read it yet
        with pytest.raises(TarStreamError, match=says):
            await follower.finish()
        with pytest.raises(TarStreamError, match=says):
            await follower.feed(END)  # the follower stays failed: the caller cannot mistake the rest for a fine stream
        with pytest.raises(TarStreamError, match=says):
            await follower.finish()
    assert follower_threads() == []


async def test_well_formed_pax_records_are_read() -> None:
    result = await followed([pax_member(pax_record("path", "./renamed") + pax_record("size", "000")) + END])
    assert [(e.name, e.size) for e in result.files] == [("./renamed", 0)]
    result = await followed([pax_member(pax_record("size", "3"), data=b"abc") + member("./next", b"z") + END])
    assert [(e.name, e.size) for e in result.files] == [("./f", 3), ("./next", 1)]


async def test_global_pax_headers_are_skipped() -> None:
    records = pax_record("path", "./global") + pax_record("comment", "git archive writes one")
    glob = header("./PaxHeaders/g", size=len(records), kind=tarfile.XGLTYPE, fmt=tarfile.USTAR_FORMAT)
    result = await followed([glob + padded(records) + member("./f", b"x") + END])
    assert [e.name for e in result.entries] == ["./f"]


async def test_negative_base_256_size_is_refused() -> None:
    block = bytearray(header("./f"))
    block[124:136] = bytes([0xFF]) * 12
    with pytest.raises(TarStreamError, match="negative"):
        await followed([with_checksum(block)])


async def test_names_longer_than_the_default_cap_are_refused() -> None:
    long_name = "./" + "n" * TarLimits().max_name_bytes  # fine for tar (GNU L block), too long for a checkpoint
    for stream in (member(long_name), pax_member(pax_record("path", long_name))):
        with pytest.raises(TarStreamLimitExceeded) as refused:
            await followed([stream + END])
        assert refused.value.limit == "name"
        assert refused.value.allowed in (4096, 4097)


async def test_link_targets_longer_than_the_cap_are_refused() -> None:
    link = tarfile.TarInfo("./l")
    link.type, link.linkname = tarfile.SYMTYPE, "t" * 200
    with pytest.raises(TarStreamLimitExceeded, match="link target"):
        await followed([link.tobuf(format=tarfile.GNU_FORMAT) + END], TarLimits(max_name_bytes=100))


async def test_pax_headers_larger_than_the_cap_are_refused() -> None:
    records = pax_record("comment", "c" * 3000)
    with pytest.raises(TarStreamLimitExceeded) as refused:
        await followed([pax_member(records) + END], TarLimits(max_pax_bytes=2048))
    assert (refused.value.limit, refused.value.allowed) == ("pax", 2048)


async def test_more_entries_than_the_cap_are_refused() -> None:
    result = Followed()
    with pytest.raises(TarStreamLimitExceeded) as refused:
        await followed(small_files(20), TarLimits(max_entries=10), into=result)
    assert (refused.value.limit, refused.value.allowed) == ("entries", 10)
    assert len(result.entries) == 10


async def test_a_chain_of_extension_headers_is_refused() -> None:
    """``tarfile`` recurses once per extension header: a long chain is refused before Python's recursion limit."""
    chain = b"".join(header("././L", size=10, kind=tarfile.GNUTYPE_LONGNAME) + padded(b"./name\0") for _ in range(50))
    with pytest.raises(TarStreamError, match=f"more than {MAX_EXTENSIONS} extension headers"):
        await followed([chain + member("./f") + END])


async def test_the_error_reaches_the_feeder_before_the_stream_ends() -> None:
    """A refused stream stops the copy at once rather than after the whole artifact went by."""

    async def feed_garbage(follower: TarStreamFollower) -> None:
        for _ in range(100_000):  # 50 MB: far more than the pipe holds
            await follower.feed(b"!" * 512)

    async with TarStreamFollower(capacity=4096) as follower:
        with pytest.raises(TarStreamError, match="not a tar archive"):
            await feed_garbage(follower)
        assert follower.bytes_seen < 10_000_000


async def test_the_thread_is_joined_when_the_block_exits_early() -> None:
    data = archive(tarfile.GNU_FORMAT, {"./f": os.urandom(100_000)})

    async def copy_failing_midway() -> None:
        async with TarStreamFollower() as follower:
            await follower.feed(data[:50_000])
            raise RuntimeError("copy failed")

    with pytest.raises(RuntimeError, match="copy failed"):
        await copy_failing_midway()
    assert follower_threads() == []


async def test_an_on_entry_failure_is_raised_as_it_is() -> None:
    def refuse(entry: TarEntry) -> None:
        raise OSError("spool full")

    async with TarStreamFollower(refuse) as follower:
        await follower.feed(member("./f", b"x") + END)
        with pytest.raises(OSError, match="spool full"):
            await follower.finish()


def test_follow_keeps_nothing_per_member() -> None:
    """2,000 members with 2,000-byte names (4 MB of names, 4 times the bound), read by ``follow`` straight from a
    generator: each is handed over and none kept, ``tarfile``'s own member list included (tracemalloc makes every
    allocation slow: the count is kept small, the bound well below the total)."""

    class Chunks(io.RawIOBase):
        def __init__(self, chunks: Iterator[bytes]) -> None:
            self.chunks, self.pending = chunks, b""

        def read(self, size: int = -1, /) -> bytes:
            if not self.pending:
                self.pending = next(self.chunks, b"")
            taken, self.pending = self.pending[:size], self.pending[size:]
            return taken

    tracemalloc.start()
    try:
        summary = follow(Chunks(small_files(2_000, name_length=2_000)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.finished
    assert summary.entry_count == 2_001
    assert peak < 1_000_000, f"peak {peak} bytes while following the stream"
