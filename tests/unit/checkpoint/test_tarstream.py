"""The streaming tar follower: every regular file's size and sha256, whatever the chunking and tar format."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from ai_storage_orchestrator.checkpoint.tarstream import RECORD, TarStreamError, TarStreamHasher, _number

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


def feed_in_chunks(data: bytes, sizes: list[int]) -> TarStreamHasher:
    hasher = TarStreamHasher()
    position, index = 0, 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        hasher.feed(data[position : position + size])
        position += size
        index += 1
    return hasher


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
    hasher = feed_in_chunks(data, sizes)
    assert hasher.finished
    assert hasher.bytes_seen == len(data)
    assert {e.name: (e.size, e.sha256) for e in hasher.files} == {
        name: (len(content), hashlib.sha256(content).hexdigest()) for name, content in files.items()
    }
    kinds = {e.name: e.kind for e in hasher.entries}
    assert kinds["./top"] == "directory"
    assert kinds["./top/latest"] == "symlink"
    assert next(e.link for e in hasher.entries if e.name == "./top/latest") == "odd"


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
    hasher = feed_in_chunks(data.stdout, [random.Random(1).randint(1, 9000) for _ in range(50)])
    assert hasher.finished
    found = {e.name: e.sha256 for e in hasher.files}
    for name, content in payload.items():
        assert found[f"./scratch/{name}"] == hashlib.sha256(content).hexdigest()
    assert any(e.kind == "hardlink" for e in hasher.entries)


def test_truncated_stream_is_not_finished() -> None:
    data = archive(tarfile.GNU_FORMAT, {"./f": os.urandom(5000)})
    hasher = TarStreamHasher()
    hasher.feed(data[:3000])
    assert not hasher.finished
    assert hasher.files == []


def test_padding_after_the_end_is_ignored() -> None:
    data = archive(tarfile.GNU_FORMAT, {"./f": b"abc"}) + bytes(3 * RECORD)
    hasher = feed_in_chunks(data, [1000])
    assert hasher.finished
    assert [e.name for e in hasher.files] == ["./f"]


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
