"""The whole pre-flight of a migration, pure: from raw objects to a ``MigrationPlan`` with every check evaluated.

Every rule runs (nothing short-circuits) so a dry run shows every problem at once; ``raise_for_failures`` turns the
first failure, in ``checks.REASON_PRIORITY`` order, into the matching API error (404 / 409 / 422).

The strategy ``auto`` resolves to is decided in ``strategy.resolve_strategy`` (see its module docstring): in short
``checkpoint-restart`` when a container that runs on the target writes a persistent volume, a checkpoint hook is
declared, or a volume is a ReadWriteOnce PVC; ``make-before-break`` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ai_storage_orchestrator.controller.planning import checks as codes
from ai_storage_orchestrator.controller.planning.analysis import (
    NO_CHECKPOINTED_PATHS,
    analyse_containers,
    nothing_to_run,
)
from ai_storage_orchestrator.controller.planning.checks import Check, check
from ai_storage_orchestrator.controller.planning.choice import TargetChoice
from ai_storage_orchestrator.controller.planning.containers import container_states
from ai_storage_orchestrator.controller.planning.fit import node_fit_checks
from ai_storage_orchestrator.controller.planning.owner import (
    controlling_owner,
    owned_strategy,
    owner_refusal,
    owner_sentence,
)
from ai_storage_orchestrator.controller.planning.strategy import resolve_strategy, rwo_volumes
from ai_storage_orchestrator.controller.planning.targetpod import build_target_pod, requests_summary
from ai_storage_orchestrator.controller.planning.volumes import (
    CheckpointVolume,
    VolumeCatalog,
    VolumeInfo,
    choose_checkpoint_volume,
    classify_pod_volumes,
)
from ai_storage_orchestrator.errors import Conflict, NotFound, OrchestratorError, Unprocessable
from ai_storage_orchestrator.models import Action, ContainerDecision, MigrationRequest, Resources, Strategy

_ERRORS: dict[str, type[OrchestratorError]] = {
    codes.POD_NOT_FOUND: NotFound,
    codes.POD_TERMINATING: Conflict,
    codes.POD_NOT_ON_SOURCE_NODE: Conflict,
}
_PRIORITY = {reason: index for index, reason in enumerate(codes.REASON_PRIORITY)}


@dataclass(frozen=True)
class MigrationPlan:
    decisions: list[ContainerDecision]
    strategy: Strategy
    strategy_reason: str
    target_pod: dict[str, Any]
    requests_before: Resources
    requests_after: Resources
    checks: list[Check]
    checkpoint_volume: CheckpointVolume | None
    volumes: dict[str, VolumeInfo]
    # Sentences on what is accepted but cannot be done as asked (the migration object's `warnings`).
    warnings: list[str] = field(default_factory=list)
    # How the orchestrator chose the target node (a request without one), None for a named target.
    target_choice: TargetChoice | None = None
    # The pod's controlling owner (planning/owner.py), whose replacement becomes the target; None for a bare pod.
    owner: dict[str, Any] | None = None

    @property
    def failures(self) -> list[Check]:
        """Failed checks, most important first."""
        return sorted((c for c in self.checks if not c.passed), key=lambda c: _PRIORITY.get(c.reason, len(_PRIORITY)))

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def target_pod_name(self) -> str:
        return str(self.target_pod["metadata"]["name"])

    @property
    def target_volumes(self) -> dict[str, VolumeInfo]:
        """The pod's volumes that the target pod keeps (those only skipped containers used are left out)."""
        kept = {str(v.get("name")) for v in self.target_pod["spec"].get("volumes") or []}
        return {name: info for name, info in self.volumes.items() if name in kept}

    def raise_for_failures(self) -> None:
        """Raise the error of the first failure (NotFound / Conflict / Unprocessable); details list every failure."""
        failures = self.failures
        if not failures:
            return
        first = failures[0]
        details = {**first.details, "check": first.name, "failed_checks": [c.to_json() for c in failures]}
        raise _ERRORS.get(first.reason, Unprocessable)(first.message, reason=first.reason, details=details)

    def to_json(self) -> dict[str, Any]:
        chosen = {} if self.target_choice is None else {"target_choice": self.target_choice.to_json()}
        return {
            "strategy": self.strategy.value,
            "strategy_reason": self.strategy_reason,
            "new_pod_name": self.target_pod_name,
            "containers": [
                {"name": d.name, "kind": d.kind.value, "state": d.state, "action": d.action.value, "reason": d.reason}
                for d in self.decisions
            ],
            "resources": {"before": self.requests_before.to_json(), "after": self.requests_after.to_json()},
            "checkpoint_volume": self.checkpoint_volume._asdict() if self.checkpoint_volume else None,
            "checks": [c.to_json() for c in self.checks],
            "ok": self.ok,
            "warnings": list(self.warnings),
            **chosen,
        }


