"""The phase table: one idempotent step per phase, read from the caches, never waiting by sleeping.

make-before-break:   Pending → Validating → [Checkpointing] → CreatingTarget → WaitingForTarget → RemovingSource
                     → Completed
checkpoint-restart:  Pending → Validating → Checkpointing → StoppingSource → CreatingTarget → WaitingForTarget
                     → Completed
Any failure or cancel before the point of no return → RollingBack → Failed / Cancelled.

Rules that hold in every phase, also across restarts (the invariant itself: controller/invariant.py): the target
pod has a deterministic name (creating it twice finds it already there); the source is removed through the Eviction
API (its PodDisruptionBudgets apply) with its recorded UID as precondition, only after `sourceStopped` is recorded
(write-ahead: a cancel or crash at any instant knows a removal may be under way); a make-before-break source goes
only while a live read shows the Ready target with the recorded UID; a checkpoint-restart source is stopped only
after the checkpoint is on the shared volume, and if its target then fails, or the move is cancelled while the
source is still terminating, the pod is recreated on the source node from the recorded spec once the old one is
gone."""

from __future__ import annotations

import asyncio
import copy
import posixpath
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ai_storage_orchestrator.bodies import Body, Node, Pod
from ai_storage_orchestrator.checkpoint import CheckpointJob, CheckpointSpec, without_checkpoint
from ai_storage_orchestrator.checkpoint.layout import MIGRATION_ID_PATTERN
from ai_storage_orchestrator.checkpoint.restoring import RESTORE_CONTAINER_PREFIX
from ai_storage_orchestrator.checkpoint.saving import EXEC_UNAVAILABLE
from ai_storage_orchestrator.controller import surge
from ai_storage_orchestrator.controller.context import MigrationContext, log
from ai_storage_orchestrator.controller.invariant import (
    admitted,
    containers_stopped,
    refused,
    serving,
    target_unfit_to_replace_source,
    terminating,
)
from ai_storage_orchestrator.controller.knock import GateKnocker
from ai_storage_orchestrator.controller.planning.checks import TARGET_NODE_CORDONED
from ai_storage_orchestrator.controller.planning.gate import (
    gate_running,
    gate_state,
    gated,
    missing_images,
    new_token,
    prewarm_blocker,
    released,
    token_digest,
    with_gate,
)
from ai_storage_orchestrator.controller.planning.marking import (
    labelled_move,
    made_by,
    mark_containers,
    move_of,
    unmark_containers,
)
from ai_storage_orchestrator.controller.planning.naming import base_name
from ai_storage_orchestrator.controller.planning.owner import controlling_owner, job_refusal, replaces_source
from ai_storage_orchestrator.controller.reconciler import Result
from ai_storage_orchestrator.controller.records import busy_message, now_iso, parse_time, phase_of
from ai_storage_orchestrator.controller.reporting import Passed
from ai_storage_orchestrator.conventions import (
    CHECKPOINT_PATH_ANNOTATION,
    HANDOFF_ANNOTATION,
    MIGRATION_ID_LABEL,
    RESTORED_BY_ANNOTATION,
)
from ai_storage_orchestrator.errors import OrchestratorError, TemporaryError
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import JOBS, PODS
from ai_storage_orchestrator.models import Phase, Strategy

JSON = dict[str, Any]
Step = Callable[[MigrationContext], Awaitable[Result]]
VALIDATING_MESSAGE = "validating the request against the cluster"

# Container states that mean the target will not become Ready by waiting.
FATAL_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
# Waiting reasons of the gate that say the pod's image is not there: the target cannot start, the migration fails.
# Any other trouble of the gate alone (an image without `sh`, say) means only that this pod cannot be pre-warmed.
IMAGE_WAITING_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
DELETE_WAIT_SECONDS = 30.0
DISRUPTION_BUDGET_RETRY_SECONDS = 5.0  # PodDisruptionBudgets are not watched: look again on this period


EVICTION_SETTLE_SECONDS = 10.0


def eviction_under_way(pod: JSON, *, now: datetime) -> bool:
    """The Eviction API has marked the pod (condition DisruptionTarget, reason EvictionByEvictionAPI) within the last
    few seconds: its deletion, written by the same request, is on its way to the cache. Asking again would only add
    a write; a mark older than that (or from a skewed clock) no longer holds anything back."""
    for condition in Pod(pod).status.get("conditions") or []:
        if (
            condition.get("type") == "DisruptionTarget"
            and condition.get("status") == "True"
            and condition.get("reason") == "EvictionByEvictionAPI"
        ):
            marked = parse_time(condition.get("lastTransitionTime"))
            return marked is not None and abs((now - marked).total_seconds()) < EVICTION_SETTLE_SECONDS
    return False


def _removal_asked(pod: JSON) -> bool:
    return terminating(pod) or eviction_under_way(pod, now=datetime.now(UTC))


def _node_ready(node: JSON | None) -> bool:
    return node is not None and Node(node).ready


def target_problem(pod: JSON, node: JSON | None) -> tuple[str, str] | None:
    """Why the target will never become Ready, or None while it still may."""
    target = Pod(pod)
    if target.phase == "Failed":
        reason, message = target.status.get("reason") or "", target.status.get("message") or ""
        return "target_failed", f"target pod {target.name} failed: {reason} {message}"
    for container in [*target.init_container_statuses, *target.container_statuses]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING_REASONS:
            said = f"container {container.get('name')} of target pod {target.name} is {waiting['reason']}"
            return "target_container_error", f"{said}: {waiting.get('message') or ''}".strip(" :")
    if not _node_ready(node):
        return "target_node_lost", f"target node {target.node_name} is gone or not Ready"
    return None


async def pending(ctx: MigrationContext) -> Result:
    if ctx.cancel_requested:
        return await ctx.transition(Phase.CANCELLED, "cancelled before it started; nothing was changed")
    if not MIGRATION_ID_PATTERN.match(ctx.name):
        return await ctx.fail(
            "invalid_migration_name",
            f"PodMigration name {ctx.name!r} cannot be used: it labels the target pod and names the checkpoint's"
            " directory, so it must be at most 63 lowercase letters, digits and '-' (no '.'); nothing was changed",
        )
    other = ctx.controller.older_active_migration(ctx)
    if other is not None:
        return await ctx.fail("migration_in_progress", busy_message(other, ctx.namespace, ctx.spec["podName"]))
    # Workers admit one migration at a time: the check and the recorded start must not interleave, or two
    # migrations could both see a free slot.
    async with ctx.controller.admission:
        other = ctx.controller.older_active_migration(ctx)  # again: one may have started while this step waited
        if other is not None:
            return await ctx.fail("migration_in_progress", busy_message(other, ctx.namespace, ctx.spec["podName"]))
        blocker = ctx.controller.capacity_blocker(ctx) or ctx.controller.owner_blocker(ctx)
        if not blocker:  # validation reads only the caches: it is done in this step, recorded in one write
            return await _plan(ctx, passed=[(Phase.VALIDATING, now_iso(), VALIDATING_MESSAGE)])
    if ctx.seconds_left() <= 0:  # the deadline is the whole move's: it does not start late
        return await ctx.fail(
            "queue_timeout", f"still queued after {ctx.request.timeout_seconds}s ({blocker}); nothing was changed"
        )
    if ctx.status.get("message") != blocker:
        await ctx.update_status(message=blocker)
    return Result.after(min(5.0, max(0.1, ctx.seconds_left())))  # woken earlier when another migration ends


