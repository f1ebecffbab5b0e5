"""One way to plan a migration from the watch caches, shared by the REST API (validation, dry run) and the
Validating phase, so a dry run shows exactly what the migration will do."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ai_storage_orchestrator.checkpoint import CheckpointSpec
from ai_storage_orchestrator.controller.catalog import CachedVolumeCatalog
from ai_storage_orchestrator.controller.planning import MigrationPlan, plan_migration
from ai_storage_orchestrator.models import MigrationRequest
from ai_storage_orchestrator.watchers.state import ClusterState
from ai_storage_orchestrator.watchers.store import JSON

Declared = Callable[[JSON], CheckpointSpec]


class Planner:
    def __init__(self, state: ClusterState, *, declared: Declared) -> None:
        self.state = state
        self.declared = declared
        self.catalog = CachedVolumeCatalog(state)

    def plan(self, request: MigrationRequest, migration_id: str) -> tuple[MigrationPlan, CheckpointSpec]:
        """The plan, and the checkpoint the pod's annotations declare (raises the pre-flight errors)."""
        pod = self.state.pod(request.pod_namespace, request.pod_name)
        declared = self.declared(pod) if pod is not None else CheckpointSpec()

        def plan_with(checkpointed: Mapping[str, Sequence[str]]) -> MigrationPlan:
            return plan_migration(
                request=request,
                pod=pod,
                target_node=self.state.node(request.target_node),
                pods_on_target=self.state.pods_on_node(request.target_node),
                catalog=self.catalog,
                migration_id=migration_id,
                checkpointed=checkpointed,
            )

        plan = plan_with(declared.checkpointed_paths())
        if declared.artifacts and plan.checkpoint_volume is None:
            # Declared artifacts make their containers' results safe only if there is a shared volume to hold them.
            plan = plan_with({})
        return plan, declared
