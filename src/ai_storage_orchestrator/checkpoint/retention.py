"""Which checkpoints of a workload to delete (pure), and the listing/deleting through exec.

Run after every checkpoint is written (its listing by the same exec that writes the manifest, see ``batch``; the
deletion, when there is one, by one more), over ``<mountPath>/.ai-storage/namespaces/<namespace>/checkpoints/<pod>/`` --
the checkpoints of that namespace's workload and nothing else (the saver never runs it over a directory of the legacy
layout, whose parent other namespaces share) -- so it is level-based: a restart or a missed event only delays the
clean-up to the next checkpoint of that workload. Rules, in order:

1. entries that are not migration ids are not ours: left alone;
2. the checkpoint just written is kept (and counts towards the retention);
3. a checkpoint a live pod points at (``ai-storage.io/checkpoint-path``) is kept -- a pod recreated from a
   rolled-back migration restores from it;
4. the checkpoint of a migration still in progress is kept;
5. the checkpoint of a failed or cancelled migration is deleted, unless ``keep_failed``;
6. a directory without ``manifest.json`` (an interrupted checkpoint) is deleted;
7. of the rest (completed migrations, or migrations whose record is gone), the newest ``retention`` -- counting the
   checkpoint just written and the ones in use -- are kept and the older ones deleted.

"Newest" is the directory's modification time: ``manifest.json`` is renamed into a checkpoint directory as its last
step, so that is when the checkpoint was completed.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from ai_storage_orchestrator.checkpoint.batch import remove_argv
from ai_storage_orchestrator.checkpoint.layout import MANIFEST_NAME, MIGRATION_ID_PATTERN
from ai_storage_orchestrator.checkpoint.transport import ExecTransport, run
from ai_storage_orchestrator.kube.exec import ExecError

log = structlog.get_logger(__name__)
CLEANUP_TIMEOUT = 60.0

TERMINAL_FAILURES = frozenset({"Failed", "Cancelled"})
TERMINAL_PHASES = frozenset({"Completed", *TERMINAL_FAILURES})


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    keep: list[str]
    delete: list[str]


def select_for_deletion(
    *,
    newest_first: Sequence[str],
    complete: Collection[str],
    current: str,
    phases: Mapping[str, str],
    in_use: Collection[str],
    retention: int,
    keep_failed: bool,
) -> RetentionDecision:
    """Split the checkpoint directories of one workload (named by migration id, newest first) into keep/delete."""
    retention = max(1, retention)
    keep: list[str] = []
    delete: list[str] = []
    counted = 0
    for name in newest_first:
        if not MIGRATION_ID_PATTERN.match(name):
            continue
        phase = phases.get(name)
        retained_kind = name in complete and (phase is None or phase == "Completed")
        if name == current or name in in_use:
            keep.append(name)
            counted += 1 if (name == current or retained_kind) else 0
        elif phase is not None and phase not in TERMINAL_PHASES:
            keep.append(name)
        elif phase in TERMINAL_FAILURES:
            (keep if keep_failed else delete).append(name)
        elif name not in complete:
            delete.append(name)
        elif counted < retention:
            keep.append(name)
            counted += 1
        else:
            delete.append(name)
    return RetentionDecision(keep, delete)


@dataclass(frozen=True, slots=True)
class Listing:
    """A workload's checkpoint directories: their names, newest first, and those holding a manifest -- or why they
    could not be listed."""

    names: list[str]
    complete: set[str]
    error: str | None = None


def parse_listing(ls_stdout: bytes, find_stdout: bytes) -> Listing:
    """``ls -1t <root>`` and ``find <root> -mindepth 2 -maxdepth 2 -type f -name manifest.json`` as a Listing."""
    names = [line.strip() for line in ls_stdout.decode(errors="replace").splitlines() if line.strip()]
    complete = {
        posixpath.basename(posixpath.dirname(line.strip()))
        for line in find_stdout.decode(errors="replace").splitlines()
        if line.strip()
    }
    return Listing(names, complete)


async def list_checkpoints(
    transport: ExecTransport, *, namespace: str, pod: str, container: str, root: str
) -> tuple[list[str], set[str]]:
    """(directory names under ``root``, newest first; those holding a manifest). Empty when ``root`` is missing."""
    listing = await run(transport, namespace=namespace, pod=pod, container=container, argv=["ls", "-1t", root])
    if not listing.success:
        return [], set()
    found = await run(
        transport,
        namespace=namespace,
        pod=pod,
        container=container,
        argv=["find", root, "-mindepth", "2", "-maxdepth", "2", "-type", "f", "-name", MANIFEST_NAME],
    )
    parsed = parse_listing(listing.stdout, found.stdout)
    return parsed.names, parsed.complete


async def apply_retention(
    transport: ExecTransport,
    *,
    namespace: str,
    pod: str,
    container: str,
    root: str,
    base: str = "",
    current: str,
    phases: Mapping[str, str],
    in_use: Collection[str],
    retention: int,
    keep_failed: bool,
    listing: Listing | None = None,
) -> dict[str, Any]:
    """List ``root`` through ``container`` (unless ``listing`` is what the saver's last exec listed already),
    delete what ``select_for_deletion`` says (refused if a directory between ``base``, the volume's mount point, and
    ``root`` is a symbolic link); best effort (a failure is logged and reported, the checkpoint just
    written stays valid)."""
    try:
        async with asyncio.timeout(CLEANUP_TIMEOUT):
            if listing is None:
                names, complete = await list_checkpoints(
                    transport, namespace=namespace, pod=pod, container=container, root=root
                )
            elif listing.error is not None:
                raise ExecError(listing.error)
            else:
                names, complete = listing.names, listing.complete
            decision = select_for_deletion(
                newest_first=names,
                complete=complete,
                current=current,
                phases=phases,
                in_use=in_use,
                retention=retention,
                keep_failed=keep_failed,
            )
            if decision.delete:
                argv = remove_argv(base=base, paths=[posixpath.join(root, name) for name in decision.delete])
                removed = await run(transport, namespace=namespace, pod=pod, container=container, argv=argv)
                if not removed.success:
                    raise ExecError(f"rm failed: {removed.describe()}")
    except (TimeoutError, ExecError) as error:
        log.warning("checkpoint.retention_failed", root=root, error=str(error))
        return {"error": str(error), "limit": retention}
    log.info("checkpoint.retention", kept=decision.keep, deleted=decision.delete)
    return {"kept": decision.keep, "deleted": decision.delete, "limit": retention}