async def validating(ctx: MigrationContext) -> Result:
    """A record left in Validating (by an orchestrator of an earlier version, or a crash mid-step): plan it now."""
    if ctx.cancel_requested:
        return await ctx.transition(Phase.CANCELLED, "cancelled during validation; nothing was changed")
    return await _plan(ctx)


async def _plan(ctx: MigrationContext, *, passed: Sequence[Passed] = ()) -> Result:
    """Plan the move from the caches and record the plan with the next phase in one status write. Where the source
    node is known to lack exec, the checkpoint's skip is recorded in the same write (Checkpointing passed)."""
    checkpointer = ctx.controller.checkpointer
    try:
        plan, declared = ctx.controller.planner.plan(ctx.request, ctx.name)
    except OrchestratorError as error:
        return await ctx.fail(error.reason, error.message)
    containers = [
        {"name": d.name, "kind": d.kind.value, "state": d.state, "action": d.action.value, "reason": d.reason}
        for d in plan.decisions
    ]
    if not plan.ok:
        first = plan.failures[0]
        return await ctx.fail(first.reason, first.message, containers=containers)
    refusal = await _owner_job_refusal(ctx, plan.owner)
    if refusal is not None:
        return await ctx.fail("job_would_fail", f"{refusal}; nothing was changed", containers=containers)
    source = ctx.source_pod
    assert source is not None  # a plan without failures has found the pod
    freed = plan.requests_before - plan.requests_after
    fields: JSON = {
        "strategy": plan.strategy.value,
        "strategyReason": plan.strategy_reason,
        "containers": containers,
        "targetPod": plan.target_pod_name,
        "targetPodManifest": plan.target_pod,
        "sourcePodUID": source["metadata"].get("uid"),
        "resources": {
            "before": plan.requests_before.to_json(),
            "after": plan.requests_after.to_json(),
            "freed": freed.to_json(),
        },
    }
    blocker = prewarm_blocker(
        strategy=plan.strategy.value,
        read_write_once=[v.claim_name or v.name for v in plan.volumes.values() if v.read_write_once],
    )
    if blocker is None and not ctx.controller.prewarm:
        blocker = "pre-warming is off (--no-prewarm)"
    if plan.owner is not None:
        # The owner makes the target once the source goes; its token opens the gate the webhook may add.
        blocker = f"{plan.owner['kind']} '{plan.owner['name']}' creates the target pod once the source is evicted"
        surges = plan.strategy is Strategy.MAKE_BEFORE_BREAK
        if surges:
            blocker = f"make-before-break through {plan.owner['kind']} '{plan.owner['name']}': no gate needed"
        fields.update(owner={**plan.owner, "token": new_token(ctx.name), "surge": surges}, targetPod=None)
    fields["prewarm"] = {"token": new_token(ctx.name)} if blocker is None else {"skipped": blocker}
    volume = plan.checkpoint_volume._asdict() if plan.checkpoint_volume is not None else None
    if volume is not None:
        fields["checkpoint"] = {"volume": volume, "saved": False}
    needs_checkpoint = ctx.request.preserve_pv or plan.strategy is Strategy.CHECKPOINT_RESTART or not declared.empty
    if not needs_checkpoint:
        # An earlier move's restore init container would copy that move's checkpoint over the pod's current data.
        fields["targetPodManifest"] = without_checkpoint(plan.target_pod)
        for container in containers:
            if str(container["name"]).startswith(RESTORE_CONTAINER_PREFIX):
                container.update(action="skip", reason="restore init container of an earlier checkpoint: not run again")
    else:
        try:
            fields["targetPodManifest"], fields["checkpoint"] = checkpointer.prepare(
                source_pod=source,
                target_pod=plan.target_pod,
                migration_id=ctx.name,
                pod_base=base_name(source["metadata"]["name"]),
                volume=volume,
                spec=declared,
            )
        except OrchestratorError as error:
            return await ctx.fail(error.reason, error.message, containers=containers)
        replaced = set((fields["checkpoint"].get("restore") or {}).get("replaced") or ())
        for container in containers:
            if container["name"] in replaced:
                container.update(action="skip", reason="restore init container of an earlier checkpoint: replaced")
    ctx.controller.reporter.planned(plan)
    ctx.controller.recorder.run_in_background(ctx.annotate_source("Running"))  # informative: off the critical path
    skipped = [d.name for d in plan.decisions if d.action.value == "skip"]
    message = f"plan: {plan.strategy.value}; {len(skipped)} container(s) left out ({', '.join(skipped) or 'none'})"
    if not needs_checkpoint:
        return await ctx.transition(Phase.CREATING_TARGET, message, passed=passed, **fields)
    source_node = str(ctx.spec["sourceNode"])
    if not _skip_untried(ctx, source_node, declared):
        return await ctx.transition(Phase.CHECKPOINTING, message, passed=passed, **fields)
    said = f"commands cannot run in containers on node {source_node} (seen by an earlier checkpoint); not tried"
    checkpoint = {**fields.get("checkpoint", {}), "saved": False, "skipped": EXEC_UNAVAILABLE, "message": said}
    return await _checkpoint_recorded(
        ctx, checkpoint, passed=[*passed, (Phase.CHECKPOINTING, now_iso(), message)], planned=fields
    )


