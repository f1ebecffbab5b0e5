"""The checkpoint manifest (``manifest.json``, schema version 1): what was saved, from which pod, and how to check it.

It is written last and atomically -- extracted as ``manifest.json.tmp`` next to the artifacts, then renamed -- so a
directory with a ``manifest.json`` is a complete, verified checkpoint and anything else is not. Pure functions only;
``saving`` does the I/O. A checkpoint may list up to ``TarLimits.max_entries`` artifact entries, so the manifest is
produced as a stream (``serialise_streaming``: the header, then the entries one at a time) rather than built in
memory; ``serialise`` gives the same bytes for a manifest held as a dict.

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
      "hooks": [{"container", "command", "exitCode", "durationSeconds", "outputBytes", "startedAt", "timedOut"}],
      "artifacts": [{"container", "artifact", "path", "kind", "size", "sha256", "stored"}],
      "checksums": [{"container", "artifact", "list", "sha256", "size", "files"}],
      "totals": {"files", "bytes"}
    }

``checksums`` names, per artifact, its ``sha256sum -c`` list in the checkpoint directory (``layout.checksum_list``):
the ``sha256`` of ``artifacts`` in the form the restore init container checks the restored files with.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    output_bytes: int  # how much the hook wrote; never what (it is the workload's: see checkpoint.redaction)
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
            "outputBytes": self.output_bytes,
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


def manifest_header(
    *,
    migration_id: str,
    pod: Mapping[str, Any],
    target_node: str,
    strategy: str,
    decisions: Sequence[Mapping[str, Any]],
    location: Mapping[str, Any],
    hooks: Sequence[HookResult],
    checksums: Sequence[Mapping[str, Any]],
    totals: Mapping[str, int],
    created_at: str,
    finished_at: str,
    version: str,
) -> dict[str, Any]:
    """Everything but ``artifacts`` (which ``serialise_streaming`` adds one entry at a time)."""
    metadata = pod.get("metadata") or {}
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
        "checksums": [dict(c) for c in checksums],
        "totals": dict(totals),
    }


def build_manifest(
    *,
    artifacts: Sequence[ArtifactFile],
    checksums: Sequence[Mapping[str, Any]] = (),
    **header: Any,
) -> dict[str, Any]:
    """The whole manifest as a dict (for a checkpoint small enough to hold): ``manifest_header`` + ``artifacts``."""
    files = [a for a in artifacts if a.kind == "file"]
    totals = {"files": len(files), "bytes": sum(a.size for a in files)}
    return {
        **manifest_header(checksums=checksums, totals=totals, **header),
        "artifacts": [a.to_json() for a in artifacts],
    }


def _dumps(value: Any) -> bytes:
    """Sorted keys, two-space indent, UTF-8; a name that is not valid UTF-8 (kept as surrogates) is written with
    ``\\u`` escapes, which read back to the same string."""
    text = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False).encode()


def serialise_streaming(header: Mapping[str, Any], artifacts: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    """``serialise({**header, "artifacts": list(artifacts)})``, produced chunk by chunk: memory holds one entry."""
    marker = b'"artifacts": []'
    head = _dumps({**header, "artifacts": []})
    before, after = head.split(marker, 1)  # "artifacts" sorts first: the top-level key, never a string's content
    yield before + b'"artifacts": ['
    separator = b"\n"
    for artifact in artifacts:
        yield separator + b"\n".join(b"    " + line for line in _dumps(artifact).split(b"\n"))
        separator = b",\n"
    yield (b"]" if separator == b"\n" else b"\n  ]") + after + b"\n"


def serialise(manifest: Mapping[str, Any]) -> bytes:
    """Stable, human-readable JSON (sorted keys, two-space indent, trailing newline)."""
    header = {key: value for key, value in manifest.items() if key != "artifacts"}
    return b"".join(serialise_streaming(header, manifest.get("artifacts") or []))


def parse(data: bytes) -> dict[str, Any]:
    """A manifest read back; ValueError for anything that is not a schema-1 checkpoint manifest."""
    manifest = json.loads(data)
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise ValueError("not an ai-storage.io checkpoint manifest")
    if manifest.get("schemaVersion") != SCHEMA_VERSION:
        raise ValueError(f"unsupported manifest schema version {manifest.get('schemaVersion')!r}")
    return manifest


def rename_argv(directory: str) -> list[str]:
    """What makes the extracted ``manifest.json.tmp`` in ``directory`` its ``manifest.json`` (atomic on POSIX)."""
    return ["mv", "-f", posixpath.join(directory, MANIFEST_TMP_NAME), posixpath.join(directory, MANIFEST_NAME)]
