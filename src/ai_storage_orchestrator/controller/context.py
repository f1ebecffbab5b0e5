"""One reconcile step's view of a migration: its record, the cluster, and the way to move it to another phase.

A step sees the world only through `MigrationController` (the Protocol below): the cluster writer (behind the
leadership fence), the watch caches, the event sink, the checkpointer and the planner. The fast tests give it
small fakes; the runtime gives it the real controller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from ai_storage_orchestrator.controller.checkpointing import CheckpointPool
from ai_storage_orchestrator.controller.execsupport import ExecSupport
from ai_storage_orchestrator.controller.invariant import InvariantViolation, alive
from ai_storage_orchestrator.controller.knock import GateKnocker
from ai_storage_orchestrator.controller.planner import Planner
from ai_storage_orchestrator.controller.ports import Checkpointer, ClusterWriter, EventSink
from ai_storage_orchestrator.controller.reconciler import Result
from ai_storage_orchestrator.controller.records import now_iso, parse_time, phase_of, request_of
from ai_storage_orchestrator.controller.reporting import Passed, PhaseReporter
from ai_storage_orchestrator.conventions import MIGRATION_ID_ANNOTATION, MIGRATION_STATUS_ANNOTATION
from ai_storage_orchestrator.errors import TemporaryError
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, PODS
from ai_storage_orchestrator.models import MigrationRequest, Phase
from ai_storage_orchestrator.watchers.state import ClusterState

JSON = dict[str, Any]
log = structlog.get_logger("ai_storage_orchestrator.migration")


class MigrationController(Protocol):
    """What the phase steps need from the controller that runs them."""

    @property
    def api(self) -> ClusterWriter: ...

    @property
    def state(self) -> ClusterState: ...

    @property
    def recorder(self) -> EventSink: ...

    @property
    def checkpointer(self) -> Checkpointer: ...

    @property
    def planner(self) -> Planner: ...

    @property
    def admission(self) -> asyncio.Lock: ...

    @property
    def exec_support(self) -> ExecSupport: ...

    @property
    def knocker(self) -> GateKnocker | None:
        """Opens a held target's gate by exec beside the hand-off annotation (controller/knock.py); None: never."""
        ...

    @property
    def prewarm(self) -> bool:
        """Checkpoint-restart moves start their target before the source stops (controller/planning/gate.py)."""
        ...

    @property
    def checkpoints(self) -> CheckpointPool: ...

    def older_active_migration(self, ctx: MigrationContext) -> JSON | None: ...

    def capacity_blocker(self, ctx: MigrationContext) -> str | None: ...

    def owner_blocker(self, ctx: MigrationContext) -> str | None: ...

    @property
    def reporter(self) -> PhaseReporter: ...

    async def fault_point(self, point: str) -> None: ...

    def ensure_leading(self, action: str) -> None:
        """Raise NotLeader unless this replica can prove it holds the lease (controller/fencing.py)."""
        ...


