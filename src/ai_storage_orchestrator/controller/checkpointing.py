"""Checkpoints run beside the reconcile workers, never inside one: hooks and artifact copies may take minutes, and a
worker blocked on them would stall every other migration's steps (including recreating pods whose source is
already stopped). A step starts a job and returns; the job's end wakes the migration, whose next step takes the
result. Jobs share a bounded pool: at most `limit` at once, and `per_node` on one source node."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ai_storage_orchestrator.checkpoint import CheckpointJob
from ai_storage_orchestrator.controller.ports import JSON, Checkpointer

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Finished:
    checkpoint: JSON | None = None
    error: BaseException | None = None


class CheckpointPool:
    def __init__(self, checkpointer: Checkpointer, *, limit: int, per_node: int, wake: Callable[[str], None]) -> None:
        self.checkpointer = checkpointer
        self.wake = wake
        self._overall = asyncio.Semaphore(limit)
        self._per_node_limit = per_node
        self._nodes: dict[str, asyncio.Semaphore] = {}
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._finished: dict[str, Finished] = {}

    def running(self, key: str) -> bool:
        return key in self._jobs

    def take(self, key: str) -> Finished | None:
        """The result of the finished job for `key`, once (None while it runs or when none was started)."""
        return self._finished.pop(key, None)

    def start(self, key: str, job: CheckpointJob, *, node: str) -> None:
        if key in self._jobs:
            return
        self._finished.pop(key, None)
        self._jobs[key] = asyncio.get_running_loop().create_task(self._run(key, job, node), name=f"checkpoint-{key}")

    def cancel(self, key: str) -> None:
        task = self._jobs.pop(key, None)
        if task is not None:
            task.cancel()
        self._finished.pop(key, None)

    async def stop(self) -> None:
        """End of a leadership term: no checkpoint goes on without the lease."""
        tasks = list(self._jobs.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
        self._finished.clear()

    async def _run(self, key: str, job: CheckpointJob, node: str) -> None:
        per_node = self._nodes.setdefault(node, asyncio.Semaphore(self._per_node_limit))
        try:
            # The node's slot first: jobs queued behind a busy node must not hold the pool's slots, or two busy
            # nodes would keep every other node's checkpoints waiting (against their moves' deadlines).
            async with per_node, self._overall:
                log.info("checkpoint.started", migration_id=job.migration_id, node=node)
                result = Finished(checkpoint=await self.checkpointer.save(job))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            result = Finished(error=error)
        if self._jobs.get(key) is asyncio.current_task():
            del self._jobs[key]
            self._finished[key] = result
            self.wake(key)
