"""Prepare and save a checkpoint of `pods.workload` through a fake exec: what the Validating and Checkpointing phases
do, with the real tar/sha256sum on tmp directories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ai_storage_orchestrator.checkpoint import CheckpointJob, PVCheckpointer
from tests.unit.checkpoint.fakes import LocalExec
from tests.unit.checkpoint.pods import DECISIONS, target_of, volume

MIGRATION = "abc123def456"
JSON = dict[str, Any]


def checkpoint_root(root: Path, namespace: str = "ml") -> Path:
    """Where `workload`'s checkpoints go on its shared volume (<root>/shared)."""
    return root / "shared" / ".ai-storage" / "namespaces" / namespace / "checkpoints" / "trainer-pod"


async def prepare_and_save(
    root: Path,
    pod: JSON,
    transport: LocalExec,
    *,
    migration: str = MIGRATION,
    time_left: float = 60.0,
    phases: dict[str, str] | None = None,
    in_use: frozenset[str] = frozenset(),
    rewrite: Callable[[JSON], JSON] | None = None,
    **settings: Any,
) -> tuple[JSON, JSON]:
    """(the target pod, the save's result); ``rewrite`` changes what ``prepare`` recorded in the status before the
    save reads it (as an older orchestrator would have recorded it)."""
    checkpointer = PVCheckpointer(transport, version="test", **settings)
    spec = checkpointer.declared(pod)
    target, prepared = checkpointer.prepare(
        source_pod=pod,
        target_pod=target_of(pod),
        migration_id=migration,
        pod_base="trainer-pod",
        volume=volume(root),
        spec=spec,
    )
    job = CheckpointJob(
        migration_id=migration,
        namespace=pod["metadata"]["namespace"],
        pod=pod,
        checkpoint=rewrite(prepared) if rewrite else prepared,
        decisions=DECISIONS,
        target_node="node-b",
        strategy="checkpoint-restart",
        time_left=time_left,
        phases=phases or {},
        in_use=in_use,
    )
    return target, await checkpointer.save(job)


async def save(root: Path, pod: JSON, transport: LocalExec, **kwargs: Any) -> JSON:
    return (await prepare_and_save(root, pod, transport, **kwargs))[1]
