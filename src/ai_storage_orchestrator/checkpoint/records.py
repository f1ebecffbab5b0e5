"""What a checkpoint copied, member by member, in bounded memory.

Every member the tar follower reports is appended as one compact line to a spool that stays in memory up to
``SPOOL_MEMORY`` bytes and moves to an unnamed temporary file beyond (``tempfile``'s directory: ``$TMPDIR``, else
``/tmp``). Memory keeps only per-artifact aggregates (counts, bytes, the running sha256 of the artifact's checksum
list); the manifest, the checksum lists and the verification read the records back one at a time. A checkpoint that
outgrows memory where no temporary directory is writable fails with ``checkpoint_too_large``.

Each artifact's regular files also make its checksum list (``layout.checksum_list``): ``sha256sum -c`` lines whose
names are relative to the artifact's parent directory, so one list checks the copy on the volume (run in
``artifacts/<container>/<parent>``) and the restored files on the target (run in ``<parent>``).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ai_storage_orchestrator.checkpoint.checksums import checksum_line
from ai_storage_orchestrator.checkpoint.errors import COPY_FAILED, TOO_LARGE, CheckpointError
from ai_storage_orchestrator.checkpoint.layout import ARTIFACTS_DIR, checksum_list
from ai_storage_orchestrator.checkpoint.manifest import ArtifactFile
from ai_storage_orchestrator.checkpoint.tarstream import TarEntry, TarLimits, TarStreamError, TarStreamLimitExceeded

SPOOL_MEMORY = 16 * 1024 * 1024  # bytes of records kept in memory before they spill to a temporary file
# A checkpoint's file list on the orchestrator's disk, at most: 100,000 entries of ordinary names take ~25 MiB, and
# the default 8 checkpoints at once stay under the deployment's 1 GiB /tmp. Names a stream makes long on purpose
# (4 KiB each, escaped six-fold in JSON) would otherwise take ~5 GiB.
SPOOL_MAX_BYTES = 96 * 1024 * 1024


@dataclass(slots=True)
class ArtifactSection:
    """The records of one declared artifact: a contiguous range of the spool, and what they add up to."""

    container: str
    artifact: str
    start: int
    end: int
    entry_count: int = 0
    file_count: int = 0
    file_bytes: int = 0
    list_size: int = 0
    list_hash: Any = field(default_factory=hashlib.sha256)

    @property
    def parent(self) -> str:
        """The directory the artifact's names are relative to (in the container, and under its store)."""
        return posixpath.dirname(self.artifact)

    @property
    def list_path(self) -> str:
        """Its checksum list, relative to the checkpoint directory."""
        return checksum_list(self.container, self.artifact)

    @property
    def list_sha256(self) -> str:
        return str(self.list_hash.hexdigest())


