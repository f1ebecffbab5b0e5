"""The checkpoint pool's limits: overall and per source node, without one busy node holding the others back."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from ai_storage_orchestrator.checkpoint import CheckpointJob
from ai_storage_orchestrator.controller.checkpointing import CheckpointPool

pytestmark = pytest.mark.unit


class HeldCheckpointer:
    """Each save runs until its migration's event is set."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.release: dict[str, asyncio.Event] = {}

    async def save(self, job: CheckpointJob) -> dict[str, Any]:
        self.running.add(job.migration_id)
        await self.release.setdefault(job.migration_id, asyncio.Event()).wait()
        self.running.discard(job.migration_id)
        return {"saved": True}


def _job(migration_id: str) -> CheckpointJob:
    pod: Mapping[str, Any] = {"metadata": {"name": "p", "namespace": "ml"}}
    return CheckpointJob(migration_id, "ml", pod, {}, [], "node-z", "checkpoint-restart", 60.0)


async def test_jobs_queued_behind_a_busy_node_do_not_hold_the_pools_slots() -> None:
    saver = HeldCheckpointer()
    pool = CheckpointPool(saver, limit=2, per_node=1, wake=lambda key: None)  # type: ignore[arg-type]
    for key, node in (("a1", "node-a"), ("a2", "node-a"), ("b1", "node-b")):
        pool.start(key, _job(key), node=node)
    for _ in range(5):
        await asyncio.sleep(0)
    try:
        assert saver.running == {"a1", "b1"}, "b1's node is idle: it must not wait for node-a's queue"
    finally:
        await pool.stop()