def _pod_ref(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def _pod_checks(
    request: MigrationRequest, pod: Mapping[str, Any], *, unresolved: bool = False, capture_owned: bool = False
) -> list[Check]:
    """``unresolved``: the orchestrator was to choose the target and found none (the choice's check says why);
    ``capture_owned``: an owned pod can move (its owner's replacement is captured, planning/owner.py)."""
    meta = pod.get("metadata") or {}
    ref = _pod_ref(pod)
    deleting = meta.get("deletionTimestamp")
    node = (pod.get("spec") or {}).get("nodeName")
    phase = (pod.get("status") or {}).get("phase")
    owner = controlling_owner(pod)
    refusal = None if owner is None else owner_refusal(owner, node=str(node), capture=capture_owned)
    return [
        check(
            "pod_not_terminating",
            codes.POD_TERMINATING,
            ok=not deleting,
            message=f"pod {ref} is being deleted (since {deleting})" if deleting else f"pod {ref} is not being deleted",
            deletion_timestamp=deleting,
        ),
        check(
            "pod_on_source_node",
            codes.POD_NOT_ON_SOURCE_NODE,
            ok=node == request.source_node,
            message=f"pod {ref} is on node {node or '(none: not scheduled)'}, source node is {request.source_node}",
            actual_node=node,
            source_node=request.source_node,
        ),
        check(
            "source_differs_from_target",
            codes.SOURCE_EQUALS_TARGET,
            ok=request.source_node != request.target_node,
            message=f"source and target node are both {request.target_node}"
            if request.source_node == request.target_node
            else f"moving from {request.source_node} to "
            + ("a node the orchestrator chooses" if unresolved else request.target_node),
        ),
        check(
            "pod_running",
            codes.POD_NOT_RUNNING,
            ok=phase not in ("Succeeded", "Failed"),
            message=f"pod {ref} has already finished (phase {phase}): there is nothing to move"
            if phase in ("Succeeded", "Failed")
            else f"pod {ref} is in phase {phase}",
            phase=phase,
        ),
        check(
            "not_owned_by_controller",
            codes.OWNED_BY_CONTROLLER,
            ok=refusal is None,
            message=f"pod {ref}: {refusal}"
            if refusal
            else (f"pod {ref} is {owner_sentence(owner)}" if owner else f"pod {ref} has no controlling owner"),
            owner=owner,
        ),
    ]


def _node_checks(
    request: MigrationRequest,
    node: Mapping[str, Any] | None,
    target_pod: Mapping[str, Any],
    pods_on_target: Iterable[Mapping[str, Any]],
    target_volumes: Mapping[str, VolumeInfo],
    target_choice: TargetChoice | None,
) -> list[Check]:
    """A chosen target's checks follow the choice's; when nothing was chosen the choice's failed check stands alone."""
    name = request.target_node
    if target_choice is not None:
        chosen = target_choice.as_check(f"{request.pod_namespace}/{request.pod_name}")
        if target_choice.chosen is None:
            return [chosen]
        return [chosen, *_node_checks(request, node, target_pod, pods_on_target, target_volumes, None)]
    if node is None:
        return [
            check(
                "target_node_exists",
                codes.TARGET_NODE_NOT_FOUND,
                ok=False,
                message=f"target node {name} does not exist",
                node=name,
            )
        ]
    exists = check("target_node_exists", codes.TARGET_NODE_NOT_FOUND, ok=True, message=f"node {name} exists")
    return [exists, *node_fit_checks(node, target_pod, pods_on_target, target_volumes.values())]


def _volume_checks(
    request: MigrationRequest,
    volumes: Mapping[str, VolumeInfo],
    target_volumes: Mapping[str, VolumeInfo],
    strategy: Strategy,
) -> list[Check]:
    node_bound = [v for v in volumes.values() if v.node_bound]
    rwo = rwo_volumes(target_volumes) if strategy is Strategy.MAKE_BEFORE_BREAK else []
    shared = [v.name for v in volumes.values() if v.shared]
    return [
        check(
            "volumes_portable",
            codes.UNSAFE_VOLUME,
            ok=not node_bound,
            message=(
                f"{', '.join(v.describe() for v in node_bound)} keeps its data on node {request.source_node}'s disk:"
                f" it cannot follow the pod to {request.target_node}"
            )
            if node_bound
            else "no volume is tied to the source node's disk",
            volumes=[{"name": v.name, "kind": v.kind, "claim": v.claim_name} for v in node_bound],
        ),
        check(
            "rwo_volume_strategy",
            codes.RWO_VOLUME_REQUIRES_CHECKPOINT_RESTART,
            ok=not rwo,
            message=(
                f"{', '.join(v.describe() for v in rwo)} can be attached to one node at a time: make-before-break would"
                " need it on both nodes; use checkpoint-restart (or auto)"
            )
            if rwo
            else "no ReadWriteOnce volume conflicts with the strategy",
            volumes=[v.name for v in rwo],
        ),
        # Informative only: preserve_pv without a shared volume is accepted with a warning (see _warnings).
        check(
            "shared_volume_present",
            codes.NO_SHARED_VOLUME,
            ok=True,
            message="shared volume(s): " + ", ".join(shared)
            if shared
            else (
                "no shared persistent volume: nothing to preserve (accepted with a warning)"
                if request.preserve_pv
                else "preserve_pv not requested"
            ),
            shared_volumes=shared,
        ),
    ]


def _warnings(
    request: MigrationRequest,
    pod: Mapping[str, Any],
    volumes: Mapping[str, VolumeInfo],
    decisions: Sequence[ContainerDecision],
) -> list[str]:
    """preserve_pv on a pod without a shared volume: accepted (the seed's clients send it for any pod), said here.
    The decision table already runs again every completed container whose results are not on shared storage."""
    if not request.preserve_pv or any(v.shared for v in volumes.values()):
        return []
    states = {state.name: state for state in container_states(pod)}
    rerun = [d.name for d in decisions if d.action is not Action.SKIP and d.name in states and states[d.name].completed]
    again = (
        f"; completed container(s) whose results would be lost run again on the target: {', '.join(rerun)}"
        if rerun
        else "; no completed container's results are at stake"
    )
    return [
        f"preserve_pv was requested but pod {_pod_ref(pod)} has no shared persistent volume (NFS or ReadWriteMany"
        f" PVC): there is nothing to preserve{again}"
    ]


def plan_migration(
    *,
    request: MigrationRequest,
    pod: Mapping[str, Any] | None,
    target_node: Mapping[str, Any] | None,
    pods_on_target: Iterable[Mapping[str, Any]],
    catalog: VolumeCatalog,
    migration_id: str,
    checkpointed: Mapping[str, Sequence[str]] = NO_CHECKPOINTED_PATHS,
    target_choice: TargetChoice | None = None,
    capture_owned: bool = False,
) -> MigrationPlan:
    """Analyse the pod, build the target pod and run every pre-flight check.

    ``target_choice``: the node was chosen by the orchestrator (``choice.choose_target``); ``request.target_node``
    is then the chosen node, or ``AUTO_TARGET`` when none fits (the plan then fails with ``no_target_node``).

    Raises ``NotFound`` (``pod_not_found``) when ``pod`` is None: without a pod there is nothing to plan. Every other
    problem is a failed ``Check`` in the plan; call ``raise_for_failures()`` to turn it into an error.
    """
    if pod is None:
        raise NotFound(
            f"pod {request.pod_namespace}/{request.pod_name} not found",
            reason=codes.POD_NOT_FOUND,
            details={"pod_namespace": request.pod_namespace, "pod_name": request.pod_name},
        )
    volumes = classify_pod_volumes(pod, catalog)
    decisions = analyse_containers(pod, volumes, checkpointed=checkpointed)
    target_pod = build_target_pod(pod, decisions, migration_id=migration_id, target_node=request.target_node)
    before, after = requests_summary(pod, target_pod)
    kept = {str(v.get("name")) for v in target_pod["spec"].get("volumes") or []}
    target_volumes = {name: info for name, info in volumes.items() if name in kept}
    strategy, strategy_reason = resolve_strategy(request.strategy, pod, target_pod, target_volumes)
    owner = controlling_owner(pod)
    if owner is not None and capture_owned:
        strategy, strategy_reason = owned_strategy(request.strategy, owner, strategy)
    still_to_run = not nothing_to_run(decisions)
    all_checks = [
        *_pod_checks(
            request,
            pod,
            unresolved=target_choice is not None and target_choice.chosen is None,
            capture_owned=capture_owned,
        ),
        *_node_checks(request, target_node, target_pod, pods_on_target, target_volumes, target_choice),
        *_volume_checks(request, volumes, target_volumes, strategy),
        check(
            "something_to_run",
            codes.NOTHING_TO_RUN,
            ok=still_to_run,
            message=f"{sum(d.action is not Action.SKIP for d in decisions)} container(s) run on the target"
            if still_to_run
            else "every container has completed and its results are safe: the target pod would have nothing to run",
            containers=[{"name": d.name, "action": d.action.value, "reason": d.reason} for d in decisions],
        ),
    ]
    return MigrationPlan(
        decisions=decisions,
        strategy=strategy,
        strategy_reason=strategy_reason,
        target_pod=target_pod,
        requests_before=before,
        requests_after=after,
        checks=all_checks,
        checkpoint_volume=choose_checkpoint_volume(pod, volumes),
        volumes=volumes,
        warnings=_warnings(request, pod, volumes, decisions),
        target_choice=target_choice,
        owner=owner,
    )
