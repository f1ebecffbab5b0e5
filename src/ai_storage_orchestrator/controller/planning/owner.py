"""Pods that belong to a controller: which ones can move, and how.

The owner of a pod (a Job, StatefulSet, ReplicaSet, an operator's kind) recreates it when it goes; the orchestrator
cannot create a copy of its own beside it (the owner would adopt or remove one of the two). It moves such a pod by
letting the owner make the replacement and capturing that pod with its mutating admission webhook
(admission/capture.py) - available only while the webhook is served (`serve --webhooks`). The source is evicted
first, so an owned pod always moves checkpoint-restart.

Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ai_storage_orchestrator.models import Strategy

JSON = dict[str, Any]
# Kinds whose pods must stay where they are: one per node by design, or run by the kubelet from a file.
UNMOVABLE_OWNERS: Mapping[str, str] = {
    "DaemonSet": "a DaemonSet runs one pod on each node: its pod belongs to node {node}",
    "Node": "it is a static pod, run by the kubelet of node {node} from a file",
}
OWNER_FIELDS = ("apiVersion", "kind", "name", "uid")
# Owners that can run one pod more for a while, so that the target is Ready before the source goes.
SURGE_OWNERS = frozenset({"ReplicaSet"})


def controlling_owner(pod: Mapping[str, Any]) -> JSON | None:
    references = (pod.get("metadata") or {}).get("ownerReferences") or []
    owner = next((o for o in references if o.get("controller")), None)
    return None if owner is None else {key: owner.get(key) for key in OWNER_FIELDS}


def owner_refusal(owner: Mapping[str, Any], *, node: str, capture: bool) -> str | None:
    """Why a pod with this controlling owner cannot be moved (None: it can, through its owner)."""
    kind = str(owner.get("kind"))
    described = f"{kind} '{owner.get('name')}'"
    if kind in UNMOVABLE_OWNERS:
        return f"the pod is managed by {described}: " + UNMOVABLE_OWNERS[kind].format(node=node)
    if not capture:
        return (
            f"the pod is managed by {described}, which would recreate or adopt a copy: moving it needs the"
            " orchestrator's admission webhook to capture the owner's replacement (serve --webhooks; docs/webhooks.md)"
        )
    return None


def owner_sentence(owner: Mapping[str, Any]) -> str:
    return (
        f"managed by {owner.get('kind')} '{owner.get('name')}': the source is evicted and the replacement its owner"
        " creates is captured and moved (admission webhook)"
    )


def owned_strategy(requested: Strategy, owner: Mapping[str, Any], natural: Strategy) -> tuple[Strategy, str]:
    """How an owned pod moves. A ReplicaSet's (a Deployment's) pod whose own strategy would be make-before-break moves
    so through surge: one replica more, captured on the target, then one less, the source first. Any other owned
    pod moves checkpoint-restart: its owner makes the target once the source is gone. `natural`: the strategy the
    pod would have as a bare pod (``strategy.resolve_strategy``)."""
    if str(owner.get("kind")) in SURGE_OWNERS and natural is Strategy.MAKE_BEFORE_BREAK:
        return Strategy.MAKE_BEFORE_BREAK, (
            f"make-before-break through surge: {owner.get('kind')} '{owner.get('name')}' gets one replica more,"
            " captured on the target (admission webhook); once it is Ready the owner goes back to its count,"
            " removing the source"
        )
    said = f"checkpoint-restart: the pod is {owner_sentence(owner)}"
    if requested is Strategy.MAKE_BEFORE_BREAK:
        said += "; make-before-break was asked for, but the owner creates the replacement only once the source goes"
    return Strategy.CHECKPOINT_RESTART, said


# An indexed Job's pods each do their own part of the work: the replacement of one has its completion index.
JOB_COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
# Owner kinds whose replacement has the source's own name (its identity).
SAME_NAME_OWNERS = frozenset({"StatefulSet"})


def replaces_source(pod: Mapping[str, Any], *, owner_kind: str, source_name: str, template: Mapping[str, Any]) -> bool:
    """Whether the owner's new `pod` can stand for the moved source: a StatefulSet's has the source's name, an
    indexed Job's the source's completion index (`template`: the planned target, which keeps the source's
    annotations); any other owner's pods are interchangeable."""
    meta = pod.get("metadata") or {}
    if owner_kind in SAME_NAME_OWNERS:
        return meta.get("name") == source_name
    index = ((template.get("metadata") or {}).get("annotations") or {}).get(JOB_COMPLETION_INDEX_ANNOTATION)
    return index is None or (meta.get("annotations") or {}).get(JOB_COMPLETION_INDEX_ANNOTATION) == index


