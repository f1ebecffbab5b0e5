"""Follow a tar stream chunk by chunk and hash every regular file in it, in memory bounded whatever the stream: the
checkpoint copy pipes ``tar -c`` in the source container into ``tar -x`` on the shared volume and learns, on the way,
the size and sha256 of each file it carried.

Nothing is kept per member: each one is handed to ``on_entry`` as it completes, and the follower holds only the
header being read plus one GNU long name or pax header, both capped (``TarLimits``). Exceeding a cap raises
``TarStreamLimitExceeded``; anything else the stream gets wrong (a bad checksum, a malformed number or pax record)
raises ``TarStreamError``, never a bare ValueError.

Understands ustar (with its name prefix), GNU long names (``L``/``K``), pax extended headers (``x``: path, linkpath,
size) and GNU base-256 sizes. Global pax headers (``g``) are skipped; sparse files are refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

BLOCK = 512
RECORD = 20 * BLOCK  # the record size tar uses when writing to a pipe


@dataclass(frozen=True, slots=True)
class TarLimits:
    """What one stream may hold. The defaults fit any checkpoint worth restoring and keep a hostile stream's cost at a
    few hundred KiB of parser state."""

    max_entries: int = 100_000  # members of any kind (files, directories, links)
    max_name_bytes: int = 4096  # a member's name or link target, UTF-8 bytes (Linux PATH_MAX)
    max_pax_bytes: int = 64 * 1024  # one pax extended header (path, linkpath, times, xattrs...)


class TarStreamError(ValueError):
    """The stream is not a tar archive this follower can read."""


class TarStreamLimitExceeded(TarStreamError):
    """The stream is a tar archive, but larger than ``TarLimits`` allows; ``limit`` names the cap."""

    def __init__(self, message: str, *, limit: str, allowed: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.allowed = allowed


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
_META_TYPES = (b"L", b"K", b"x", b"g")


def _string(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    if field and field[0] == 0xFF:
        raise TarStreamError("negative number in a tar header")
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
    """The ``<length> <key>=<value>\\n`` records of a pax header (POSIX.1-2001), strictly."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        if not data[position:].strip(b"\0"):
            break  # NUL padding after the last record
        space = data.find(b" ", position, position + 20)
        digits = data[position:space] if space > position else b""
        if not digits.isdigit():
            raise TarStreamError(f"bad pax header: record length {data[position : position + 20]!r} is not a number")
        end = position + int(digits)
        if end <= space + 1 or end > len(data) or data[end - 1 : end] != b"\n":
            raise TarStreamError(f"bad pax header: record length {int(digits)} does not match its record")
        key, equals, value = data[space + 1 : end - 1].partition(b"=")
        if not equals or not key:
            raise TarStreamError("bad pax header: a record without key=value")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position = end
    if any(key.startswith("GNU.sparse.") for key in records):
        raise TarStreamError("sparse files are not supported in checkpoints")
    size = records.get("size")
    if size is not None and not (size.isascii() and size.isdigit()):
        raise TarStreamError(f"bad pax header: size {size[:40]!r} is not a number")
    return records


def _ignore(entry: TarEntry) -> None:
    return None


