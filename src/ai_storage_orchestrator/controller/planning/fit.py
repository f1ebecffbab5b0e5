"""Does the target pod fit the target node? The scheduler's filters we bypass by setting ``nodeName``.

Readiness, cordon, taints (NoSchedule/NoExecute) against tolerations, ``nodeSelector``, required node affinity, and
allocatable cpu/memory/pods minus what the node's non-terminal pods already request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from ai_storage_orchestrator.controller.planning.checks import (
    INSUFFICIENT_RESOURCES,
    NODE_AFFINITY_MISMATCH,
    NODE_SELECTOR_MISMATCH,
    TAINTS_NOT_TOLERATED,
    TARGET_NODE_CORDONED,
    TARGET_NODE_NOT_READY,
    Check,
    check,
)
from ai_storage_orchestrator.controller.planning.quantities import (
    cpu_millicores,
    format_resources,
    memory_bytes,
    pod_requests,
    quantity_int,
)
from ai_storage_orchestrator.models import Resources

_BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
_TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def node_ready(node: Mapping[str, Any]) -> Check:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    status = None if ready is None else str(ready.get("status"))
    ok = status == "True"
    message = f"node {_name(node)} is Ready" if ok else f"node {_name(node)} is not Ready (Ready={status or 'missing'})"
    return check("target_node_ready", TARGET_NODE_NOT_READY, ok=ok, message=message, ready=status)


def node_schedulable(node: Mapping[str, Any]) -> Check:
    ok = not (node.get("spec") or {}).get("unschedulable", False)
    message = f"node {_name(node)} is schedulable" if ok else f"node {_name(node)} is cordoned (spec.unschedulable)"
    return check("target_node_schedulable", TARGET_NODE_CORDONED, ok=ok, message=message)


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes ``Toleration.ToleratesTaint``: empty effect matches all, empty key (with Exists) matches all keys."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taints(
    taints: Iterable[Mapping[str, Any]], tolerations: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    tolerations = list(tolerations)
    return [
        taint
        for taint in taints
        if taint.get("effect") in _BLOCKING_EFFECTS and not any(tolerates(t, taint) for t in tolerations)
    ]


def _taint_text(taint: Mapping[str, Any]) -> str:
    value = taint.get("value")
    return f"{taint.get('key')}{'=' + str(value) if value else ''}:{taint.get('effect')}"


def taints_tolerated(node: Mapping[str, Any], pod_spec: Mapping[str, Any]) -> Check:
    bad = untolerated_taints((node.get("spec") or {}).get("taints") or [], pod_spec.get("tolerations") or [])
    texts = [_taint_text(t) for t in bad]
    message = (
        f"node {_name(node)} has taints the pod does not tolerate: {', '.join(texts)}"
        if bad
        else "every NoSchedule/NoExecute taint is tolerated"
    )
    return check("taints_tolerated", TAINTS_NOT_TOLERATED, ok=not bad, message=message, taints=[dict(t) for t in bad])


def node_selector_matches(node: Mapping[str, Any], pod_spec: Mapping[str, Any]) -> Check:
    labels = (node.get("metadata") or {}).get("labels") or {}
    selector = pod_spec.get("nodeSelector") or {}
    missing = {k: v for k, v in selector.items() if labels.get(k) != v}
    message = (
        f"node {_name(node)} lacks nodeSelector labels: {', '.join(f'{k}={v}' for k, v in missing.items())}"
        if missing
        else "nodeSelector matches"
    )
    return check("node_selector_matches", NODE_SELECTOR_MISMATCH, ok=not missing, message=message, missing=missing)


def _int(text: Any) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def requirement_matches(values: Mapping[str, Any], requirement: Mapping[str, Any]) -> bool:
    """One ``NodeSelectorRequirement`` (In/NotIn/Exists/DoesNotExist/Gt/Lt) against labels or fields."""
    key = str(requirement.get("key"))
    operator = requirement.get("operator")
    wanted = [str(v) for v in requirement.get("values") or []]
    present = key in values
    actual = str(values[key]) if present else None
    if operator == "In":
        return present and actual in wanted
    if operator == "NotIn":
        return not present or actual not in wanted
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(wanted) == 1:
        have, bound = _int(actual), _int(wanted[0])
        if have is None or bound is None:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def term_matches(node: Mapping[str, Any], term: Mapping[str, Any]) -> bool:
    """A ``NodeSelectorTerm``: AND of matchExpressions (labels) and matchFields (``metadata.name``); empty matches
    nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = (node.get("metadata") or {}).get("labels") or {}
    node_fields = {"metadata.name": _name(node)}
    return all(requirement_matches(labels, e) for e in expressions) and all(
        requirement_matches(node_fields, f) for f in fields
    )