async def checkpointing(ctx: MigrationContext) -> Result:
    pool = ctx.controller.checkpoints
    key = f"{ctx.namespace}/{ctx.name}"
    if ctx.cancel_requested:
        pool.cancel(key)
        return await _cancel_untouched(ctx, "cancelled before the source was touched", checkpoint={"running": None})
    pod = ctx.source_pod
    if pod is None or not ctx.source_pod_is_ours:
        pool.cancel(key)
        return await _fail_untouched(
            ctx, "pod_not_found", f"pod {ctx.namespace}/{ctx.spec['podName']} is gone: nothing to save"
        )
    finished = pool.take(key)
    source_node = str(ctx.spec["sourceNode"])
    declared = CheckpointSpec.from_json((ctx.status.get("checkpoint") or {}).get("declared") or {})
    untried = _skip_untried(ctx, source_node, declared)
    if finished is None and untried and not pool.running(key):
        said = f"commands cannot run in containers on node {source_node} (seen by an earlier checkpoint); not tried"
        return await _checkpoint_recorded(ctx, {"saved": False, "skipped": EXEC_UNAVAILABLE, "message": said})
    if finished is None:
        if ctx.seconds_left() <= 0:  # a job still running at the deadline is stopped here, not waited for
            pool.cancel(key)
            return await _fail_untouched(
                ctx,
                "checkpoint_timeout",
                f"no checkpoint within {ctx.request.timeout_seconds}s; the source pod was not touched",
            )
        if not pool.running(key):
            # Recorded first: the write fails on a stale record (a cache behind our own StoppingSource write, say),
            # and a checkpoint started from one would reset the directory of the checkpoint already saved.
            progress = f"checkpoint running since {now_iso()} (source pod untouched)"
            await ctx.update_status(message=progress, checkpoint={"running": True})
            ctx.controller.ensure_leading("run the checkpoint")  # hooks and copies are not API writes: fence them
            pool.start(key, _checkpoint_job(ctx, pod), node=source_node)
            if not untried and _prewarm_token(ctx):  # the checkpoint may succeed: start the target beside it
                rolled_back = await _create_target(ctx, gate=True)
                if rolled_back is not None:
                    pool.cancel(key)
                    return rolled_back
        return Result.after(max(0.0, ctx.seconds_left()))  # the job's end wakes us
    if finished.error is not None:
        error = finished.error
        if not isinstance(error, OrchestratorError) or isinstance(error, TemporaryError):
            raise error  # retried with backoff: the next step starts the checkpoint again
        failed = {**(ctx.status.get("checkpoint") or {}), "saved": False, "running": None, **error.details}
        return await _fail_untouched(
            ctx, error.reason, f"checkpoint failed, source pod untouched: {error.message}", checkpoint=failed
        )
    assert finished.checkpoint is not None
    _note_exec(ctx, source_node, finished.checkpoint)
    return await _checkpoint_recorded(ctx, finished.checkpoint)


def _skip_untried(ctx: MigrationContext, node: str, declared: CheckpointSpec) -> bool:
    """Whether the checkpoint is skipped without an exec: `node` is known to lack exec and the pod declares nothing
    to run or copy (hooks or artifacts are tried every time, never skipped on what an earlier checkpoint saw)."""
    return declared.empty and ctx.controller.exec_support.works(node) is False


def _note_exec(ctx: MigrationContext, node: str, checkpoint: JSON) -> None:
    """What a finished checkpoint proves about exec on `node`: refused, or worked (it saved, or ran a hook). One that
    ran no exec (no running container could write it, no shared volume and no hook) proves nothing."""
    if checkpoint.get("skipped") == EXEC_UNAVAILABLE:
        ctx.controller.exec_support.note(node, works=False)
    elif checkpoint.get("saved") or checkpoint.get("hooks"):
        ctx.controller.exec_support.note(node, works=True)


def _checkpoint_job(ctx: MigrationContext, pod: JSON) -> CheckpointJob:
    state = ctx.controller.state
    base = base_name(ctx.spec["podName"])
    return CheckpointJob(
        migration_id=ctx.name,
        namespace=ctx.namespace,
        pod=pod,
        checkpoint=ctx.status.get("checkpoint") or {},
        decisions=ctx.status.get("containers") or [],
        target_node=ctx.spec["targetNode"],
        strategy=str(ctx.status.get("strategy") or ""),
        time_left=ctx.seconds_left(),
        phases={
            str(m["metadata"]["name"]): phase_of(m).value
            for m in state.migrations
            if m["metadata"].get("namespace") == ctx.namespace
            and base_name(str(Body(m).spec.get("podName") or "")) == base
        },
        in_use=frozenset(
            posixpath.basename(str(path).rstrip("/"))
            for p in state.pods
            if p["metadata"].get("namespace") == ctx.namespace
            and (path := Pod(p).annotations.get(CHECKPOINT_PATH_ANNOTATION))
        ),
    )


async def _checkpoint_recorded(
    ctx: MigrationContext, checkpoint: JSON, *, passed: Sequence[Passed] = (), planned: JSON | None = None
) -> Result:
    """Record the checkpoint's outcome and enter the next phase. `planned`: the plan's fields, when the plan and a
    checkpoint skipped without trying are recorded in one write."""
    extra: JSON = dict(planned or {})
    extra.pop("checkpoint", None)  # `checkpoint` holds it whole
    strategy = extra.get("strategy") or ctx.status.get("strategy")
    if checkpoint.get("skipped"):
        message = f"checkpoint skipped ({checkpoint['skipped']}): {checkpoint.get('message')}"
        undone = without_checkpoint(extra.get("targetPodManifest") or ctx.status["targetPodManifest"])
        # A merge patch keeps keys it does not mention: name the removed ones as null.
        undone["metadata"].setdefault("annotations", {})[CHECKPOINT_PATH_ANNOTATION] = None
        undone["spec"].setdefault("initContainers", None)
        extra["targetPodManifest"] = undone
        ctx.controller.recorder.record(ctx.migration, reason="CheckpointSkipped", message=message, warning=True)
        early = ctx.target_pod
        if early is not None and not terminating(early) and _ours(ctx, early):
            # Started beside a checkpoint that did not happen, with its restore: StoppingSource starts it again.
            await _delete_pod(ctx, early, uid=early["metadata"].get("uid"))

    elif checkpoint.get("saved"):
        message = f"checkpoint saved on the shared volume at {checkpoint.get('directory')}"
    else:
        message = str(checkpoint.get("note") or "nothing to save")
    following = Phase.STOPPING_SOURCE if strategy == Strategy.CHECKPOINT_RESTART else Phase.CREATING_TARGET
    if following is Phase.STOPPING_SOURCE and not ctx.status.get("owner") and not extra.get("owner"):
        # Write-ahead for the removal that StoppingSource asks for (once a pre-warmed target's gate runs).
        extra["sourceStopped"] = True
    result = await ctx.transition(
        following, message, passed=passed, checkpoint={**checkpoint, "running": None}, **extra
    )
    if following is Phase.STOPPING_SOURCE and _prewarm_token(ctx) and ctx.target_pod is None:
        # Not started beside the checkpoint (its node's exec was not known to work): the target starts now, from
        # the manifest as the checkpoint left it; its gate holds it until the source has stopped.
        rolled_back = await _create_target(ctx, gate=True)
        if rolled_back is not None:
            return rolled_back
    return result


