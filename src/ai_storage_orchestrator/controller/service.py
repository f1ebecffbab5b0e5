"""What the REST API, the CLI and the annotation trigger ask of the controller: submit, dry-run, read, list and
cancel migrations. Reads come from the watch caches; a submit validates against them before it creates the
PodMigration that the controller then carries out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ai_storage_orchestrator.controller.planner import Planner
from ai_storage_orchestrator.controller.planning import MigrationPlan
from ai_storage_orchestrator.controller.records import (
    active_moves_of,
    busy_message,
    migration_resource,
    new_migration_id,
    phase_of,
    to_api,
)
from ai_storage_orchestrator.errors import Conflict, InvalidRequest, NotFound, NotReady, TemporaryError
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, KubeApi
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import MigrationRequest, Phase, Status
from ai_storage_orchestrator.watchers.state import ClusterState

JSON = dict[str, Any]

# Past these phases the source pod is being (or has been) removed: a cancel can no longer roll back.
_TOO_LATE_TO_CANCEL = frozenset({Phase.REMOVING_SOURCE})
# A cancel re-reads a record that changed under it (a status write) this many times before it gives up (503).
CANCEL_ATTEMPTS = 5


class MigrationService:
    def __init__(self, *, api: KubeApi, state: ClusterState, metrics: Metrics, planner: Planner) -> None:
        self.api = api
        self.state = state
        self.metrics = metrics
        self.planner = planner

    def ready(self) -> tuple[bool, str]:
        if not self.state.synced:
            waiting = [store.kind for store in self.state.stores if not store.synced]
            return False, f"caches not synced yet: {', '.join(waiting)}"
        outages = self.state.outages()
        if outages:
            return False, "; ".join(outages)
        return True, "caches synced"

    def _require_ready(self) -> None:
        ready, why = self.ready()
        if not ready:
            raise NotReady(f"the orchestrator is not ready: {why}", reason="not_ready")

    def plan(self, request: MigrationRequest, migration_id: str) -> MigrationPlan:
        plan, _declared = self.planner.plan(request, migration_id)
        return plan

    def active_migration_of(self, namespace: str, pod: str) -> JSON | None:
        """An active migration moving the pod, or whose target the pod is (`active_moves_of`)."""
        return next(iter(active_moves_of(self.state, namespace, pod)), None)

    def dry_run(self, request: MigrationRequest) -> JSON:
        """The full plan, every check with its result, without touching the cluster. A request that leaves the target
        to the orchestrator shows the choice (``target_choice``) and the plan for the chosen node."""
        self._require_ready()
        plan = self.plan(request, new_migration_id())
        request = _resolved(request, plan)
        active = self.active_migration_of(request.pod_namespace, request.pod_name)
        result = plan.to_json()
        result["dry_run"] = True
        result["active_migration"] = active["metadata"]["name"] if active else None
        result["request"] = {
            "pod_name": request.pod_name,
            "pod_namespace": request.pod_namespace,
            "source_node": request.source_node,
            "target_node": request.target_node,
            "preserve_pv": request.preserve_pv,
            "timeout_seconds": request.timeout_seconds,
            "strategy": request.strategy.value,
            "ignore_pdb": request.ignore_pdb,
        }
        return result

    async def submit(self, request: MigrationRequest, *, request_id: str | None = None) -> JSON:
        self._require_ready()
        migration_id = new_migration_id()
        plan = self.plan(request, migration_id)
        plan.raise_for_failures()
        request = _resolved(request, plan)  # the PodMigration names a concrete node: later phases plan for it
        active = self.active_migration_of(request.pod_namespace, request.pod_name)
        if active is not None:
            other = active["metadata"]["name"]
            raise Conflict(
                busy_message(active, request.pod_namespace, request.pod_name),
                reason="migration_in_progress",
                details={"migration_id": other, "phase": phase_of(active).value},
            )
        # Warnings (preserve_pv with nothing shared...) are recorded with it, so every later GET shows them.
        body = migration_resource(
            request,
            migration_id,
            request_id=request_id,
            warnings=plan.warnings,
            target_choice=None if plan.target_choice is None else plan.target_choice.to_json(),
        )
        try:
            created = await self._record(body, request.pod_namespace)
        except KubeApiError as error:
            if error.status == 422:  # the CRD's schema refused it: retrying cannot help
                raise InvalidRequest(
                    f"the API server refused the migration record: {error.message}", reason="invalid_request"
                ) from error
            raise TemporaryError(
                f"could not record the migration: {error.message}", reason="api_unavailable"
            ) from error
        self.state.migrations.write_through(created)
        self.metrics.migrations_started_total.labels(trigger=request.triggered_by).inc()
        return to_api(created)

    async def _record(self, body: JSON, namespace: str) -> JSON:
        """Create the PodMigration. Its name is a fresh random id, so AlreadyExists can only mean that a retried
        create (kube/retrying.py) had already succeeded: read that record back."""
        try:
            return await self.api.create(POD_MIGRATIONS, body, namespace=namespace)
        except KubeApiError as error:
            if not error.already_exists:
                raise
            return await self.api.get(POD_MIGRATIONS, body["metadata"]["name"], namespace=namespace)

    def get(self, migration_id: str) -> JSON:
        migration = self.state.find_migration(migration_id)
        if migration is None:
            raise NotFound(f"no migration with id {migration_id}", reason="migration_not_found")
        return to_api(migration)

    def list(self, *, status: Status | None = None, namespace: str | None = None, pod: str | None = None) -> list[JSON]:
        result = []
        for migration in self.state.migrations:
            if namespace and migration["metadata"].get("namespace") != namespace:
                continue
            if pod and (migration.get("spec") or {}).get("podName") != pod:
                continue
            if status and phase_of(migration).status is not status:
                continue
            result.append(to_api(migration))
        # Newest first; the namespace only orders two records created in the same second under the same id. The
        # REST API's `continue` tokens page through this order (api.paging.key_of): keep the two in step.
        result.sort(
            key=lambda m: (m["created_at"] or "", m["migration_id"] or "", m["pod_namespace"] or ""), reverse=True
        )
        return result

    async def cancel(self, migration_id: str, *, namespace: str | None = None) -> JSON:
        """Ask the controller to stop and roll back; `namespace` confines the lookup (the annotation trigger).

        The mark is written on the very version whose phase was checked (a resourceVersion precondition): a record
        that moved on meanwhile (into RemovingSource, say) is read again and checked again, never marked cancelled
        by a 202 the move could no longer honour."""
        if namespace is None:
            migration = self.state.find_migration(migration_id)
        else:
            migration = self.state.migration(namespace, migration_id)
        for _attempt in range(CANCEL_ATTEMPTS):
            _check_cancellable(migration, migration_id)
            assert migration is not None
            try:
                updated = await self.api.merge_patch(
                    POD_MIGRATIONS,
                    migration_id,
                    {
                        "metadata": {"resourceVersion": migration["metadata"]["resourceVersion"]},
                        "spec": {"cancelRequested": True},
                    },
                    namespace=migration["metadata"]["namespace"],
                )
            except KubeApiError as error:
                if error.not_found:
                    raise NotFound(f"no migration with id {migration_id}", reason="migration_not_found") from error
                if not error.conflict:
                    raise TemporaryError(f"could not cancel: {error.message}", reason="api_unavailable") from error
                migration = await self._read_live(migration)
                continue
            self.state.migrations.write_through(updated)
            return to_api(updated)
        raise TemporaryError(
            f"migration {migration_id} kept changing while it was being cancelled; try again", reason="api_unavailable"
        )

    async def _read_live(self, migration: JSON) -> JSON | None:
        metadata = migration["metadata"]
        try:
            return await self.api.get(POD_MIGRATIONS, metadata["name"], namespace=metadata["namespace"])
        except KubeApiError as error:
            if error.not_found:
                return None
            raise TemporaryError(f"could not cancel: {error.message}", reason="api_unavailable") from error


def _check_cancellable(migration: JSON | None, migration_id: str) -> None:
    if migration is None:
        raise NotFound(f"no migration with id {migration_id}", reason="migration_not_found")
    phase = phase_of(migration)
    if phase.is_terminal:
        raise Conflict(
            f"migration {migration_id} already ended ({phase.value}); nothing to cancel",
            reason="migration_finished",
            details={"phase": phase.value},
        )
    if phase in _TOO_LATE_TO_CANCEL:
        raise Conflict(
            f"migration {migration_id} is removing the source pod; its target is Ready and it cannot be undone",
            reason="migration_finishing",
            details={"phase": phase.value},
        )


def _resolved(request: MigrationRequest, plan: MigrationPlan) -> MigrationRequest:
    """The request with the node the orchestrator chose, when it chose one."""
    chosen = None if plan.target_choice is None else plan.target_choice.chosen
    return request if chosen is None else replace(request, target_node=chosen.node)
