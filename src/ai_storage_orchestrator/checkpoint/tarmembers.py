"""The members of a tar stream, read with the standard library's ``tarfile`` in stream mode (``r|``), within
``TarLimits``, each regular file hashed as its data goes by: what the checkpoint copy learns from the ``tar -c`` it
forwards.

``follow`` reads any blocking ``read(n)`` source (``tarstream`` adapts the exec stream to one) and keeps nothing per
member: each is handed to ``on_entry`` as it completes, and ``tarfile``'s list of the members it returned is emptied
after each one. Exceeding a cap raises ``TarStreamLimitExceeded``; anything else the stream gets wrong raises
``TarStreamError``; a stream that stops early is not an error but not ``finished`` either.

``tarfile`` parses the headers (checksums, ustar prefixes, GNU base-256 numbers, GNU long names) and frames the data.
The checks run in ``_Header``, the ``TarInfo`` subclass ``tarfile`` builds members with (its ``tarinfo=`` parameter;
``_proc_member`` is the hook tarfile.py's comments offer subclasses), before ``tarfile`` acts on what a header claims:

- a GNU long name or a pax header is capped before it is read (``tarfile`` would read any size into memory);
- pax headers (``x``) are read here, strictly: Python 3.11.7's reader skips malformed records silently, makes a bad
  ``size`` 0, searches the header with a regular expression that is quadratic in its length (CVE-2024-6232) and
  reads a GNU 1.0 sparse map of any length into a list. Only ``path``, ``linkpath`` and ``size`` are applied (the
  fields the checkpoint uses); global pax headers (``g``) are skipped, as before;
- sparse files (``S``, ``GNU.sparse.*``) are refused before their maps are read;
- at most ``MAX_EXTENSIONS`` extension headers may precede a member (``tarfile`` recurses once per header).

``tarfile`` ends at the first zero block, or silently at a header it cannot read once past the first member; here a
header that does not parse is an error, and the end is two zero blocks, as ``tar`` writes it.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 20 blocks: the record size tar uses when writing to a pipe
MAX_EXTENSIONS = 8  # extension headers (pax, GNU long name or link) before one member; tar writes at most three
READ_SIZE = 64 * 1024  # bytes of a file's data hashed at a time

_PAX = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_EXTENSIONS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, *_PAX)
_KINDS = {tarfile.LNKTYPE: "hardlink", tarfile.SYMTYPE: "symlink", tarfile.DIRTYPE: "directory"}


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


@dataclass(slots=True)
class TarSummary:
    """What a followed stream added up to; ``finished`` once its end-of-archive marker went by."""

    entry_count: int = 0
    file_count: int = 0
    file_bytes: int = 0
    finished: bool = False


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def _ignore(entry: TarEntry) -> None:
    return None


def follow(
    source: Readable, on_entry: Callable[[TarEntry], None] = _ignore, limits: TarLimits | None = None
) -> TarSummary:
    """Read the tar archive ``source`` yields (``b""`` at its end) up to its end-of-archive marker; ``on_entry`` gets
    every member as it completes (a file once its data went by), in archive order. The rest of ``source`` is left
    unread."""
    limits = limits or TarLimits()
    summary = TarSummary()
    tracked = _EndTracking(source)
    try:
        with tarfile.open(
            fileobj=tracked,
            mode="r|",
            tarinfo=_header_class(limits),
            encoding="utf-8",
            errors="surrogateescape",
        ) as archive:
            _read_members(archive, on_entry, limits, summary)
            summary.finished = _end_marker(archive)
    except TarStreamError:
        raise
    except (tarfile.TarError, ValueError) as error:
        if not tracked.ended:  # a header or number the stream got wrong; past its end, it is only cut short
            raise TarStreamError(f"malformed tar stream: {error}") from error
    return summary


def _read_members(
    archive: tarfile.TarFile, on_entry: Callable[[TarEntry], None], limits: TarLimits, summary: TarSummary
) -> None:
    while (member := archive.next()) is not None:
        archive.members.clear()  # type: ignore[attr-defined]  # stream mode keeps every member it returned, not here
        if summary.entry_count >= limits.max_entries:
            raise TarStreamLimitExceeded(
                f"the stream holds more than {limits.max_entries} entries",
                limit="entries",
                allowed=limits.max_entries,
            )
        summary.entry_count += 1
        name = member.name.rstrip("/") or "/"
        link = member.linkname or None
        for value in (name, link):
            if value is not None and len(value.encode("utf-8", "surrogateescape")) > limits.max_name_bytes:
                raise TarStreamLimitExceeded(
                    f"a member name or link target longer than {limits.max_name_bytes} bytes",
                    limit="name",
                    allowed=limits.max_name_bytes,
                )
        if member.isreg():
            digest = _sha256(archive, member)
            summary.file_count += 1
            summary.file_bytes += member.size
            on_entry(TarEntry(name, "file", member.size, digest))
        else:
            kind = _KINDS.get(member.type, "other")
            on_entry(TarEntry(name, kind, 0, None, link if kind in ("symlink", "hardlink") else None))


def _sha256(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    """The sha256 of ``member``'s data, read from the stream where ``next`` left it (what ``extractfile`` reads, without
    the file object it builds per member: a third of the time a small file took)."""
    archive.fileobj.seek(member.offset_data)  # where the stream is: seeking forward only, as extractfile's reader does
    digest = hashlib.sha256()
    left = member.size
    while left:
        chunk = archive.fileobj.read(min(left, READ_SIZE))
        if not chunk:
            raise tarfile.ReadError("unexpected end of data")
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def _end_marker(archive: tarfile.TarFile) -> bool:
    """Whether the zero block ``tarfile`` stopped at is followed by a second one: the end of the archive. False when
    the stream ended inside a header (or did not start)."""
    if archive.fileobj.tell() != archive.offset + BLOCK:
        return False
    second = archive.fileobj.read(BLOCK)
    if len(second) < BLOCK:
        return False
    if second.count(0) != BLOCK:
        raise TarStreamError("a lone zero block in the middle of the archive")
    return True


class _EndTracking(io.RawIOBase):
    """``source``, noting whether a read found its end: an error from ``tarfile`` after that is a stream cut short."""

    def __init__(self, source: Readable) -> None:
        super().__init__()
        self.source = source
        self.ended = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        data = self.source.read(size)
        if not data:
            self.ended = True
        return data


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _header_class(limits: TarLimits) -> type[tarfile.TarInfo]:
    """A ``_Header`` class for one stream: its limits, and a count of the extension headers read in a row."""

    class Header(_Header):
        LIMITS = limits
        extensions = 0

    return Header


class _Header(tarfile.TarInfo):
    """``tarfile``'s member, checked before ``tarfile`` acts on what its header claims."""

    LIMITS: ClassVar[TarLimits] = TarLimits()
    extensions: ClassVar[int] = 0  # set on the per-stream subclass

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        try:
            header = super().frombuf(buf, encoding, errors)
        except tarfile.HeaderError as error:
            if len(buf) != BLOCK or buf.count(0) == BLOCK:
                raise  # the stream ended, or the end-of-archive marker began: tarfile's to handle
            if str(error) == "bad checksum":
                raise TarStreamError(
                    "tar header checksum mismatch: the stream is not a tar archive or is corrupt"
                ) from None
            raise TarStreamError(
                "tar header with a malformed number (checksum, size, mode, times...): the stream is not a tar"
                " archive or is corrupt"
            ) from None
        if header.size < 0:
            raise TarStreamError("negative number in a tar header")
        if header.type == tarfile.GNUTYPE_SPARSE:
            raise TarStreamError("sparse files are not supported in checkpoints")
        return header

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        header = type(self)
        if self.type not in _EXTENSIONS:
            header.extensions = 0
            return super()._proc_member(archive)  # type: ignore[misc, no-any-return]  # not in typeshed
        header.extensions += 1
        if header.extensions > MAX_EXTENSIONS:
            raise TarStreamError(f"more than {MAX_EXTENSIONS} extension headers (pax, GNU long name) before a member")
        limits = header.LIMITS
        if self.type in _PAX:
            if self.size > limits.max_pax_bytes:
                raise TarStreamLimitExceeded(
                    f"a tar pax header of {self.size} bytes (at most {limits.max_pax_bytes})",
                    limit="pax",
                    allowed=limits.max_pax_bytes,
                )
            return self._proc_checked_pax(archive)
        allowed = limits.max_name_bytes + 1  # with its NUL
        if self.size > allowed:
            raise TarStreamLimitExceeded(
                f"a tar long name or link target of {self.size} bytes (at most {allowed})",
                limit="name",
                allowed=allowed,
            )
        return super()._proc_member(archive)  # type: ignore[misc, no-any-return]  # tarfile's GNU long name

    def _proc_checked_pax(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        data = archive.fileobj.read(_padded(self.size))
        if len(data) < _padded(self.size):
            raise tarfile.ReadError("unexpected end of data")
        records = pax_records(data[: self.size]) if self.type != tarfile.XGLTYPE else {}
        try:
            member = self.fromtarfile(archive)
        except tarfile.HeaderError as error:  # what tarfile makes of a bad header after an extension header
            raise tarfile.ReadError(str(error)) from None
        member.offset = self.offset
        if "path" in records:
            member.name = records["path"]
        if "linkpath" in records:
            member.linkname = records["linkpath"]
        if "size" in records:
            member.size = int(records["size"])
            has_data = member.isreg() or member.type not in tarfile.SUPPORTED_TYPES  # as tarfile decides
            archive.offset = member.offset_data + (_padded(member.size) if has_data else 0)
        return member


def pax_records(data: bytes) -> dict[str, str]:
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