async def stopping_source(ctx: MigrationContext) -> Result:
    if ctx.status.get("owner"):
        return await _owner_replaces(ctx)
    pod = ctx.source_pod
    token = _prewarm_token(ctx)
    untouched = pod is not None and ctx.source_pod_is_ours and not terminating(pod)
    if ctx.cancel_requested:
        if not ctx.status.get("sourceStopped"):
            return await _cancel_untouched(ctx, "cancelled before the source was stopped")
        if untouched:  # by the cache: a removal may still have been asked for, so the rollback reads it live
            return await ctx.transition(Phase.ROLLING_BACK, "cancelled before the source was seen stopping")
        # The removal may be under way: the rollback waits until the source is gone and recreates it.
        return await ctx.transition(Phase.ROLLING_BACK, "cancelled while the source was stopping")
    if token and untouched:
        unprepared = await _prepare_target(ctx)
        if unprepared is not None:
            return unprepared
    elif untouched or not ctx.status.get("sourceStopped"):
        early = ctx.target_pod
        if early is not None and gated(early) and _ours(ctx, early):  # its gate could not run: gone before we go on
            if not terminating(early):
                await _delete_pod(ctx, early, uid=early["metadata"].get("uid"))
            return Result.after(DELETE_WAIT_SECONDS)
    target = ctx.target_pod
    prewarmed = bool(token and target is not None and gated(target) and not terminating(target) and _ours(ctx, target))
    if pod is not None and ctx.source_pod_is_ours:
        if prewarmed and target is not None:
            _knock_ahead(ctx, target["metadata"]["name"])
        if not _removal_asked(pod):
            if untouched and (cordoned := _cordoned_since_planning(ctx)) is not None:
                return await _fail_untouched(ctx, TARGET_NODE_CORDONED, cordoned)
            blocked = await _remove_source(ctx, pod)
            if blocked is not None:
                return blocked
        if not (prewarmed and containers_stopped(pod)):
            return Result.after(DELETE_WAIT_SECONDS)  # the pod's next change wakes us
    if prewarmed and token and target is not None:
        return await _release_gate(ctx, target, token)
    # The source is gone: start the target in the same step, so the pod is down no longer than it must be.
    stopped = (Phase.CREATING_TARGET, now_iso(), "source pod stopped")
    rolled_back = await _create_target(ctx, sourceStopped=True)
    if rolled_back is not None:
        return rolled_back
    return await ctx.transition(Phase.WAITING_FOR_TARGET, _created_message(ctx), passed=[stopped], sourceStopped=True)


async def _owner_replaces(ctx: MigrationContext) -> Result:
    """An owned pod: evict the source, then take the replacement its owner created and the webhook captured
    (admission/capture.py); its gate, when it has one, opens once the source's containers have stopped."""
    owner = ctx.status["owner"]
    pod = ctx.source_pod
    source = pod if pod is not None and ctx.source_pod_is_ours else None
    if ctx.cancel_requested:
        if not ctx.status.get("sourceStopped"):
            return await ctx.transition(Phase.CANCELLED, "cancelled before the source was stopped; nothing was changed")
        return await ctx.transition(Phase.ROLLING_BACK, "cancelled while the source was stopping")
    if source is not None and not _removal_asked(source):
        blocked = await _remove_source(ctx, source)
        if blocked is not None:
            return blocked
    target = _captured(ctx)
    missed = _uncaptured(ctx, since=Phase.STOPPING_SOURCE) if target is None else None
    if missed is not None:
        return await _not_captured(ctx, missed)
    if target is None:
        if ctx.seconds_left() <= 0:
            return await _roll_back(
                ctx,
                "owner_did_not_recreate",
                f"no replacement pod of {owner['kind']} '{owner['name']}' was captured within"
                f" {ctx.request.timeout_seconds}s; the owner's pod, when it comes, is created as Kubernetes would",
            )
        return Result.after(max(0.1, ctx.seconds_left()))  # the replacement's creation wakes us
    name = target["metadata"]["name"]
    if ctx.status.get("targetPod") != name:
        await ctx.update_status(targetPod=name, message=f"captured {owner['kind']} '{owner['name']}''s new pod {name}")
    token = str(owner.get("token") or "")
    if gated(target) and not released(target, token):
        if source is not None and not containers_stopped(source):
            if ctx.seconds_left() <= 0:  # its node may not answer: the captured pod's gate opens by itself
                return await ctx.fail(
                    "source_not_stopped",
                    f"source pod {ctx.spec['podName']} was still reported running {ctx.request.timeout_seconds}s in"
                    f" (its node may not answer); {name}, created by {owner['kind']} '{owner['name']}', opens its"
                    " gate by itself at its own deadline, as the replacement of any eviction would start",
                )
            _knock_ahead(ctx, name)
            return Result.after(min(DELETE_WAIT_SECONDS, max(0.1, ctx.seconds_left())))  # or the source's change
        return await _release_gate(ctx, target, token)
    stopped = (Phase.CREATING_TARGET, now_iso(), f"source pod stopped; its owner created {name}")
    return await ctx.transition(
        Phase.WAITING_FOR_TARGET,
        f"{name}, created by {owner['kind']} '{owner['name']}', runs on {ctx.spec['targetNode']}",
        passed=[stopped],
    )


def _captured(ctx: MigrationContext) -> JSON | None:
    """The owner's pod that the webhook rewrote for this migration (the newest live one)."""
    found = [
        p
        for p in ctx.controller.state.pods
        if p["metadata"].get("namespace") == ctx.namespace and _ours(ctx, p) and not terminating(p)
    ]
    return max(found, key=lambda p: str(p["metadata"].get("creationTimestamp") or ""), default=None)


async def _not_captured(ctx: MigrationContext, pod: JSON) -> Result:
    owner = ctx.status["owner"]
    return await _roll_back(
        ctx,
        "replacement_not_captured",
        f"{owner['kind']} '{owner['name']}' created pod {pod['metadata']['name']} without the orchestrator's admission"
        " webhook (not registered, or not reachable in time): it runs where Kubernetes placed it",
    )


def _uncaptured(ctx: MigrationContext, *, since: Phase) -> JSON | None:
    """A pod the owner created for the move that the webhook did not capture (it was not called, or did not answer
    within its timeout): created since the move entered `since`, captured by no move, not the source. Once
    such a pod exists the owner has its count and creates no other: the move cannot end on the target. (A scale-up of
    the owner at that very moment looks the same: that move fails, nothing else is touched.)"""
    owner_uid = (ctx.status.get("owner") or {}).get("uid")
    entered = next(
        (t.get("time") for t in reversed(ctx.status.get("phaseTransitions") or []) if t.get("phase") == since.value),
        None,
    )
    since_time = parse_time(entered)
    if not owner_uid or since_time is None:
        return None
    since_time = since_time.replace(microsecond=0)  # creationTimestamp has whole seconds
    for pod in ctx.controller.state.pods:
        meta = pod["metadata"]
        created = parse_time(meta.get("creationTimestamp"))
        if (
            meta.get("namespace") == ctx.namespace
            and meta.get("uid") != ctx.status.get("sourcePodUID")
            and not _another_moves_capture(ctx, pod)
            and not terminating(pod)
            and created is not None
            and created >= since_time
            and (controlling_owner(pod) or {}).get("uid") == owner_uid
            and replaces_source(
                pod,
                owner_kind=str(ctx.status["owner"].get("kind")),
                source_name=str(ctx.spec["podName"]),
                template=ctx.status.get("targetPodManifest") or {},
            )
        ):
            return pod
    return None


async def _owner_job_refusal(ctx: MigrationContext, owner: JSON | None) -> str | None:
    """Why evicting a Job's pod would lose it (`planning.owner.job_refusal`), read live; None for other owners, and
    when the Job cannot be read (gone, or no `get jobs` in an older RBAC): the move goes ahead as before."""
    if owner is None or owner.get("kind") != "Job":
        return None
    try:
        job = await ctx.controller.api.get(JOBS, str(owner.get("name")), namespace=ctx.namespace)
    except KubeApiError as error:
        if error.retriable:
            raise
        log.warning("job.unreadable", job=owner.get("name"), reason=str(error))
        return None
    return job_refusal(job, evicted=not ctx.request.ignore_pdb)  # ignorePDB deletes: no DisruptionTarget


