"""Make-before-break for a ReplicaSet's pod (a Deployment's): through surge, with the owner's own controller.

The orchestrator cannot add a pod of its own beside a ReplicaSet's (the ReplicaSet would adopt it and remove one of
the two, perhaps the new one). It asks the owner that holds the replica count - the Deployment when there is one,
else the ReplicaSet - for one replica more through its `scale` subresource; the ReplicaSet creates the pod, the
webhook captures it onto the target (admission/capture.py). Once that pod is Ready, the source gets the lowest
`controller.kubernetes.io/pod-deletion-cost` and the count goes back: the ReplicaSet removes the source itself,
so the desired count is never short and never long for more than the move. The count before the move is recorded
(write-ahead) before it changes, so a restarted orchestrator or a rollback puts back exactly that.

A HorizontalPodAutoscaler that owns the count may undo the surge; the move then waits and times out (rolled back)."""

from __future__ import annotations

from typing import Any

from ai_storage_orchestrator.controller.context import MigrationContext
from ai_storage_orchestrator.controller.reconciler import Result
from ai_storage_orchestrator.kube.resources import DEPLOYMENTS, PODS, REPLICA_SETS, Resource
from ai_storage_orchestrator.models import Phase

JSON = dict[str, Any]
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
LOWEST_DELETION_COST = str(-(2**31))  # an int32: the ReplicaSet removes this pod before any other
SCALED_RESOURCES: dict[str, Resource] = {"Deployment": DEPLOYMENTS, "ReplicaSet": REPLICA_SETS}


def surging(ctx: MigrationContext) -> bool:
    return bool((ctx.status.get("owner") or {}).get("surge"))


def _scaled(ctx: MigrationContext) -> JSON | None:
    scaled = (ctx.status.get("owner") or {}).get("scaled")
    return dict(scaled) if scaled else None


async def _count_holder(ctx: MigrationContext) -> JSON:
    """The object whose `scale` sets the ReplicaSet's count (live read): its Deployment, or the ReplicaSet itself."""
    owner = ctx.status["owner"]
    replica_set = await ctx.controller.api.get(REPLICA_SETS, owner["name"], namespace=ctx.namespace)
    references = replica_set["metadata"].get("ownerReferences") or []
    parent = next((o for o in references if o.get("controller") and o.get("kind") == "Deployment"), None)
    holder = replica_set
    if parent is not None:
        holder = await ctx.controller.api.get(DEPLOYMENTS, parent["name"], namespace=ctx.namespace)
    replicas = int((holder.get("spec") or {}).get("replicas", 1))
    return {
        "kind": holder.get("kind") or ("Deployment" if parent else "ReplicaSet"),
        "name": holder["metadata"]["name"],
        "from": replicas,
    }


async def _scale(ctx: MigrationContext, scaled: JSON, replicas: int) -> None:
    resource = SCALED_RESOURCES[str(scaled["kind"])]
    patch = {"spec": {"replicas": replicas}}
    await ctx.controller.api.merge_patch(resource, scaled["name"], patch, namespace=ctx.namespace, subresource="scale")


async def scale_up(ctx: MigrationContext) -> Result:
    """CreatingTarget: one replica more (the count before recorded first)."""
    if ctx.cancel_requested:
        return await ctx.transition(Phase.ROLLING_BACK, "cancelled; rolling back")
    scaled = _scaled(ctx)
    if scaled is None:
        scaled = await _count_holder(ctx)
        await ctx.update_status(owner={**ctx.status["owner"], "scaled": scaled})
    await _scale(ctx, scaled, int(scaled["from"]) + 1)
    return await ctx.transition(
        Phase.WAITING_FOR_TARGET,
        f"{scaled['kind']} '{scaled['name']}' scaled {scaled['from']} → {int(scaled['from']) + 1}: its new pod is"
        f" captured onto {ctx.spec['targetNode']}",
    )


async def remove_source(ctx: MigrationContext, source: JSON) -> None:
    """RemovingSource: the source first in the ReplicaSet's removal order, then the count back."""
    scaled = _scaled(ctx)
    assert scaled is not None, "scaled up before the target was created"
    if not ctx.status.get("sourceStopped"):
        await ctx.update_status(sourceStopped=True)  # write-ahead, as for any removal of the source
    await _lowest_cost(ctx, source)
    await _scale(ctx, scaled, int(scaled["from"]))


async def roll_back(ctx: MigrationContext, target: JSON | None) -> None:
    """The count back, with the captured pod (if any) first in the removal order; nothing once the source was
    being removed (the count is back already)."""
    scaled = _scaled(ctx)
    if scaled is None or ctx.status.get("sourceStopped"):
        return
    if target is not None:
        await _lowest_cost(ctx, target)
    await _scale(ctx, scaled, int(scaled["from"]))


async def _lowest_cost(ctx: MigrationContext, pod: JSON) -> None:
    if (pod["metadata"].get("annotations") or {}).get(DELETION_COST_ANNOTATION) == LOWEST_DELETION_COST:
        return
    patch = {"metadata": {"annotations": {DELETION_COST_ANNOTATION: LOWEST_DELETION_COST}}}
    updated = await ctx.controller.api.merge_patch(PODS, pod["metadata"]["name"], patch, namespace=ctx.namespace)
    ctx.controller.state.pods.write_through(updated)
