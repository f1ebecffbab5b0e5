"""The checkpoint manifest (``manifest.json``, schema version 1): what was saved, from which pod, and how to check it.

It is written last and atomically -- extracted as ``manifest.json.tmp`` next to the artifacts, then renamed -- so a
directory with a ``manifest.json`` is a complete, verified checkpoint and anything else is not. Pure functions only;
``saving`` does the I/O.

    {
      "schemaVersion": 1,
      "kind": "ai-storage.io/checkpoint",
      "migrationId": "...", "createdAt": "...", "finishedAt": "...",
      "orchestrator": {"version": "..."},
      "source": {"namespace", "pod", "node", "uid", "specDigest": "sha256:<canonical JSON of spec>"},
      "target": {"node", "strategy"},
      "location": {"volume", "directory", "container"},
      "containers": [{"name", "kind", "state", "exitCode", "reason", "startedAt", "finishedAt", "restartCount",
                      "action", "actionReason"}],
      "hooks": [{"container", "command", "exitCode", "durationSeconds", "outputTail", "startedAt", "timedOut"}],
      "artifacts": [{"container", "artifact", "path", "kind", "size", "sha256", "stored"}],
      "totals": {"files", "bytes"}
    }
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ai_storage_orchestrator.checkpoint.layout import MANIFEST_NAME, MANIFEST_TMP_NAME
from ai_storage_orchestrator.conventions import CHECKPOINT_MANIFEST_KIND as MANIFEST_KIND

SCHEMA_VERSION = 1


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: equal objects give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def spec_digest(pod: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(pod.get("spec") or {})).hexdigest()


@dataclass(frozen=True, slots=True)
class HookResult:
    container: str
    command: tuple[str, ...]
    exit_code: int | None
    duration_seconds: float
    output_tail: str
    started_at: str
    timed_out: bool = False
    message: str = ""

    @property
    def success(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "container": self.container,
            "command": list(self.command),
            "exitCode": self.exit_code,
            "durationSeconds": round(self.duration_seconds, 3),
            "outputTail": self.output_tail,
            "startedAt": self.started_at,
            "timedOut": self.timed_out,
        }
        if self.message:
            data["message"] = self.message
        return data


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    container: str
    artifact: str  # the declared path this file belongs to
    path: str  # absolute path of the file inside the container
    kind: str  # file | symlink | hardlink | directory | other
    size: int
    sha256: str | None
    stored: str  # path relative to the checkpoint directory
    link: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "container": self.container,
            "artifact": self.artifact,
            "path": self.path,
            "kind": self.kind,
            "size": self.size,
            "stored": self.stored,
        }
        if self.sha256 is not None:
            data["sha256"] = self.sha256
        if self.link is not None:
            data["link"] = self.link
        return data


def _container_statuses(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = pod.get("status") or {}
    return {
        str(s.get("name")): s
        for s in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    }


def container_records(pod: Mapping[str, Any], decisions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every container's state as the pod status reports it, with the action the migration chose for it."""
    statuses = _container_statuses(pod)
    records = []
    for decision in decisions:
        name = str(decision.get("name"))
        status = statuses.get(name) or {}
        states: Mapping[str, Any] = status.get("state") or {}
        phase = next(iter(states), "unknown")
        detail: Mapping[str, Any] = states.get(phase) or {}
        records.append(
            {
                "name": name,
                "kind": decision.get("kind"),
                "state": phase,
                "exitCode": detail.get("exitCode"),
                "reason": detail.get("reason"),
                "startedAt": detail.get("startedAt"),
                "finishedAt": detail.get("finishedAt"),
                "restartCount": int(status.get("restartCount") or 0),
                "action": decision.get("action"),
                "actionReason": decision.get("reason"),
            }
        )
    return records


def build_manifest(
    *,
    migration_id: str,
    pod: Mapping[str, Any],
    target_node: str,
    strategy: str,
    decisions: Sequence[Mapping[str, Any]],
    location: Mapping[str, Any],
    hooks: Sequence[HookResult],
    artifacts: Sequence[ArtifactFile],
    created_at: str,
    finished_at: str,
    version: str,
) -> dict[str, Any]:
    metadata = pod.get("metadata") or {}
    files = [a for a in artifacts if a.kind == "file"]
    return {
        "schemaVersion": SCHEMA_VERSION,
        "kind": MANIFEST_KIND,
        "migrationId": migration_id,
        "createdAt": created_at,
        "finishedAt": finished_at,
        "orchestrator": {"version": version},
        "source": {
            "namespace": metadata.get("namespace"),
            "pod": metadata.get("name"),
            "uid": metadata.get("uid"),
            "node": (pod.get("spec") or {}).get("nodeName"),
            "specDigest": spec_digest(pod),
        },
        "target": {"node": target_node, "strategy": strategy},
        "location": dict(location),
        "containers": container_records(pod, decisions),
        "hooks": [h.to_json() for h in hooks],
        "artifacts": [a.to_json() for a in artifacts],
        "totals": {"files": len(files), "bytes": sum(a.size for a in files)},
    }


def serialise(manifest: Mapping[str, Any]) -> bytes:
    """Stable, human-readable JSON (sorted keys, two-space indent, trailing newline)."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def parse(data: bytes) -> dict[str, Any]:
    """A manifest read back; ValueError for anything that is not a schema-1 checkpoint manifest."""
    manifest = json.loads(data)
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise ValueError("not an ai-storage.io checkpoint manifest")
    if manifest.get("schemaVersion") != SCHEMA_VERSION:
        raise ValueError(f"unsupported manifest schema version {manifest.get('schemaVersion')!r}")
    return manifest


def single_file_archive(name: str, data: bytes, *, mtime: float) -> bytes:
    """A tar archive (record-padded) holding one regular file: how small files reach the volume through ``tar -x``,
    the one tool the checkpoint already needs, without a shell and without relying on stdin end-of-file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(mtime)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def atomic_write_argv(directory: str) -> tuple[list[str], list[str]]:
    """The two commands that put ``manifest.json`` in ``directory``: extract the archive from
    ``single_file_archive(MANIFEST_TMP_NAME, ...)`` (stdin), then rename it over the final name (atomic on POSIX)."""
    return (
        ["tar", "-x", "-f", "-", "-C", directory],
        ["mv", "-f", posixpath.join(directory, MANIFEST_TMP_NAME), posixpath.join(directory, MANIFEST_NAME)],
    )
