"""Follow a tar stream chunk by chunk and hash every regular file in it, without holding more than one 512-byte
header (plus GNU long names / pax records) in memory: the checkpoint copy pipes ``tar -c`` in the source container
into ``tar -x`` on the shared volume and learns, on the way, the size and sha256 of each file it carried.

Understands ustar (with its name prefix), GNU long names (``L``/``K``), pax extended headers (``x``: path, linkpath,
size) and GNU base-256 sizes. Global pax headers (``g``) are skipped; sparse files are refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import Any

BLOCK = 512
RECORD = 20 * BLOCK  # the record size tar uses when writing to a pipe
_MAX_META = 1024 * 1024  # long names and pax headers larger than this are refused


class TarStreamError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TarEntry:
    name: str  # as in the archive without a trailing slash, e.g. "./opt/state.bin"
    kind: str  # file | directory | symlink | hardlink | other
    size: int = 0
    sha256: str | None = None  # files only
    link: str | None = None  # symlink / hardlink target

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "size": self.size}
        if self.sha256 is not None:
            data["sha256"] = self.sha256
        if self.link is not None:
            data["link"] = self.link
        return data


class _State(Enum):
    HEADER = "header"
    DATA = "data"
    META = "meta"  # data of a GNU long name or pax header, collected
    PADDING = "padding"
    END = "end"


_KINDS = {b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink", b"5": "directory"}


def _string(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        value = field[0] & 0x7F
        for byte in field[1:]:
            value = (value << 8) | byte
        return value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError as error:
        raise TarStreamError(f"bad number field {field!r}") from error


def _check_header(block: bytes) -> None:
    try:
        stored = _number(block[148:156])
    except TarStreamError:
        stored = -1
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored != computed:
        raise TarStreamError("tar header checksum mismatch: the stream is not a tar archive or is corrupt")


def _pax_records(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        if space < 0:
            break
        length = int(data[position:space])
        if length <= 0:
            raise TarStreamError("bad pax record length")
        key, _, value = data[space + 1 : position + length - 1].partition(b"=")
        records[key.decode()] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


class TarStreamHasher:
    """Feed the stream with ``feed``; ``entries`` fills up as members complete; ``finished`` once the end-of-archive
    marker went by. ``bytes_seen`` counts everything fed."""

    def __init__(self) -> None:
        self.entries: list[TarEntry] = []
        self.bytes_seen = 0
        self._state = _State.HEADER
        self._header = bytearray()
        self._remaining = 0
        self._padding = 0
        self._hasher: Any = None
        self._current: TarEntry | None = None
        self._meta = bytearray()
        self._meta_type = b""
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._pax: dict[str, str] = {}
        self._zero_blocks = 0

    @property
    def finished(self) -> bool:
        return self._state is _State.END

    @property
    def files(self) -> list[TarEntry]:
        return [e for e in self.entries if e.kind == "file"]

    def feed(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        self.bytes_seen += len(view)
        while view:
            if self._state is _State.END:
                return  # trailing zero padding of the last record
            if self._state is _State.HEADER:
                need = BLOCK - len(self._header)
                self._header += view[:need]
                view = view[need:]
                if len(self._header) == BLOCK:
                    block, self._header = bytes(self._header), bytearray()
                    self._on_header(block)
            elif self._state in (_State.DATA, _State.META):
                take = view[: self._remaining]
                view = view[len(take) :]
                self._remaining -= len(take)
                if self._state is _State.DATA:
                    self._hasher.update(take)
                else:
                    self._meta += take
                if self._remaining == 0:
                    self._end_member()
            else:  # PADDING
                skip = min(self._padding, len(view))
                view = view[skip:]
                self._padding -= skip
                if self._padding == 0:
                    self._state = _State.HEADER

    def _on_header(self, block: bytes) -> None:
        if block == bytes(BLOCK):
            self._zero_blocks += 1
            if self._zero_blocks == 2:
                self._state = _State.END
            return
        if self._zero_blocks:
            raise TarStreamError("a lone zero block in the middle of the archive")
        _check_header(block)
        size = _number(block[124:136])
        type_flag = block[156:157]
        if type_flag in (b"L", b"K", b"x", b"g"):
            if size > _MAX_META:
                raise TarStreamError(f"tar metadata block of {size} bytes is too large")
            self._meta_type, self._meta = type_flag, bytearray()
            self._start_data(_State.META, size)
            return
        if type_flag == b"S":
            raise TarStreamError("sparse files are not supported in checkpoints")
        name = _string(block[0:100])
        if block[257:262] == b"ustar":
            prefix = _string(block[345:500]) if block[257:263] == b"ustar\0" else ""
            if prefix:
                name = f"{prefix}/{name}"
        name = (self._pax.get("path") or self._long_name or name).rstrip("/") or "/"
        link = self._pax.get("linkpath") or self._long_link or _string(block[157:257]) or None
        if "size" in self._pax:
            size = int(self._pax["size"])
        self._long_name = self._long_link = None
        self._pax = {}
        kind = _KINDS.get(type_flag, "other")
        if kind == "file":
            self._current = TarEntry(name, kind, size)
            self._hasher = hashlib.sha256()
            self._start_data(_State.DATA, size)
            return
        self.entries.append(TarEntry(name, kind, 0, None, link if kind in ("symlink", "hardlink") else None))
        # Other members carry no data we hash (hard links and symlinks have size 0; devices have none).
        if size and kind not in ("hardlink", "symlink"):
            self._current = None
            self._hasher = hashlib.sha256()
            self._start_data(_State.DATA, size)

    def _start_data(self, state: _State, size: int) -> None:
        self._remaining = size
        self._padding = (-size) % BLOCK
        self._state = state
        if size == 0:
            self._end_member()

    def _end_member(self) -> None:
        if self._state is _State.META:
            text = bytes(self._meta)
            if self._meta_type == b"L":
                self._long_name = _string(text)
            elif self._meta_type == b"K":
                self._long_link = _string(text)
            elif self._meta_type == b"x":
                self._pax = _pax_records(text)
            self._meta = bytearray()
        elif self._current is not None:
            current = self._current
            self.entries.append(TarEntry(current.name, current.kind, current.size, self._hasher.hexdigest()))
            self._current = None
        self._state = _State.PADDING if self._padding else _State.HEADER