@dataclass
class MigrationContext:
    migration: JSON
    controller: MigrationController

    @property
    def name(self) -> str:
        return str(self.migration["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.migration["metadata"]["namespace"])

    @property
    def spec(self) -> JSON:
        return dict(self.migration.get("spec") or {})

    @property
    def status(self) -> JSON:
        return dict(self.migration.get("status") or {})

    @property
    def phase(self) -> Phase:
        return phase_of(self.migration)

    @property
    def request(self) -> MigrationRequest:
        return request_of(self.migration)

    @property
    def cancel_requested(self) -> bool:
        """Cancelled through the API, or the PodMigration itself is being deleted (its finalizer keeps it until the
        rollback has finished: deleting the record mid-move must not delete the only copy of the pod's spec)."""
        return bool(self.spec.get("cancelRequested")) or bool(self.migration["metadata"].get("deletionTimestamp"))

    @property
    def source_pod(self) -> JSON | None:
        return self.controller.state.pod(self.namespace, self.spec["podName"])

    @property
    def source_pod_is_ours(self) -> bool:
        """The pod named like the source is the one we planned to move (not a pod recreated by someone else)."""
        pod = self.source_pod
        uid = self.status.get("sourcePodUID")
        return pod is not None and (uid is None or pod["metadata"].get("uid") == uid)

    @property
    def target_pod(self) -> JSON | None:
        name = self.status.get("targetPod")
        return self.controller.state.pod(self.namespace, name) if name else None

    def seconds_left(self) -> float:
        started = parse_time(self.status.get("startedAt") or self.migration["metadata"].get("creationTimestamp"))
        if started is None:
            return float(self.request.timeout_seconds)
        now = parse_time(now_iso())
        assert now is not None
        return self.request.timeout_seconds - (now - started).total_seconds()

    async def update_status(self, **fields: Any) -> None:
        """Merge `fields` into the status without changing phase (optimistic: fails on a stale record)."""
        await self._patch_status(fields)

    async def transition(self, phase: Phase, message: str, *, passed: Sequence[Passed] = (), **fields: Any) -> Result:
        """Record the next phase with its time stamp; the caller's step is done. `passed` lists phases the step went
        through on the way (phase, time, message), so the history stays complete when one step does two.

        A terminal phase is recorded only with the pods that are alive right now (read from the API server):
        after the source was touched, zero of them is refused (controller/invariant.py)."""
        await self.controller.fault_point(f"after:{self.phase.value}")
        now = now_iso()
        transitions = [
            *self.status.get("phaseTransitions", []),
            *({"phase": p.value, "time": at, "message": text} for p, at, text in passed),
            {"phase": phase.value, "time": now, "message": message},
        ]
        patch: JSON = {"phase": phase.value, "message": message, "phaseTransitions": transitions, **fields}
        if self.phase is Phase.PENDING and "startedAt" not in self.status:
            patch["startedAt"] = now
        if phase.is_terminal:
            patch["finishedAt"] = now
            patch["podsAlive"] = await self._pods_alive_or_refuse(phase, fields)
        previous = self.phase
        await self._patch_status(patch)
        self.controller.reporter.phase_changed(
            migration=self.migration,
            source_pod=self.source_pod,
            target_pod=self.target_pod,
            previous=previous,
            phase=phase,
            message=message,
            annotate_source=self.annotate_source,
            passed=passed,
        )
        return Result.done() if phase.is_terminal else Result.again()

    async def _pods_alive_or_refuse(self, phase: Phase, fields: JSON) -> list[str]:
        names = [self.spec["podName"], *([self.status["targetPod"]] if self.status.get("targetPod") else [])]
        read = await asyncio.gather(*(self.live_pod(name) for name in dict.fromkeys(names)))
        found = [pod["metadata"]["name"] for pod in read if pod is not None and alive(pod)]
        # An owned pod's owner recreates it (controller/planning/owner.py): none alive may be its moment between.
        touched = bool(fields.get("sourceStopped") or self.status.get("sourceStopped")) and not self.status.get("owner")
        if not found and touched and not self._source_left_in_place(read[0]):
            log.error("invariant.violated", attempted_phase=phase.value, pods=names)
            raise InvariantViolation(
                f"refusing to record {phase.value}: none of {', '.join(names)} is alive after the source was stopped"
            )
        return found

    def _source_left_in_place(self, pod: JSON | None) -> bool:
        """The pod named like the source is there and nobody asked for its removal: whatever its phase (a trainer
        that failed under `restartPolicy: Never`, a kubelet's own eviction), it is the pod, not lost by this move.
        `sourceStopped` is written ahead of the eviction, so it alone does not say the source was touched."""
        return pod is not None and not pod["metadata"].get("deletionTimestamp")

    async def live_pod(self, name: str) -> JSON | None:
        """The pod read from the API server now (None: not there), for decisions a lagging cache must not make."""
        try:
            return await self.controller.api.get(PODS, name, namespace=self.namespace)
        except KubeApiError as error:
            if error.not_found:
                return None
            raise

    async def fail(self, reason: str, message: str, **fields: Any) -> Result:
        return await self.transition(Phase.FAILED, message, error={"reason": reason, "message": message}, **fields)

    async def _patch_status(self, fields: JSON) -> None:
        patch = {"metadata": {"resourceVersion": self.migration["metadata"]["resourceVersion"]}, "status": fields}
        updated = await self.controller.api.merge_patch(
            POD_MIGRATIONS, self.name, patch, namespace=self.namespace, subresource="status"
        )
        self.controller.state.migrations.write_through(updated)
        self.migration = updated

    async def annotate_source(self, status_text: str) -> None:
        """Tell people looking at the pod which migration is acting on it (best effort)."""
        pod = self.source_pod
        if pod is None:
            return
        annotations = {MIGRATION_ID_ANNOTATION: self.name, MIGRATION_STATUS_ANNOTATION: status_text}
        try:
            updated = await self.controller.api.merge_patch(
                PODS, pod["metadata"]["name"], {"metadata": {"annotations": annotations}}, namespace=self.namespace
            )
            self.controller.state.pods.write_through(updated)
        except KubeApiError as error:
            if not error.not_found:
                log.warning("migration.annotate_failed", migration_id=self.name, error=str(error))
        except TemporaryError as error:  # e.g. this replica is no longer leader: informative only, skip it
            log.info("migration.annotate_skipped", migration_id=self.name, error=str(error))
