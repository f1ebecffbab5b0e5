"""One way to plan a migration from the watch caches, shared by the REST API (validation, dry run) and the
Validating phase, so a dry run shows exactly what the migration will do."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from ai_storage_orchestrator.checkpoint import CheckpointSpec
from ai_storage_orchestrator.controller.catalog import CachedVolumeCatalog
from ai_storage_orchestrator.controller.planning import MigrationPlan, plan_migration
from ai_storage_orchestrator.controller.planning.choice import TargetChoice, choose_target
from ai_storage_orchestrator.models import MigrationRequest
from ai_storage_orchestrator.watchers.state import ClusterState
from ai_storage_orchestrator.watchers.store import JSON

Declared = Callable[[JSON], CheckpointSpec]


class Planner:
    def __init__(self, state: ClusterState, *, declared: Declared, capture_owned: bool = False) -> None:
        """`capture_owned`: the admission webhook captures owners' replacement pods, so owned pods can move."""
        self.state = state
        self.declared = declared
        self.capture_owned = capture_owned
        self.catalog = CachedVolumeCatalog(state)

    def plan(self, request: MigrationRequest, migration_id: str) -> tuple[MigrationPlan, CheckpointSpec]:
        """The plan, and the checkpoint the pod's annotations declare (raises the pre-flight errors).

        A request that leaves the target to the orchestrator (``request.chooses_target``) is planned twice: once to
        build the target pod, which the choice scores every node for, then for the chosen node exactly as a request
        that named it (``plan.target_choice`` says how it was chosen; ``plan.target_node`` is the node)."""
        pod = self.state.pod(request.pod_namespace, request.pod_name)
        declared = self.declared(pod) if pod is not None else CheckpointSpec()

        def plan_with(
            planned: MigrationRequest, checkpointed: Mapping[str, Sequence[str]], choice: TargetChoice | None
        ) -> MigrationPlan:
            resolved = not planned.chooses_target
            return plan_migration(
                request=planned,
                pod=pod,
                target_node=self.state.node(planned.target_node) if resolved else None,
                pods_on_target=self.state.pods_on_node(planned.target_node) if resolved else [],
                catalog=self.catalog,
                migration_id=migration_id,
                checkpointed=checkpointed,
                target_choice=choice,
                capture_owned=self.capture_owned,
            )

        def planned_for(planned: MigrationRequest, choice: TargetChoice | None = None) -> MigrationPlan:
            plan = plan_with(planned, declared.checkpointed_paths(), choice)
            if declared.artifacts and plan.checkpoint_volume is None:
                # Declared artifacts make their containers' results safe only if there is a shared volume to hold them.
                plan = plan_with(planned, {}, choice)
            return plan

        if not request.chooses_target:
            return planned_for(request), declared
        sketch = planned_for(request)  # the target pod, whatever the node: only nodeName depends on it
        choice = self.choose(request, sketch)
        chosen = choice.chosen
        final = request if chosen is None else replace(request, target_node=chosen.node)
        return planned_for(final, choice), declared

    def choose(self, request: MigrationRequest, sketch: MigrationPlan) -> TargetChoice:
        """Score every node in the cache for the sketch's target pod."""
        pod = self.state.pod(request.pod_namespace, request.pod_name) or {}
        nodes = list(self.state.nodes)
        return choose_target(
            pod=pod,
            target_pod=sketch.target_pod,
            nodes=nodes,
            pods_by_node={_name(n): self.state.pods_on_node(_name(n)) for n in nodes},
            source_node=request.source_node,
            volumes=sketch.target_volumes.values(),
        )


def _name(node: JSON) -> str:
    return str((node.get("metadata") or {}).get("name") or "")