class FileRecords:
    """Append with ``begin`` (one section per artifact, in copy order) and ``add``; read with ``files`` and
    ``checksum_lines``. Use as a context manager (the spool is closed on exit)."""

    def __init__(
        self,
        *,
        max_entries: int = TarLimits().max_entries,
        memory: int = SPOOL_MEMORY,
        max_bytes: int = SPOOL_MAX_BYTES,
        directory: str | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.memory = memory
        self.sections: list[ArtifactSection] = []
        self.entry_count = 0
        self.file_count = 0
        self.file_bytes = 0
        self._spool = tempfile.SpooledTemporaryFile(max_size=memory, mode="w+b", dir=directory)  # noqa: SIM115
        self._size = 0

    def __enter__(self) -> FileRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._spool.close()

    @property
    def spilled(self) -> bool:
        """The records outgrew ``memory`` and live in a temporary file."""
        return bool(getattr(self._spool, "_rolled", False))

    def begin(self, container: str, artifact: str) -> ArtifactSection:
        section = ArtifactSection(container, artifact, self._size, self._size)
        self.sections.append(section)
        return section

    def add(self, section: ArtifactSection, entry: TarEntry) -> None:
        """Record ``entry`` of ``section``'s stream (its name as ``tar -c`` wrote it, ``./<basename>/...``)."""
        self.entry_count += 1
        if self.entry_count > self.max_entries:
            raise TarStreamLimitExceeded(
                f"the checkpoint's artifacts hold more than {self.max_entries} entries",
                limit="entries",
                allowed=self.max_entries,
            )
        relative = _relative_name(entry.name, section.artifact)
        if relative is None:
            return
        if entry.kind == "symlink" and relative == posixpath.basename(posixpath.normpath(section.artifact)):
            raise CheckpointError(
                f"artifact {section.artifact} of container {section.container} is a symbolic link to"
                f" {(entry.link or '')[:200]!r}: the checkpoint would keep the link, not what it points to;"
                " declare the path it points to",
                reason=COPY_FAILED,
            )
        row = [entry.kind, entry.size, entry.sha256, relative, entry.link]
        self._append(json.dumps(row, separators=(",", ":")).encode() + b"\n")
        section.end = self._size
        section.entry_count += 1
        if entry.kind == "file" and entry.sha256 is not None:
            section.file_count += 1
            section.file_bytes += entry.size
            self.file_count += 1
            self.file_bytes += entry.size
            line = checksum_line(entry.sha256, relative)
            section.list_hash.update(line)
            section.list_size += len(line)

    def _append(self, line: bytes) -> None:
        if self._size + len(line) > self.max_bytes:
            raise TarStreamLimitExceeded(
                f"the list of the checkpoint's files outgrew {self.max_bytes:,} bytes (its names are that long)",
                limit="list_bytes",
                allowed=self.max_bytes,
            )
        self._spool.seek(self._size)
        try:
            self._spool.write(line)
        except OSError as error:
            raise CheckpointError(
                f"the list of the checkpoint's files outgrew the {self.memory:,} bytes kept in memory and"
                f" could not be spooled to a temporary file ({error}); give the orchestrator a writable temporary"
                " directory (an emptyDir at /tmp, or $TMPDIR)",
                reason=TOO_LARGE,
            ) from error
        self._size += len(line)

    def _rows(self, section: ArtifactSection) -> Iterator[list[Any]]:
        position = section.start
        while position < section.end:
            self._spool.seek(position)  # every read seeks: two readers may interleave
            line = self._spool.readline()
            position += len(line)
            yield json.loads(line)

    def files(self, section: ArtifactSection) -> Iterator[ArtifactFile]:
        """Every member of ``section`` as the manifest lists it, in archive order."""
        for kind, size, sha256, relative, link in self._rows(section):
            path = posixpath.join(section.parent, relative)
            stored = posixpath.join(ARTIFACTS_DIR, section.container) + path
            yield ArtifactFile(section.container, section.artifact, path, kind, size, sha256, stored, link)

    def all_files(self) -> Iterator[ArtifactFile]:
        for section in self.sections:
            yield from self.files(section)

    def checksum_lines(self, section: ArtifactSection) -> Iterator[bytes]:
        """``section``'s checksum list, line by line (``list_size`` bytes in all, sha256 ``list_sha256``)."""
        for kind, _size, sha256, relative, _link in self._rows(section):
            if kind == "file" and sha256 is not None:
                yield checksum_line(sha256, relative)


def _relative_name(name: str, artifact: str) -> str | None:
    """``name`` relative to the artifact's parent (``<basename>`` or ``<basename>/...``); None for the archive's own
    ``.`` entry; TarStreamError for a member outside the artifact, which ``tar -c`` of it never writes."""
    relative = name[2:] if name.startswith("./") else name.lstrip("/")
    relative = relative.rstrip("/")
    if not relative or relative == ".":
        return None
    base = posixpath.basename(artifact)
    parts = relative.split("/")
    if parts[0] != base or any(part in ("", ".", "..") for part in parts):
        raise TarStreamError(f"the stream of {artifact} holds a member outside it: {name[:200]!r}")
    return relative
