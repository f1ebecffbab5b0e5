"""Tar streams generated block by block, never held whole: for the tar follower's tests and bench/checkpoint_stream.py
(a million members, or a 10 GiB file, cost the generator one header and one data chunk at a time)."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import Literal

BLOCK = 512
END = bytes(2 * BLOCK)  # the end-of-archive marker
Format = Literal[0, 1, 2]  # tarfile.USTAR_FORMAT, GNU_FORMAT, PAX_FORMAT


def header(name: str, *, size: int = 0, kind: bytes = tarfile.REGTYPE, fmt: Format = tarfile.GNU_FORMAT) -> bytes:
    """The header block(s) of one member (GNU format: names over 100 bytes get an ``L`` block first)."""
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, kind, 0o644, 0
    return info.tobuf(format=fmt, encoding="utf-8", errors="surrogateescape")


def padded(data: bytes) -> bytes:
    return data + bytes((-len(data)) % BLOCK)


def member(name: str, data: bytes = b"") -> bytes:
    return header(name, size=len(data)) + padded(data)


def pax_record(key: str, value: str) -> bytes:
    """One ``<length> <key>=<value>\\n`` record, its length counting itself."""
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax_member(records: bytes, name: str = "./f", data: bytes = b"") -> bytes:
    """A pax extended header holding ``records`` verbatim (well-formed or not), then the member it describes."""
    pax = header("./PaxHeaders/f", size=len(records), kind=tarfile.XHDTYPE, fmt=tarfile.USTAR_FORMAT)
    return pax + padded(records) + member(name, data)


def small_files(count: int, *, size: int = 64, name_length: int = 24) -> Iterator[bytes]:
    """``./data/`` and ``count`` files of ``size`` bytes, names padded to about ``name_length`` characters. One header
    is built, then only its index digits and checksum are rewritten per file (a million files in seconds)."""
    payload = padded(b"x" * size)
    yield header("./data", kind=tarfile.DIRTYPE)
    first = f"./data/{0:07d}".ljust(max(name_length, 14), "n")
    template = bytearray(header(first, size=size))  # [GNU L header + name blocks] + the member's header
    digits = [i for i in range(0, len(template), BLOCK) if template[i : i + 14] == b"./data/0000000"]
    last = len(template) - BLOCK
    for index in range(count):
        number = f"{index:07d}".encode()
        for offset in digits:
            template[offset + 7 : offset + 14] = number
        template[last + 148 : last + 156] = b" " * 8
        template[last + 148 : last + 155] = b"%06o\0" % sum(template[last:])
        yield bytes(template) + payload
    yield END


def one_large_file(size: int, *, chunk: int = 1 << 20) -> Iterator[bytes]:
    """``./big.bin`` of ``size`` bytes, its data yielded ``chunk`` bytes at a time from one reused buffer."""
    yield header("./big.bin", size=size)
    data = memoryview(bytes(range(256)) * (chunk // 256))
    left = size
    while left:
        take = min(left, len(data))
        yield data[:take].tobytes() if take < len(data) else data.tobytes()
        left -= take
    yield bytes((-size) % BLOCK) + END