# A Job's default backoffLimit (batch/v1).
DEFAULT_BACKOFF_LIMIT = 6


# The exit codes of a container stopped by its pod's removal (SIGTERM, then SIGKILL after the grace period).
KILLED_EXIT_CODES = frozenset({137, 143})
IGNORE_HINT = "a podFailurePolicy rule with action Ignore on the DisruptionTarget condition lets it move"


def job_refusal(job: Mapping[str, Any], *, evicted: bool = True) -> str | None:
    """Why removing a pod of `job` would fail the Job, so that no pod would come back (None: it would not).

    The removed pod fails, and the Job applies the first podFailurePolicy rule that matches that failure (the rules
    are tried in order): `Ignore` counts nothing, `FailJob` fails the Job, `FailIndex` its index, `Count` (or no
    matching rule) counts one failure against backoffLimit (backoffLimitPerIndex). A rule on the DisruptionTarget
    condition matches only an eviction (`evicted`): a plain delete (ignorePDB) sets no such condition. A rule on exit
    codes matches when it may hold for a killed container (137, 143)."""
    spec = job.get("spec") or {}
    name = (job.get("metadata") or {}).get("name")
    rules = (spec.get("podFailurePolicy") or {}).get("rules") or []
    for position, rule in enumerate(rules, start=1):
        if not _matches_a_removal(rule, evicted=evicted):
            continue
        action = rule.get("action")
        if action == "Ignore":
            return None
        if action == "FailJob":
            return f"podFailurePolicy rule {position} of Job '{name}' (FailJob) matches the removed pod's failure"
        if action == "FailIndex":
            return f"podFailurePolicy rule {position} of Job '{name}' (FailIndex) matches the removed pod's failure"
        break  # Count: one failure, as without a rule
    hint = IGNORE_HINT if evicted else "an eviction instead of ignorePDB's delete may"
    if spec.get("backoffLimitPerIndex") is not None:
        if int(spec["backoffLimitPerIndex"]) > 0:
            return None
        return (
            f"removing the pod counts as one failure of its index, and Job '{name}' has backoffLimitPerIndex 0: that"
            f" index would fail and its pod would not come back ({hint})"
        )
    limit = int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT))
    failed = int((job.get("status") or {}).get("failed") or 0)
    if failed + 1 <= limit:
        return None
    return (
        f"removing the pod counts as one failure of Job '{name}', which has {failed} of its backoffLimit {limit}: the"
        f" Job would fail and its pod would not come back ({hint})"
    )


def _matches_a_removal(rule: Mapping[str, Any], *, evicted: bool) -> bool:
    conditions = rule.get("onPodConditions") or []
    if any(c.get("type") == "DisruptionTarget" and c.get("status", "True") == "True" for c in conditions):
        return evicted
    codes = rule.get("onExitCodes")
    if not isinstance(codes, Mapping):
        return False
    values = set(codes.get("values") or [])
    if codes.get("operator") == "In":
        return bool(values & KILLED_EXIT_CODES)
    return not values.issuperset(KILLED_EXIT_CODES)  # NotIn: matches a killed container unless it lists both