def node_affinity_matches(node: Mapping[str, Any], pod_spec: Mapping[str, Any]) -> Check:
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    terms = None if required is None else required.get("nodeSelectorTerms") or []
    ok = terms is None or any(term_matches(node, t) for t in terms)
    message = (
        "required node affinity matches"
        if ok
        else f"node {_name(node)} matches none of the pod's required node affinity terms"
    )
    return check("node_affinity_matches", NODE_AFFINITY_MISMATCH, ok=ok, message=message, terms=terms or [])


def _allocatable(node: Mapping[str, Any]) -> tuple[Resources, int]:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    cpu = cpu_millicores(allocatable.get("cpu", 0))
    memory = memory_bytes(allocatable.get("memory", 0))
    return Resources(cpu, memory), quantity_int(allocatable.get("pods", 0))


_REQUESTS_BY_VERSION: OrderedDict[tuple[str, str, int], Resources] = OrderedDict()
_REQUESTS_CACHE_SIZE = 32768


def placed_requests(pod: Mapping[str, Any]) -> Resources:
    """A pod's effective requests, remembered per cached object (uid, resourceVersion and the spec object itself): a
    version's spec never changes, and a node's other pods are summed on every plan."""
    meta = pod.get("metadata") or {}
    uid, version, spec = meta.get("uid"), meta.get("resourceVersion"), pod.get("spec") or {}
    if not uid or not version:
        return pod_requests(spec)
    key = (str(uid), str(version), id(spec))
    cached = _REQUESTS_BY_VERSION.get(key)
    if cached is None:
        cached = _REQUESTS_BY_VERSION[key] = pod_requests(spec)
        if len(_REQUESTS_BY_VERSION) > _REQUESTS_CACHE_SIZE:
            _REQUESTS_BY_VERSION.popitem(last=False)
    return cached


def resources_fit(
    node: Mapping[str, Any], target_pod: Mapping[str, Any], pods_on_target: Iterable[Mapping[str, Any]]
) -> Check:
    """Allocatable minus the requests of the node's non-terminal pods must hold the target pod (and one pod slot).

    A pod with the target pod's own namespace/name is not counted: re-planning after it was created stays idempotent.
    """
    target_meta = target_pod.get("metadata") or {}
    target_key = (target_meta.get("namespace"), target_meta.get("name"))
    used = Resources()
    count = 0
    for other in pods_on_target:
        meta = other.get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) == target_key:
            continue
        if (other.get("status") or {}).get("phase") in _TERMINAL_PHASES:
            continue
        used += placed_requests(other)
        count += 1
    allocatable, max_pods = _allocatable(node)
    free = allocatable - used
    needed = pod_requests(target_pod.get("spec") or {})
    short = []
    if needed.cpu_millicores > free.cpu_millicores:
        short.append("cpu")
    if needed.memory_bytes > free.memory_bytes:
        short.append("memory")
    if count + 1 > max_pods:
        short.append("pods")
    message = (
        f"target pod needs {format_resources(needed)} and 1 pod slot; node {_name(node)} has {format_resources(free)}"
        f" and {max_pods - count} pod slots free (allocatable {format_resources(allocatable)}, {max_pods} pods;"
        f" {count} pods already request {format_resources(used)})"
    )
    if short:
        message = f"not enough {', '.join(short)}: {message}"
    return check(
        "resources_fit",
        INSUFFICIENT_RESOURCES,
        ok=not short,
        message=message,
        insufficient=short,
        needed=needed.to_json(),
        free={**free.to_json(), "pods": max_pods - count},
        allocatable={**allocatable.to_json(), "pods": max_pods},
    )


def node_fit_checks(
    node: Mapping[str, Any], target_pod: Mapping[str, Any], pods_on_target: Iterable[Mapping[str, Any]]
) -> list[Check]:
    """Every node check, in reporting order; none short-circuits."""
    spec = target_pod.get("spec") or {}
    return [
        node_ready(node),
        node_schedulable(node),
        taints_tolerated(node, spec),
        node_selector_matches(node, spec),
        node_affinity_matches(node, spec),
        resources_fit(node, target_pod, pods_on_target),
    ]