def _prewarm_token(ctx: MigrationContext) -> str | None:
    token = (ctx.status.get("prewarm") or {}).get("token")
    return str(token) if token else None


def _gate_opened_at_its_deadline(pod: JSON) -> bool:
    """A captured pod's gate ended with exit 0 without our token: it opened at its own deadline (capture.py). A gate
    that failed (OOMKilled, say) opened nothing: its kubelet may restart it, and then it waits for the token again."""
    finished = gate_state(pod).get("terminated") or {}
    return bool(finished) and finished.get("exitCode") == 0


def _another_moves_capture(ctx: MigrationContext, pod: JSON) -> bool:
    """Two pods of one owner moving: the other move's captured pod (proven by the variable, or recorded by a move
    from before the proof existed) is not a replacement this move missed."""
    labelled = labelled_move(pod)
    if labelled is None:
        return False
    return move_of(pod) == labelled or made_by(pod, ctx.controller.state.migration(ctx.namespace, labelled))


def _ours(ctx: MigrationContext, pod: JSON) -> bool:
    return made_by(pod, ctx.migration)


async def _cancel_untouched(ctx: MigrationContext, message: str, **fields: Any) -> Result:
    """A cancel before the source was touched: nothing to undo, unless a pre-warmed target may exist."""
    if _prewarm_token(ctx):
        return await ctx.transition(Phase.ROLLING_BACK, f"{message}; removing the pre-warmed target", **fields)
    return await ctx.transition(Phase.CANCELLED, message, **fields)


async def _fail_untouched(ctx: MigrationContext, reason: str, message: str, **fields: Any) -> Result:
    if _prewarm_token(ctx):
        return await _roll_back(ctx, reason, message, **fields)
    return await ctx.fail(reason, message, **fields)


async def _prepare_target(ctx: MigrationContext) -> Result | None:
    """None once the pre-warmed target has proven it can start (its gate runs); until then the source stays
    untouched, and a target that cannot start fails the migration with the source never stopped."""
    target = ctx.target_pod
    if target is None or not _ours(ctx, target):
        return await _create_target(ctx, gate=True) or Result.after(max(0.1, ctx.seconds_left()))
    if terminating(target):
        return Result.after(DELETE_WAIT_SECONDS)  # an earlier try on its way out: created again once gone
    node = ctx.controller.state.node(ctx.spec["targetNode"])
    problem = target_problem(target, node)
    if problem is not None:
        if _gate_alone_failed(target):
            return await _cold_start(ctx, target)
        return await _roll_back(ctx, problem[0], f"{problem[1]}; the source pod was not touched")
    missing = missing_images(target, node)
    if missing:
        message = f"target node {ctx.spec['targetNode']} lacks image(s) {', '.join(missing)} (imagePullPolicy Never)"
        return await _roll_back(ctx, "target_image_missing", f"{message}; the source pod was not touched")
    if gate_running(target):
        return None
    if ctx.seconds_left() <= 0:
        message = f"target pod {target['metadata']['name']} not started within {ctx.request.timeout_seconds}s"
        return await _roll_back(ctx, "target_not_ready_timeout", f"{message}; the source pod was not touched")
    return Result.after(ctx.seconds_left())  # the target's next status wakes us


def _gate_alone_failed(target: JSON) -> bool:
    """The gate cannot run although its image is there (no `sh` in it, say): a fault of pre-warming, not of the pod."""
    state = gate_state(target)
    reason = (state.get("waiting") or {}).get("reason")
    if not state or reason in IMAGE_WAITING_REASONS:  # not reported yet, or its image is missing: the pod's fault
        return False
    return reason in FATAL_WAITING_REASONS or "terminated" in state or Pod(target).phase == "Failed"


async def _cold_start(ctx: MigrationContext, target: JSON) -> Result:
    """Give up pre-warming: remove the gated target; the source is stopped first and the target created after."""
    await _delete_pod(ctx, target, uid=target["metadata"].get("uid"))
    state = gate_state(target)
    detail: JSON = next((value for value in state.values() if isinstance(value, dict)), {})
    reason = str(detail.get("reason") or "it did not run")
    skipped = f"the gate could not run in image {target['spec']['initContainers'][0].get('image')} ({reason})"
    await ctx.update_status(prewarm={"token": None, "skipped": skipped}, message=f"{skipped}: moving without it")
    return Result.again()


async def _release_gate(ctx: MigrationContext, target: JSON, token: str) -> Result:
    """Open the pre-warmed target's gate, only once a live read shows the source pod gone, or being removed with
    none of its containers running (the kubelet's report; it never restarts them): two copies of the trainer never
    run at once. Not waiting for the pod object to go saves the kubelet's clean-up after the containers stopped
    (volumes, cgroups: 0.3-0.8 s measured on real nodes)."""
    live = await _live_source(ctx)
    if live is not None and not containers_stopped(live):
        return Result.after(DELETE_WAIT_SECONDS)  # the cache ran ahead of the API server: its next event wakes us
    name = target["metadata"]["name"]
    stopped = (
        Phase.CREATING_TARGET,
        now_iso(),
        f"source pod's containers stopped; target pod {name} was started before",
    )
    await _open_gate(ctx, name, token)  # first: the pod's start waits for it, the record does not
    return await ctx.transition(
        Phase.WAITING_FOR_TARGET,
        f"gate of target pod {name} on {ctx.spec['targetNode']} opened: its containers start",
        passed=[stopped],
    )


async def _open_gate(ctx: MigrationContext, name: str, token: str) -> None:
    """Write the hand-off token onto the held target `name`, and knock on its gate with it at the same time
    (controller/knock.py): its gate exits and its containers start."""
    patch = {"metadata": {"annotations": {HANDOFF_ANNOTATION: token}}}
    knock = asyncio.create_task(_knock(ctx, name, token))
    try:
        patched = await ctx.controller.api.merge_patch(PODS, name, patch, namespace=ctx.namespace)
    except BaseException:  # the patch's own error is the step's, not an ExceptionGroup: the knock is dropped
        knock.cancel()
        await asyncio.gather(knock, return_exceptions=True)
        raise
    await knock
    ctx.controller.state.pods.write_through(patched)


def _knocker(ctx: MigrationContext) -> GateKnocker | None:
    """The knocker, unless the target node is one a checkpoint found without exec (the knocker remembers its own
    failures)."""
    if ctx.controller.exec_support.works(ctx.spec["targetNode"]) is False:
        return None
    return ctx.controller.knocker


def _knock_ahead(ctx: MigrationContext, name: str) -> None:
    """Open the knock's exec into the held target `name` while the source still runs: the hand-off then only
    writes the token (controller/knock.py)."""
    knocker = _knocker(ctx)
    if knocker is not None:
        knocker.prepare(namespace=ctx.namespace, pod=name, node=ctx.spec["targetNode"])


