"""One reconcile step's view of a migration: its record, the cluster, and the way to move it to another phase."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from ai_storage_orchestrator.controller.reconciler import Result
from ai_storage_orchestrator.controller.records import now_iso, parse_time, phase_of, request_of
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, PODS
from ai_storage_orchestrator.models import MigrationRequest, Phase

if TYPE_CHECKING:
    from ai_storage_orchestrator.controller.controller import MigrationController

JSON = dict[str, Any]
log = structlog.get_logger("ai_storage_orchestrator.migration")

MIGRATION_ID_ANNOTATION = "ai-storage.io/migration-id"
MIGRATION_STATUS_ANNOTATION = "ai-storage.io/migration-status"


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
        return bool(self.spec.get("cancelRequested"))

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

    async def transition(
        self, phase: Phase, message: str, *, passed: Sequence[tuple[Phase, str, str]] = (), **fields: Any
    ) -> Result:
        """Record the next phase with its time stamp; the caller's step is done. `passed` lists phases the step went
        through on the way (phase, time, message), so the history stays complete when one step does two."""
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
        previous = self.phase
        await self._patch_status(patch)
        self.controller.on_phase_changed(self, previous, phase, message)
        return Result.done() if phase.is_terminal else Result.again()

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