class TarStreamHasher:
    """Feed the stream with ``feed``; ``on_entry`` gets every member as it completes (a file once its data went by),
    in archive order; ``finished`` once the end-of-archive marker went by. ``bytes_seen`` counts everything fed,
    ``entry_count``/``file_count``/``file_bytes`` what the members so far add up to. After an error every further
    ``feed`` raises it again."""

    def __init__(self, on_entry: Callable[[TarEntry], None] = _ignore, limits: TarLimits | None = None) -> None:
        self.on_entry = on_entry
        self.limits = limits or TarLimits()
        self.bytes_seen = 0
        self.entry_count = 0
        self.file_count = 0
        self.file_bytes = 0
        self._state = _State.HEADER
        self._header = bytearray()
        self._remaining = 0
        self._padding = 0
        self._hasher: Any = None  # hashlib object of the file being read; None while skipping other data
        self._current: TarEntry | None = None
        self._meta = bytearray()
        self._meta_type = b""
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._pax: dict[str, str] = {}
        self._zero_blocks = 0
        self._failed: TarStreamError | None = None

    @property
    def finished(self) -> bool:
        return self._state is _State.END

    def feed(self, chunk: bytes | memoryview) -> None:
        if self._failed is not None:
            raise self._failed
        try:
            self._feed(memoryview(chunk))
        except TarStreamError as error:
            self._failed = error
            raise
        except ValueError as error:  # int(), decode(): whatever a malformed header still makes the parsing raise
            self._failed = TarStreamError(f"malformed tar stream: {error}")
            raise self._failed from error

    def _feed(self, view: memoryview) -> None:
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
                if self._state is _State.META:
                    self._meta += take
                elif self._hasher is not None:
                    self._hasher.update(take)
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
        if type_flag in _META_TYPES:
            self._start_meta(type_flag, size)
            return
        if type_flag == b"S":
            raise TarStreamError("sparse files are not supported in checkpoints")
        if self.entry_count >= self.limits.max_entries:
            raise TarStreamLimitExceeded(
                f"the stream holds more than {self.limits.max_entries} entries",
                limit="entries",
                allowed=self.limits.max_entries,
            )
        self.entry_count += 1
        name, link = self._names(block)
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
        self.on_entry(TarEntry(name, kind, 0, None, link if kind in ("symlink", "hardlink") else None))
        # Other members carry no data we hash (hard links and symlinks have size 0; devices have none): skipped.
        if size and kind not in ("hardlink", "symlink"):
            self._current, self._hasher = None, None
            self._start_data(_State.DATA, size)

    def _start_meta(self, type_flag: bytes, size: int) -> None:
        if type_flag in (b"L", b"K"):
            allowed, limit, what = self.limits.max_name_bytes + 1, "name", "long name or link target"  # with its NUL
        else:
            allowed, limit, what = self.limits.max_pax_bytes, "pax", "pax header"
        if size > allowed:
            raise TarStreamLimitExceeded(
                f"a tar {what} of {size} bytes (at most {allowed})", limit=limit, allowed=allowed
            )
        self._meta_type, self._meta = type_flag, bytearray()
        self._start_data(_State.META, size)

    def _names(self, block: bytes) -> tuple[str, str | None]:
        """The member's name (pax, then GNU long name, then ustar prefix + name) and link target, within the cap."""
        name = _string(block[0:100])
        if block[257:262] == b"ustar":
            prefix = _string(block[345:500]) if block[257:263] == b"ustar\0" else ""
            if prefix:
                name = f"{prefix}/{name}"
        name = (self._pax.get("path") or self._long_name or name).rstrip("/") or "/"
        link = self._pax.get("linkpath") or self._long_link or _string(block[157:257]) or None
        for value in (name, link):
            if value is not None and len(value.encode("utf-8", "surrogateescape")) > self.limits.max_name_bytes:
                raise TarStreamLimitExceeded(
                    f"a member name or link target longer than {self.limits.max_name_bytes} bytes",
                    limit="name",
                    allowed=self.limits.max_name_bytes,
                )
        return name, link

    def _start_data(self, state: _State, size: int) -> None:
        self._remaining = size
        self._padding = (-size) % BLOCK
        self._state = state
        if size == 0:
            self._end_member()

    def _end_member(self) -> None:
        if self._state is _State.META:
            text = bytes(self._meta)
            self._meta = bytearray()
            if self._meta_type == b"L":
                self._long_name = _string(text)
            elif self._meta_type == b"K":
                self._long_link = _string(text)
            elif self._meta_type == b"x":
                self._pax = _pax_records(text)
        elif self._current is not None:
            current, self._current = self._current, None
            self.file_count += 1
            self.file_bytes += current.size
            self.on_entry(TarEntry(current.name, current.kind, current.size, self._hasher.hexdigest()))
        self._state = _State.PADDING if self._padding else _State.HEADER