async def _knock(ctx: MigrationContext, name: str, token: str) -> None:
    """Best effort."""
    knocker, node = _knocker(ctx), ctx.spec["targetNode"]
    if knocker is None:
        return
    ctx.controller.ensure_leading("knock on the gate")
    await knocker.knock(namespace=ctx.namespace, pod=name, node=node, token=token)


async def _remove_source(ctx: MigrationContext, pod: JSON) -> Result | None:
    """Ask for the source's removal; a Result when it cannot happen now (a disruption budget forbids it)."""
    if not ctx.status.get("sourceStopped"):
        await ctx.update_status(sourceStopped=True)  # write-ahead, see the module's rules
    uid = ctx.status.get("sourcePodUID")
    if ctx.spec.get("ignorePDB"):
        await _delete_pod(ctx, pod, uid=uid)
        return None
    try:
        await ctx.controller.api.evict(pod["metadata"]["name"], namespace=ctx.namespace, uid=uid)
        log.info("source.evicted", migration_id=ctx.name, pod=pod["metadata"]["name"], namespace=ctx.namespace)
    except KubeApiError as error:
        if error.not_found or (error.conflict and "Precondition" in error.message):
            return None  # already gone, or replaced by a pod that is not ours
        if not error.blocked_by_disruption_budget:
            raise
        message = f"blocked_by_disruption_budget: {error.message.split(': ', 1)[-1]}"
        if ctx.seconds_left() <= 0:
            return await _roll_back(
                ctx,
                "blocked_by_disruption_budget",
                f"a PodDisruptionBudget kept the source pod for {ctx.request.timeout_seconds}s; "
                "retry later or set ignore_pdb",
            )
        if ctx.status.get("message") != message:
            await ctx.update_status(message=message)
        return Result.after(min(DISRUPTION_BUDGET_RETRY_SECONDS, max(0.1, ctx.seconds_left())))
    return None


async def creating_target(ctx: MigrationContext) -> Result:
    if surge.surging(ctx):
        return await surge.scale_up(ctx)
    if ctx.cancel_requested:
        return await ctx.transition(Phase.ROLLING_BACK, "cancelled; rolling back")
    if not ctx.status.get("sourceStopped") and (cordoned := _cordoned_since_planning(ctx)) is not None:
        return await _fail_untouched(ctx, TARGET_NODE_CORDONED, cordoned)
    rolled_back = await _create_target(ctx)
    if rolled_back is not None:
        return rolled_back
    return await ctx.transition(Phase.WAITING_FOR_TARGET, _created_message(ctx))


def _cordoned_since_planning(ctx: MigrationContext) -> str | None:
    """Why the move stops here, when its target node was cordoned after the plan checked it (a drain of that node
    began meanwhile): the source is still untouched, and a pod bound by nodeName would land there anyway."""
    node = ctx.controller.state.node(ctx.spec["targetNode"])
    if node is None or not (node.get("spec") or {}).get("unschedulable"):
        return None
    return f"target node {ctx.spec['targetNode']} was cordoned after the move was planned; the source was not touched"


def _created_message(ctx: MigrationContext) -> str:
    return f"created target pod {ctx.status['targetPodManifest']['metadata']['name']} on {ctx.spec['targetNode']}"


async def _create_target(ctx: MigrationContext, *, gate: bool = False, **fields: Any) -> Result | None:
    """Create the target pod (idempotent: one already there with our label is ours); a Result when it rolled back.
    `gate`: pre-warmed, held by its gate until the source is gone."""
    manifest = copy.deepcopy(ctx.status["targetPodManifest"])
    mark_containers(manifest["spec"].get("containers") or [], ctx.name)  # a plan recorded before the proof existed
    token = _prewarm_token(ctx)
    if gate and token:
        manifest = with_gate(manifest, token_digest(token))
    name = manifest["metadata"]["name"]
    try:
        created = await ctx.controller.api.create(PODS, manifest, namespace=ctx.namespace)
        ctx.controller.state.pods.write_through(created)
    except KubeApiError as error:
        if not error.already_exists:
            if error.retriable or error.conflict:
                raise
            message = f"the API server refused target pod {name}: {error}"
            return await _roll_back(ctx, "target_rejected", message, **fields)
        existing = ctx.controller.state.pod(ctx.namespace, name) or await ctx.controller.api.get(
            PODS, name, namespace=ctx.namespace
        )
        if not _ours(ctx, existing):
            return await _roll_back(ctx, "target_name_taken", f"a pod named {name} exists and is not ours", **fields)
    return None


async def waiting_for_target(ctx: MigrationContext) -> Result:
    if ctx.cancel_requested:
        return await ctx.transition(Phase.ROLLING_BACK, "cancelled; rolling back")
    pod = ctx.target_pod
    if pod is None and ctx.status.get("owner"):
        pod = _captured(ctx)
        if pod is not None:
            await ctx.update_status(targetPod=pod["metadata"]["name"])
        elif not surge.surging(ctx):
            return await ctx.transition(
                Phase.STOPPING_SOURCE, "the captured pod disappeared; capturing the owner's next one", targetPod=None
            )
        elif (missed := _uncaptured(ctx, since=Phase.CREATING_TARGET)) is not None:
            return await _not_captured(ctx, missed)
        elif ctx.seconds_left() > 0:
            return Result.after(ctx.seconds_left())  # the owner's new pod wakes us
        else:
            owner = ctx.status["owner"]
            return await _roll_back(
                ctx,
                "owner_did_not_create",
                f"no new pod of {owner['kind']} '{owner['name']}' was captured within {ctx.request.timeout_seconds}s",
            )
    if pod is None:
        return await ctx.transition(Phase.CREATING_TARGET, "target pod disappeared; creating it again")
    left = ctx.seconds_left()
    if terminating(pod):  # evicted or deleted by someone: create it again once it is gone, within the timeout
        if left > 0:
            return Result.after(min(DELETE_WAIT_SECONDS, left))
        return await _roll_back(
            ctx, "target_lost", f"target pod {pod['metadata']['name']} was removed and could not be recreated in time"
        )
    problem = target_problem(pod, ctx.controller.state.node(ctx.spec["targetNode"]))
    if problem:
        return await _roll_back(ctx, *problem)
    how = serving(pod)
    if how is not None:
        uid = pod["metadata"].get("uid")
        message = f"target pod {pod['metadata']['name']} {how}"
        if ctx.status.get("strategy") == Strategy.MAKE_BEFORE_BREAK:
            # Bare pods: the write-ahead for the source's removal goes with the phase (an owner's surge keeps its own).
            ahead: JSON = {} if ctx.status.get("owner") else {"sourceStopped": True}
            return await ctx.transition(Phase.REMOVING_SOURCE, message, targetPodUID=uid, **ahead)
        return await ctx.transition(Phase.COMPLETED, message, targetPodUID=uid)
    if left <= 0:
        return await _roll_back(
            ctx,
            "target_not_ready_timeout",
            f"target pod {pod['metadata']['name']} not Ready within {ctx.request.timeout_seconds}s",
        )
    return Result.after(left)


