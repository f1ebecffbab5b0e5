"""The streaming tar follower: every regular file's size and sha256, whatever the chunking and tar format; bounded
memory and one clear error type whatever the stream."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from ai_storage_orchestrator.checkpoint.tarstream import (
    RECORD,
    TarEntry,
    TarLimits,
    TarStreamError,
    TarStreamHasher,
    TarStreamLimitExceeded,
    _number,
)
from tests.unit.checkpoint.tarblocks import END, header, member, pax_member, pax_record, small_files

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


class Collected:
    """A hasher and every entry it handed over."""

    def __init__(self, limits: TarLimits | None = None) -> None:
        self.entries: list[TarEntry] = []
        self.hasher = TarStreamHasher(self.entries.append, limits)

    @property
    def files(self) -> list[TarEntry]:
        return [e for e in self.entries if e.kind == "file"]


def feed_in_chunks(data: bytes, sizes: list[int]) -> Collected:
    collected = Collected()
    position, index = 0, 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        collected.hasher.feed(data[position : position + size])
        position += size
        index += 1
    return collected


FILES = {
    "./top/empty": b"",
    "./top/one-block": b"x" * 512,
    "./top/odd": os.urandom(1234),
    "./top/" + LONG: os.urandom(70_000),
    "./top/" + PREFIXED: os.urandom(600),
    "./top/ünïcode": "grüße".encode(),
}


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("sizes", [[1], [7, 511], [512], [513, 4096], [RECORD], [1 << 20]])
def test_hashes_every_file_whatever_the_chunks(fmt: int, sizes: list[int]) -> None:
    files = dict(FILES)
    if fmt == tarfile.USTAR_FORMAT:  # ustar holds neither non-ASCII names nor a 100+ character last component
        files = {k: v for k, v in files.items() if k.isascii() and LONG not in k}
    data = archive(fmt, files, link=("./top/latest", "odd"))
    collected = feed_in_chunks(data, sizes)
    assert collected.hasher.finished
    assert collected.hasher.bytes_seen == len(data)
    assert {e.name: (e.size, e.sha256) for e in collected.files} == {
        name: (len(content), hashlib.sha256(content).hexdigest()) for name, content in files.items()
    }
    kinds = {e.name: e.kind for e in collected.entries}
    assert kinds["./top"] == "directory"
    assert kinds["./top/latest"] == "symlink"
    assert next(e.link for e in collected.entries if e.name == "./top/latest") == "odd"
    assert (collected.hasher.entry_count, collected.hasher.file_count) == (len(collected.entries), len(files))
    assert collected.hasher.file_bytes == sum(len(content) for content in files.values())


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs a tar binary")
def test_follows_what_the_tar_binary_writes(tmp_path: Path) -> None:
    source = tmp_path / "scratch"
    (source / ("deep/" * 30)).mkdir(parents=True)
    payload = {
        "a.bin": os.urandom(200_000),
        ("deep/" * 30) + ("long-name-" * 12): b"hidden deep",
    }
    for name, content in payload.items():
        (source / name).write_bytes(content)
    (source / "hard").hardlink_to(source / "a.bin")
    data = subprocess.run(["tar", "-c", "-f", "-", "-C", str(tmp_path), "./scratch"], check=True, capture_output=True)
    collected = feed_in_chunks(data.stdout, [random.Random(1).randint(1, 9000) for _ in range(50)])
    assert collected.hasher.finished
    found = {e.name: e.sha256 for e in collected.files}
    for name, content in payload.items():
        assert found[f"./scratch/{name}"] == hashlib.sha256(content).hexdigest()
    assert any(e.kind == "hardlink" for e in collected.entries)


def test_truncated_stream_is_not_finished() -> None:
    data = archive(tarfile.GNU_FORMAT, {"./f": os.urandom(5000)})
    collected = Collected()
    collected.hasher.feed(data[:3000])
    assert not collected.hasher.finished
    assert collected.files == []


def test_padding_after_the_end_is_ignored() -> None:
    data = archive(tarfile.GNU_FORMAT, {"./f": b"abc"}) + bytes(3 * RECORD)
    collected = feed_in_chunks(data, [1000])
    assert collected.hasher.finished
    assert [e.name for e in collected.files] == ["./f"]


def test_garbage_is_refused() -> None:
    with pytest.raises(TarStreamError, match="checksum"):
        TarStreamHasher().feed(b"not a tar archive".ljust(512, b"!"))


def test_sparse_files_are_refused() -> None:
    header = bytearray(archive(tarfile.GNU_FORMAT, {"./f": b""})[:512])
    header[156:157] = b"S"
    header[148:156] = b" " * 8
    header[148:155] = f"{sum(header):06o}\0".encode()
    with pytest.raises(TarStreamError, match="sparse"):
        TarStreamHasher().feed(bytes(header))


def test_numbers() -> None:
    assert _number(b"0000644\0") == 0o644
    assert _number(b"\0" * 8) == 0
    assert _number(bytes([0x80]) + (12 * 1024**3).to_bytes(11, "big")) == 12 * 1024**3  # GNU base-256
    with pytest.raises(TarStreamError):
        _number(b"zz\0")


@pytest.mark.parametrize(
    ("records", "says"),
    [
        (b"abc path=./x\n", "not a number"),  # int() of a non-number: a bare ValueError before
        (b"99 path=./x\n", "does not match"),  # longer than the header
        (b"5 path=./x\n", "does not match"),  # shorter than its own prefix
        (b"12 pathx./y\n", "key=value"),
        (b"10 size=z\n", "size"),  # int() of the pax size: a bare ValueError before
        (pax_record("GNU.sparse.major", "1"), "sparse"),
    ],
)
def test_malformed_pax_headers_raise_tar_stream_errors(records: bytes, says: str) -> None:
    hasher = TarStreamHasher()
    with pytest.raises(TarStreamError, match=says):
        hasher.feed(pax_member(records, data=b"abc") + END)
    with pytest.raises(TarStreamError, match=says):
        hasher.feed(END)  # the follower stays failed: the caller cannot mistake the rest for a fine stream


def test_well_formed_pax_records_are_read() -> None:
    collected = Collected()
    collected.hasher.feed(pax_member(pax_record("path", "./renamed") + pax_record("size", "000")) + END)
    assert [(e.name, e.size) for e in collected.files] == [("./renamed", 0)]


def test_negative_base_256_size_is_refused() -> None:
    block = bytearray(header("./f"))
    block[124:136] = bytes([0xFF]) * 12
    block[148:156] = b" " * 8
    block[148:155] = f"{sum(block):06o}\0".encode()
    with pytest.raises(TarStreamError, match="negative"):
        TarStreamHasher().feed(bytes(block))


def test_names_longer_than_the_default_cap_are_refused() -> None:
    long_name = "./" + "n" * TarLimits().max_name_bytes  # fine for tar (GNU L block), too long for a checkpoint
    for stream in (member(long_name), pax_member(pax_record("path", long_name))):
        with pytest.raises(TarStreamLimitExceeded) as refused:
            TarStreamHasher().feed(stream + END)
        assert refused.value.limit == "name"
        assert refused.value.allowed in (4096, 4097)


def test_link_targets_longer_than_the_cap_are_refused() -> None:
    link = tarfile.TarInfo("./l")
    link.type, link.linkname = tarfile.SYMTYPE, "t" * 200
    with pytest.raises(TarStreamLimitExceeded, match="link target"):
        TarStreamHasher(limits=TarLimits(max_name_bytes=100)).feed(link.tobuf(format=tarfile.GNU_FORMAT) + END)


def test_pax_headers_larger_than_the_cap_are_refused() -> None:
    records = pax_record("comment", "c" * 3000)
    with pytest.raises(TarStreamLimitExceeded) as refused:
        TarStreamHasher(limits=TarLimits(max_pax_bytes=2048)).feed(pax_member(records) + END)
    assert refused.value.limit == "pax"


def test_more_entries_than_the_cap_are_refused() -> None:
    collected = Collected(TarLimits(max_entries=10))
    with pytest.raises(TarStreamLimitExceeded) as refused:
        collected.hasher.feed(b"".join(small_files(20)))
    assert (refused.value.limit, refused.value.allowed) == ("entries", 10)
    assert len(collected.entries) == 10


def test_memory_does_not_grow_with_the_number_of_members() -> None:
    """2,000 members with 2,000-byte names (4 MB of names, 4 times the bound): the follower hands each over and keeps
    none (tracemalloc makes every allocation slow: the count is kept small, the bound well below the total)."""
    hasher = TarStreamHasher()
    tracemalloc.start()
    try:
        for chunk in small_files(2_000, name_length=2_000):
            hasher.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert hasher.finished
    assert peak < 1_000_000, f"peak {peak} bytes while following the stream"
