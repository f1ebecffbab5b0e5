"""The migration controller: watch events in, keys on the reactor's queue, one phase step per reconcile.

A finished migration is reconciled too: its finalizer is removed (it protected the record while pods depended on
it) and, after `Settings.finished_migration_ttl_seconds`, the record itself is deleted, like a Job's
`ttlSecondsAfterFinished`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from typing import Any

import structlog

from ai_storage_orchestrator.bodies import Body, Pod
from ai_storage_orchestrator.checkpoint import CheckpointJob, CheckpointSpec
from ai_storage_orchestrator.controller.checkpointing import CheckpointPool
from ai_storage_orchestrator.controller.context import MigrationContext, log
from ai_storage_orchestrator.controller.execsupport import ExecSupport
from ai_storage_orchestrator.controller.fencing import Fence, FencedWriter, always_leading
from ai_storage_orchestrator.controller.knock import GateKnocker
from ai_storage_orchestrator.controller.phases import PHASES
from ai_storage_orchestrator.controller.planner import Planner
from ai_storage_orchestrator.controller.planning.owner import SAME_NAME_OWNERS, controlling_owner
from ai_storage_orchestrator.controller.ports import Checkpointer, ClusterWriter, EventSink
from ai_storage_orchestrator.controller.reactor import Reactor
from ai_storage_orchestrator.controller.reconciler import Result
from ai_storage_orchestrator.controller.records import active_moves_of, is_active, now_iso, parse_time, phase_of
from ai_storage_orchestrator.controller.reporting import PhaseReporter
from ai_storage_orchestrator.conventions import MIGRATION_FINALIZER, MIGRATION_ID_LABEL
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import Action, Phase
from ai_storage_orchestrator.settings import Settings
from ai_storage_orchestrator.watchers.state import ClusterState
from ai_storage_orchestrator.watchers.store import JSON, object_key


class LocationOnlyCheckpointer:
    """Records where the checkpoint would go and writes nothing: the default when no exec transport is configured
    (the orchestrator's runtime passes a ``PVCheckpointer``)."""

    def declared(self, pod: JSON) -> CheckpointSpec:
        return CheckpointSpec()

    def prepare(
        self,
        *,
        source_pod: JSON,
        target_pod: JSON,
        migration_id: str,
        pod_base: str,
        volume: Mapping[str, Any] | None,
        spec: CheckpointSpec,
    ) -> tuple[JSON, JSON]:
        return dict(target_pod), {"volume": dict(volume) if volume else None, "saved": False}

    async def save(self, job: CheckpointJob) -> JSON:
        checkpoint = dict(job.checkpoint)
        checkpoint["saved"] = False
        checkpoint["note"] = "state lives on the shared volume; no artifacts declared"
        return checkpoint


def _created(migration: JSON) -> tuple[Any, str]:
    return (parse_time(migration["metadata"].get("creationTimestamp")), migration["metadata"]["name"])


class MigrationController:
    def __init__(
        self,
        *,
        api: ClusterWriter,
        state: ClusterState,
        settings: Settings,
        recorder: EventSink,
        metrics: Metrics,
        checkpointer: Checkpointer | None = None,
        knocker: GateKnocker | None = None,
        fence: Fence = always_leading,
    ) -> None:
        self.writer = FencedWriter(api, fence)
        self.state = state
        self.settings = settings
        self.recorder = recorder
        self.metrics = metrics
        self.checkpointer: Checkpointer = checkpointer or LocationOnlyCheckpointer()
        self.knocker = knocker
        self.planner = Planner(state, declared=self.checkpointer.declared, capture_owned=settings.captures_owned_pods)
        self.admission = asyncio.Lock()
        self.exec_support = ExecSupport()
        self.reporter = PhaseReporter(metrics=metrics, recorder=recorder, notify=state.notify)
        self.reactor = Reactor(self.reconcile, workers=settings.workers, name="migrations")
        self.checkpoints = CheckpointPool(
            self.checkpointer,
            limit=settings.checkpoint_concurrency,
            per_node=settings.checkpoint_concurrency_per_node,
            wake=self.reactor.enqueue,
        )
        state.migrations.add_listener(self._on_migration)
        state.pods.add_listener(self._on_pod)
        state.nodes.add_listener(self._on_node)

    @property
    def api(self) -> ClusterWriter:
        return self.writer

    @property
    def prewarm(self) -> bool:
        return self.settings.prewarm

    def ensure_leading(self, action: str) -> None:
        self.writer.check(action)

    async def run(self) -> None:
        """Reconcile until cancelled: one term of leadership (only the leader calls this)."""
        try:
            await self.reactor.run(lambda: [object_key(m) for m in self.state.migrations])
        finally:
            await self.checkpoints.stop()
            if self.knocker is not None:
                await self.knocker.close()

    # Event routing ----------------------------------------------------------------------------------------------
    def _on_migration(self, _type: str, old: JSON | None, new: JSON | None) -> None:
        if new is not None:
            self.reactor.enqueue(object_key(new))  # active: its next step; finished: finalizer and TTL
        was, now = old is not None and is_active(old), new is not None and is_active(new)
        if was != now:  # keep the gauge by difference: a recount per event grows with the history kept
            self.metrics.active_migrations.inc(1 if now else -1)
        if was and not now:  # a slot under the concurrency caps is free: migrations queued in Pending may start
            for migration in self.state.migrations:
                if phase_of(migration) is Phase.PENDING:
                    self.reactor.enqueue(object_key(migration))

    def _on_pod(self, event_type: str, old: JSON | None, new: JSON | None) -> None:
        pod = new or old
        assert pod is not None
        metadata = pod["metadata"]
        owner = Pod(pod).labels.get(MIGRATION_ID_LABEL)
        if owner:
            self.reactor.enqueue(f"{metadata['namespace']}/{owner}")
        for migration in self.state.migrations_of_pod(metadata["namespace"], metadata["name"]):
            if is_active(migration):
                self.reactor.enqueue(object_key(migration))
        if event_type == "ADDED" and not owner:
            self._wake_owned_moves(pod)

    def _wake_owned_moves(self, pod: JSON) -> None:
        """A new pod of an owner whose pod is moving: the move sees that its owner created a pod it did not capture."""
        metadata = pod["metadata"]
        owner_uid = (controlling_owner(pod) or {}).get("uid")
        if not owner_uid:
            return
        for migration in self.state.active_migrations_of_owner(metadata["namespace"], str(owner_uid)):
            self.reactor.enqueue(object_key(migration))

    def _on_node(self, _type: str, old: JSON | None, new: JSON | None) -> None:
        node = Body(new or old or {}).name
        for migration in self.state.active_migrations_to(node):
            self.reactor.enqueue(object_key(migration))

    # Reconcile --------------------------------------------------------------------------------------------------
    async def reconcile(self, key: str) -> Result:
        migration = self.state.migrations.get(key)
        if migration is None:
            return Result.done()
        phase = phase_of(migration)
        if phase.is_terminal:
            return await self._finish(migration)
        step = PHASES.get(phase)
        if step is None:
            return Result.done()
        if self._unprotected(migration):
            return await self._protect(migration)
        context = MigrationContext(migration, self)
        await self.fault_point(f"before:{phase.value}")
        with structlog.contextvars.bound_contextvars(
            migration_id=context.name,
            pod=Body(migration).spec.get("podName"),
            namespace=context.namespace,
            phase=phase.value,
        ):
            return await step(context)

    @staticmethod
    def _unprotected(migration: JSON) -> bool:
        metadata = migration["metadata"]
        return MIGRATION_FINALIZER not in (metadata.get("finalizers") or []) and not metadata.get("deletionTimestamp")

    async def _protect(self, migration: JSON) -> Result:
        """A record made without our finalizer (with kubectl, say) gets it before any step acts: deleted mid-move,
        it would take the only copy of the target's spec and the gate's token with it, and no rollback would run."""
        metadata = migration["metadata"]
        finalizers = [*(metadata.get("finalizers") or []), MIGRATION_FINALIZER]
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": metadata["resourceVersion"]}}
        updated = await self.api.merge_patch(POD_MIGRATIONS, metadata["name"], patch, namespace=metadata["namespace"])
        self.state.migrations.write_through(updated)
        return Result.again()

    async def _finish(self, migration: JSON) -> Result:
        """A finished migration: drop our finalizer (nothing depends on the record any more), then delete the
        record once its time to live has passed."""
        metadata = migration["metadata"]
        finalizers = list(metadata.get("finalizers") or [])
        if MIGRATION_FINALIZER in finalizers:
            finalizers.remove(MIGRATION_FINALIZER)
            patch = {"metadata": {"finalizers": finalizers, "resourceVersion": metadata["resourceVersion"]}}
            updated = await self.api.merge_patch(
                POD_MIGRATIONS, metadata["name"], patch, namespace=metadata["namespace"]
            )
            self.state.migrations.write_through(updated)
            return Result.again()
        ttl = self.settings.finished_migration_ttl_seconds
        finished = parse_time(Body(migration).status.get("finishedAt"))
        if ttl is None or finished is None or metadata.get("deletionTimestamp"):
            return Result.done()
        now = parse_time(now_iso())
        assert now is not None
        left = ttl - (now - finished).total_seconds()
        if left > 0:
            return Result.after(left)
        try:
            await self.api.delete(
                POD_MIGRATIONS, metadata["name"], namespace=metadata["namespace"], uid=metadata.get("uid")
            )
            log.info("migration.expired", migration_id=metadata["name"], ttl_seconds=ttl)
        except KubeApiError as error:
            if not (error.not_found or error.conflict):
                raise
        return Result.done()

    async def fault_point(self, point: str) -> None:
        """Crash-testing aid (see Settings.fault_point): armed at `point`, block this worker forever; armed at
        `freeze:<point>`, stop the whole process there (SIGSTOP) and carry on when it is continued (SIGCONT), as
        a leader frozen by the machine would."""
        armed = self.settings.fault_point
        if armed == point:
            log.warning("fault.reached", point=point)
            await asyncio.Event().wait()
        elif armed == f"freeze:{point}":
            log.warning("fault.freezing", point=point)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGSTOP)
            log.warning("fault.thawed", point=point)

    # Helpers for the phases -------------------------------------------------------------------------------------
    def older_active_migration(self, ctx: MigrationContext) -> JSON | None:
        """An active migration that holds this one's pod (`active_moves_of`) and goes first: one that has started,
        or is older."""
        mine = _created(ctx.migration)
        for other in active_moves_of(self.state, ctx.namespace, ctx.spec["podName"]):
            if other["metadata"]["name"] != ctx.name:
                started = phase_of(other) is not Phase.PENDING
                if started or _created(other) < mine:
                    return other
        return None

    def capacity_blocker(self, ctx: MigrationContext) -> str | None:
        running = [m for m in self.state.migrations if is_active(m) and phase_of(m) is not Phase.PENDING]
        cap = self.settings.max_active_migrations
        if len(running) >= cap:
            return f"queued: {len(running)} migrations in flight (limit {cap})"
        nodes = {ctx.spec["sourceNode"], ctx.spec["targetNode"]}
        per_node = self.settings.max_active_per_node
        for node in sorted(nodes):
            busy = sum(1 for m in running if node in (Body(m).spec.get("sourceNode"), Body(m).spec.get("targetNode")))
            if busy >= per_node:
                return f"queued: {busy} migrations in flight on node {node} (limit {per_node})"
        return None

    def owner_blocker(self, ctx: MigrationContext) -> str | None:
        """One move per owner at a time, a StatefulSet's pods excepted (each replacement has its source's name).
        Two surges of one count would each put back a count that includes the other's surge, leaving a replica too
        many; two replacements of one owner cannot be told apart by the capture webhook, which every replica of the
        orchestrator serves."""
        pod = ctx.source_pod
        owner = controlling_owner(pod) if pod is not None else None
        if owner is None or not owner.get("uid") or owner.get("kind") in SAME_NAME_OWNERS:
            return None
        for other in self.state.migrations:
            body = Body(other)
            if body.name == ctx.name or body.namespace != ctx.namespace:
                continue
            if not is_active(other) or phase_of(other) is Phase.PENDING:
                continue
            if _mapping_of(body.status.get("owner")).get("uid") == owner["uid"]:
                return (
                    f"queued: {owner.get('kind')} '{owner.get('name')}' has a move in flight ({body.name});"
                    " the pods of one owner move one at a time"
                )
        return None


def _mapping_of(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


__all__ = ["Action", "Checkpointer", "MigrationController"]