async def removing_source(ctx: MigrationContext) -> Result:
    pod = ctx.source_pod
    source_there = pod is not None and ctx.source_pod_is_ours
    if (
        ctx.cancel_requested
        and not ctx.status.get("owner")
        and source_there
        and pod is not None
        and not _removal_asked(pod)
        and await _source_untouched(ctx)  # read live: the cache may not show an eviction already asked for
    ):
        # A cancel accepted just as the move entered this phase: nothing is removed yet, so it still rolls back.
        return await ctx.transition(Phase.ROLLING_BACK, "cancelled before the source was removed")
    if source_there and pod is not None and not _removal_asked(pod):
        unfit = await _target_unfit(ctx)
        if unfit is not None:  # never remove the source on the word of a cache: the target was read just now
            return await ctx.transition(Phase.WAITING_FOR_TARGET, f"{unfit}; the source pod stays")
        if surge.surging(ctx):
            await surge.remove_source(ctx, pod)
            return Result.after(DELETE_WAIT_SECONDS)
        blocked = await _remove_source(ctx, pod)
        if blocked is not None:
            return blocked
        return Result.after(DELETE_WAIT_SECONDS)
    unfit = await _target_unfit(ctx)
    if unfit is not None:
        # The source is going or gone and the target was lost after it was Ready: create it again, as after a
        # checkpoint-restart stop; a rollback from here recreates the pod on the source node.
        return await ctx.transition(
            Phase.CREATING_TARGET, f"{unfit} after the source was removed; creating it again", sourceStopped=True
        )
    if source_there:
        if ctx.seconds_left() <= 0 and pod is not None and _termination_overdue(pod):
            return await ctx.transition(Phase.COMPLETED, _source_still_terminating(ctx))
        return Result.after(DELETE_WAIT_SECONDS)
    return await ctx.transition(Phase.COMPLETED, f"source pod removed; {ctx.status.get('targetPod')} is Ready")


# How long past the end of its grace period (its deletionTimestamp) a source may take to go before a make-before-break
# move at its deadline stops waiting for it: its kubelet's kill and clean-up take seconds, not minutes.
TERMINATION_OVERDUE_SECONDS = 30


def _termination_overdue(pod: JSON) -> bool:
    """The pod's grace period (its deletionTimestamp: when the kubelet kills it) ended well ago and it is still
    there: its node does not answer, or a finalizer holds it."""
    kill_at = parse_time(pod["metadata"].get("deletionTimestamp"))
    now = parse_time(now_iso())
    assert now is not None
    return kill_at is not None and (now - kill_at).total_seconds() > TERMINATION_OVERDUE_SECONDS


def _source_still_terminating(ctx: MigrationContext) -> str:
    """Make-before-break at its deadline: the target serves, the source's removal was asked and is not confirmed (its
    node does not answer, or a finalizer holds it). No rollback can undo a removal, and the two copies ran side by side
    by design: the move ends, saying what is left."""
    node = ctx.spec["sourceNode"]
    return (
        f"{ctx.status.get('targetPod')} is Ready; source pod {ctx.spec['podName']} was removed but is still terminating"
        f" after {ctx.request.timeout_seconds}s (node {node} has not confirmed it, or a finalizer holds it)"
    )


async def _target_unfit(ctx: MigrationContext) -> str | None:
    name = ctx.status.get("targetPod")
    target = await ctx.live_pod(name) if name else None
    unfit = target_unfit_to_replace_source(target, uid=ctx.status.get("targetPodUID"), node=str(ctx.spec["targetNode"]))
    if unfit is None and not _node_ready(ctx.controller.state.node(ctx.spec["targetNode"])):
        unfit = f"target node {ctx.spec['targetNode']} is gone or not Ready"
    return unfit


async def rolling_back(ctx: MigrationContext) -> Result:
    if ctx.status.get("owner"):
        return await _owner_rollback(ctx)
    target = await _target_to_remove(ctx)
    if target is not None and _ours(ctx, target):
        if not terminating(target):
            await _delete_pod(ctx, target, uid=target["metadata"].get("uid"))
        if _node_ready(ctx.controller.state.node(Pod(target).node_name or "")):
            return Result.after(DELETE_WAIT_SECONDS)  # its kubelet confirms the removal soon: end with it gone
        if ctx.status.get("sourceStopped") and not await _source_untouched(ctx):
            await _say_target_node_down(ctx, target)  # recreated only once no copy of the target can run
            return Result.after(DELETE_WAIT_SECONDS)
        # The source was never touched and still runs, and the target's node does not answer: a target being
        # removed is never handed the source's work (its gate gets no token), so the rollback ends without waiting
        # for a kubelet that may never confirm it.
    restored = ""
    if ctx.status.get("sourceStopped"):
        source = ctx.source_pod
        if source is not None and terminating(source):
            return Result.after(DELETE_WAIT_SECONDS)  # still stopping: recreate it once it is gone
        if source is None:
            return await _restore_source(ctx)
        if Pod(source).annotations.get(RESTORED_BY_ANNOTATION) == ctx.name:
            waiting = await _restored_admitted(ctx, source)
            if waiting is not None:
                return waiting
            restored = _restored_message(ctx)
    error = ctx.status.get("error")
    if error:
        return await ctx.transition(Phase.FAILED, f"{error.get('message')}; rolled back{restored}")
    return await ctx.transition(Phase.CANCELLED, f"cancelled; rolled back{restored}")


async def _target_to_remove(ctx: MigrationContext) -> JSON | None:
    """The target pod as the cache has it, else read live: a create whose answer was lost (then retried into
    "already exists"), or a new leader whose pod watch has not delivered it yet, leaves a target the cache does not
    know, and a rollback that missed it would leave it running beside the source, or held for good."""
    target = ctx.target_pod
    name = ctx.status.get("targetPod")
    if target is not None or not name:
        return target
    return await ctx.live_pod(name)


async def _source_untouched(ctx: MigrationContext) -> bool:
    """A live read: the source pod is still ours and nothing asked for its removal. `sourceStopped` is written
    ahead, before the eviction, so it alone does not say the source was touched."""
    live = await _live_source(ctx)
    return live is not None and not terminating(live)


async def _live_source(ctx: MigrationContext) -> JSON | None:
    """The source pod read live from the API server, when it is still the pod the plan recorded (its UID)."""
    live = await ctx.live_pod(ctx.spec["podName"])
    return live if live is not None and live["metadata"].get("uid") == ctx.status.get("sourcePodUID") else None


async def _say_target_node_down(ctx: MigrationContext, target: JSON) -> None:
    """Why the rollback waits, when the target's removal waits for a node that does not answer."""
    node = Pod(target).node_name
    if node and not _node_ready(ctx.controller.state.node(node)):
        message = (
            f"waiting for target pod {target['metadata']['name']} to be gone: its node {node} is not Ready, and the"
            " source is recreated only once no copy of it can run (if the node is gone for good, delete the Node)"
        )
        if ctx.status.get("message") != message:
            await ctx.update_status(message=message)


async def _restored_admitted(ctx: MigrationContext, pod: JSON) -> Result | None:
    """None once the pod recreated on the source node is in its kubelet's hands (or was left to the scheduler); a
    Result while that kubelet has not answered. A pod bound by ``nodeName`` bypasses the scheduler's fit checks, and
    the node's room may have been taken since the source stopped: a kubelet that refuses it (OutOfcpu, say) fails it
    at once, and an end recorded before that answer would leave no pod at all. A refused pod is removed and created
    again without a node, for the scheduler to place. One whose node stopped answering is waited for: removing it
    could not be confirmed, and a copy elsewhere could run beside it if that node is only cut off."""
    if not Pod(pod).node_name or admitted(pod):
        return None
    node = ctx.spec["sourceNode"]
    if refused(pod):
        status = Pod(pod).status
        why = f"{status.get('reason') or 'Failed'}: {status.get('message') or ''}".strip(": ")
        await ctx.update_status(restore={"refused": why[:300]})
        await _delete_pod(ctx, pod, uid=pod["metadata"].get("uid"))
        return Result.after(DELETE_WAIT_SECONDS)  # created again, unbound, once it is gone
    if not _node_ready(ctx.controller.state.node(node)):
        message = f"pod recreated on {node}, which is not Ready: waiting for its kubelet to take it"
        if ctx.status.get("message") != message:
            await ctx.update_status(message=message)
    return Result.after(DELETE_WAIT_SECONDS)  # the kubelet's first status wakes us


def _restored_message(ctx: MigrationContext) -> str:
    refused_by = (ctx.status.get("restore") or {}).get("refused")
    if refused_by:
        return f"; pod recreated for the scheduler to place (node {ctx.spec['sourceNode']} refused it: {refused_by})"
    return f"; pod recreated on {ctx.spec['sourceNode']}"


async def _owner_rollback(ctx: MigrationContext) -> Result:
    """An owned pod is never recreated by the orchestrator (its owner does that): a captured pod that cannot start is
    removed, so that the owner creates another (no longer captured); one held by its gate is let go once the source
    has stopped; one that runs stays."""
    owner = ctx.status["owner"]
    target = _captured(ctx)
    kept = ""
    if surge.surging(ctx):
        await surge.roll_back(ctx, target or _uncaptured(ctx, since=Phase.CREATING_TARGET))
        if not ctx.status.get("sourceStopped"):
            target = None  # the owner removes it itself (the lowest deletion cost)
    if target is not None:
        name = target["metadata"]["name"]
        token = str(owner.get("token") or "")
        if target_problem(target, ctx.controller.state.node(ctx.spec["targetNode"])) is not None:
            await _delete_pod(ctx, target, uid=target["metadata"].get("uid"))
        else:
            if gated(target) and not released(target, token):
                source = ctx.source_pod
                held = not _gate_opened_at_its_deadline(target)
                if held and source is not None and ctx.source_pod_is_ours and not containers_stopped(source):
                    return Result.after(DELETE_WAIT_SECONDS)
                await _open_gate(ctx, name, token)
            kept = f"; {name} on {ctx.spec['targetNode']} is the pod now"
    after = f"{owner['kind']} '{owner['name']}' keeps or recreates its pod{kept}"
    if not ctx.status.get("sourceStopped"):
        after = "the source pod was not touched"
    error = ctx.status.get("error")
    if error:
        return await ctx.transition(Phase.FAILED, f"{error.get('message')}; {after}")
    return await ctx.transition(Phase.CANCELLED, f"cancelled; {after}")


async def _roll_back(ctx: MigrationContext, reason: str, message: str, **fields: Any) -> Result:
    return await ctx.transition(Phase.ROLLING_BACK, message, error={"reason": reason, "message": message}, **fields)


async def _delete_pod(ctx: MigrationContext, pod: JSON, *, uid: str | None) -> None:
    """Delete `pod` (a precondition on `uid`); an exec opened ahead into it (a held target's) is closed with it."""
    if ctx.controller.knocker is not None:
        ctx.controller.knocker.discard(namespace=ctx.namespace, pod=pod["metadata"]["name"])
    try:
        await ctx.controller.api.delete(PODS, pod["metadata"]["name"], namespace=ctx.namespace, uid=uid)
    except KubeApiError as error:
        if error.not_found or (error.conflict and "Precondition" in error.message):
            return  # already gone, or replaced by a pod that is not ours
        raise


def restore_manifest(ctx: MigrationContext, *, bound: bool = True) -> JSON:
    """The pod as it was, under its own name on the source node (`bound`; else for the scheduler to place), with the
    containers that still have work."""
    manifest: JSON = copy.deepcopy(ctx.status["targetPodManifest"])
    manifest["metadata"]["name"] = ctx.spec["podName"]
    manifest["metadata"].setdefault("annotations", {})[RESTORED_BY_ANNOTATION] = ctx.name
    manifest["metadata"].get("labels", {}).pop(MIGRATION_ID_LABEL, None)
    unmark_containers(manifest["spec"].get("containers") or [])
    if bound:
        manifest["spec"]["nodeName"] = ctx.spec["sourceNode"]
    else:
        manifest["spec"].pop("nodeName", None)
    return manifest


async def _restore_source(ctx: MigrationContext) -> Result:
    """Recreate the source pod: on its node while that node is Ready and has not refused it, else unbound. The
    rollback ends once the kubelet has taken it (`_restored_admitted`)."""
    name = ctx.spec["podName"]
    refused_before = bool(ctx.status.get("restore"))
    bound = not refused_before and _node_ready(ctx.controller.state.node(ctx.spec["sourceNode"]))
    if not bound and not refused_before:
        await ctx.update_status(restore={"refused": f"node {ctx.spec['sourceNode']} is gone or not Ready"})
    try:
        created = await ctx.controller.api.create(PODS, restore_manifest(ctx, bound=bound), namespace=ctx.namespace)
        ctx.controller.state.pods.write_through(created)
    except KubeApiError as error:
        if not error.already_exists:
            raise
        existing = await ctx.controller.api.get(PODS, name, namespace=ctx.namespace)
        if terminating(existing):  # the old copy is still on its way out: our cache was behind
            raise TemporaryError(f"pod {ctx.namespace}/{name} is still terminating; recreating it when gone") from None
        ctx.controller.state.pods.write_through(existing)  # our cache was behind: the next step sees the pod
    return Result.again()


PHASES: dict[Phase, Step] = {
    Phase.PENDING: pending,
    Phase.VALIDATING: validating,
    Phase.CHECKPOINTING: checkpointing,
    Phase.STOPPING_SOURCE: stopping_source,
    Phase.CREATING_TARGET: creating_target,
    Phase.WAITING_FOR_TARGET: waiting_for_target,
    Phase.REMOVING_SOURCE: removing_source,
    Phase.ROLLING_BACK: rolling_back,
}
