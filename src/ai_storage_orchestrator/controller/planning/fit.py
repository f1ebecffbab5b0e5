"""Does the target pod fit the target node? The scheduler's filters we bypass by setting ``nodeName``.

Readiness, cordon, taints (NoSchedule/NoExecute) against tolerations, ``nodeSelector``, required node affinity,
allocatable cpu/memory/pods, extended resources (``nvidia.com/gpu``, ``hugepages-*``, device plugins) and
ephemeral-storage minus what the node's non-terminal pods already request, host ports already taken on the node, and
the node affinity of the PersistentVolumes bound to the pod's claims (the VolumeBinding filter).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ai_storage_orchestrator.controller.planning.checks import (
    HOST_PORT_CONFLICT,
    INSUFFICIENT_RESOURCES,
    NODE_AFFINITY_MISMATCH,
    NODE_SELECTOR_MISMATCH,
    TAINTS_NOT_TOLERATED,
    TARGET_NODE_CORDONED,
    TARGET_NODE_NOT_READY,
    VOLUME_NODE_AFFINITY,
    Check,
    check,
)
from ai_storage_orchestrator.controller.planning.containers import is_sidecar
from ai_storage_orchestrator.controller.planning.quantities import (
    EPHEMERAL_STORAGE,
    cpu_millicores,
    format_resources,
    format_scalar,
    is_extended_resource,
    memory_bytes,
    pod_requests,
    pod_scalar_requests,
    quantity_int,
)
from ai_storage_orchestrator.controller.planning.volumes import VolumeInfo
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


class HostPort(NamedTuple):
    """A ``containerPort`` bound on the node: protocol (default TCP), host IP (default ``0.0.0.0``) and port."""

    protocol: str
    host_ip: str
    port: int

    def conflicts_with(self, other: HostPort) -> bool:
        """The scheduler's ``HostPortInfo`` rule: same protocol and port, and the same IP or either is 0.0.0.0."""
        return (
            self.protocol == other.protocol
            and self.port == other.port
            and (self.host_ip == other.host_ip or _ANY_IP in (self.host_ip, other.host_ip))
        )

    def __str__(self) -> str:
        return f"{self.protocol} {self.host_ip}:{self.port}"


_ANY_IP = "0.0.0.0"  # a host port's wildcard address


def host_ports(pod_spec: Mapping[str, Any]) -> tuple[HostPort, ...]:
    """The host ports a pod binds: its containers' and its sidecars' (restartable init containers) ``hostPort``s."""
    containers = [
        *(pod_spec.get("containers") or []),
        *(c for c in pod_spec.get("initContainers") or [] if is_sidecar(c)),
    ]
    return tuple(
        HostPort(str(port.get("protocol") or "TCP"), str(port.get("hostIP") or _ANY_IP), int(port["hostPort"]))
        for container in containers
        for port in container.get("ports") or []
        if int(port.get("hostPort") or 0) > 0
    )


@dataclass(frozen=True, slots=True)
class PlacedUsage:
    """What a pod takes from its node: cpu/memory requests, ephemeral-storage and extended-resource requests (by
    resource name, zeros left out) and the host ports it binds."""

    resources: Resources
    scalars: Mapping[str, int]
    host_ports: tuple[HostPort, ...]


def pod_usage(pod_spec: Mapping[str, Any]) -> PlacedUsage:
    return PlacedUsage(pod_requests(pod_spec), pod_scalar_requests(pod_spec), host_ports(pod_spec))


_REQUESTS_BY_VERSION: OrderedDict[tuple[str, str, int], PlacedUsage] = OrderedDict()
_REQUESTS_CACHE_SIZE = 32768


def placed_usage(pod: Mapping[str, Any]) -> PlacedUsage:
    """A pod's effective requests and host ports, remembered per cached object (uid, resourceVersion and the spec
    object itself): a version's spec never changes, and a node's other pods are summed on every plan."""
    meta = pod.get("metadata") or {}
    uid, version, spec = meta.get("uid"), meta.get("resourceVersion"), pod.get("spec") or {}
    if not uid or not version:
        return pod_usage(spec)
    key = (str(uid), str(version), id(spec))
    cached = _REQUESTS_BY_VERSION.get(key)
    if cached is None:
        cached = _REQUESTS_BY_VERSION[key] = pod_usage(spec)
        if len(_REQUESTS_BY_VERSION) > _REQUESTS_CACHE_SIZE:
            _REQUESTS_BY_VERSION.popitem(last=False)
    return cached


def placed_requests(pod: Mapping[str, Any]) -> Resources:
    """A pod's effective cpu/memory requests (see ``placed_usage``)."""
    return placed_usage(pod).resources


def placed_pods(target_pod: Mapping[str, Any], pods_on_target: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The node's pods that hold resources: not finished, and not the target pod itself (by namespace/name), so
    re-planning after it was created stays idempotent."""
    target_meta = target_pod.get("metadata") or {}
    target_key = (target_meta.get("namespace"), target_meta.get("name"))
    placed = []
    for other in pods_on_target:
        meta = other.get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) == target_key:
            continue
        if (other.get("status") or {}).get("phase") in _TERMINAL_PHASES:
            continue
        placed.append(other)
    return placed


def resources_fit(
    node: Mapping[str, Any], target_pod: Mapping[str, Any], pods_on_target: Iterable[Mapping[str, Any]]
) -> Check:
    """Allocatable minus the requests of the node's non-terminal pods must hold the target pod (and one pod slot).

    A pod with the target pod's own namespace/name is not counted: re-planning after it was created stays idempotent.
    """
    used = Resources()
    count = 0
    for other in placed_pods(target_pod, pods_on_target):
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


def _node_scalars(node: Mapping[str, Any]) -> dict[str, int]:
    """The node's allocatable ephemeral-storage and extended resources by name."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return {
        str(name): quantity_int(value)
        for name, value in allocatable.items()
        if name == EPHEMERAL_STORAGE or is_extended_resource(str(name))
    }


def _used_scalars(placed: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    used: dict[str, int] = {}
    for other in placed:
        for name, value in placed_usage(other).scalars.items():
            used[name] = used.get(name, 0) + value
    return used


def _shortage(name: str, needed: int, free: int, allocatable: int, used: int) -> str:
    return (
        f"{name}: requests {format_scalar(name, needed)}, {format_scalar(name, max(free, 0))} free"
        f" (allocatable {format_scalar(name, allocatable)}, already requested {format_scalar(name, used)})"
    )


def extended_resources_fit(
    node: Mapping[str, Any], target_pod: Mapping[str, Any], pods_on_target: Iterable[Mapping[str, Any]]
) -> Check:
    """Every extended resource the target pod requests (``nvidia.com/gpu``, ``hugepages-2Mi``, a device plugin's)
    must be free on the node: allocatable (0 when the node does not list it) minus the node's pods' requests."""
    needed = {n: v for n, v in pod_scalar_requests(target_pod.get("spec") or {}).items() if is_extended_resource(n)}
    allocatable = _node_scalars(node)
    used = _used_scalars(placed_pods(target_pod, pods_on_target)) if needed else {}
    table = {
        name: {
            "requested": value,
            "allocatable": allocatable.get(name, 0),
            "used": used.get(name, 0),
            "free": allocatable.get(name, 0) - used.get(name, 0),
        }
        for name, value in needed.items()
    }
    short = [name for name, row in table.items() if row["requested"] > row["free"]]
    texts = [
        _shortage(name, row["requested"], row["free"], row["allocatable"], row["used"])
        for name, row in table.items()
        if name in short
    ]
    if short:
        message = f"not enough {', '.join(short)} on node {_name(node)}: {'; '.join(texts)}"
    elif needed:
        message = f"node {_name(node)} has the extended resources the pod requests: " + ", ".join(
            f"{name} {format_scalar(name, row['requested'])} of {format_scalar(name, row['free'])} free"
            for name, row in table.items()
        )
    else:
        message = "the target pod requests no extended resources"
    return check(
        "extended_resources_fit",
        INSUFFICIENT_RESOURCES,
        ok=not short,
        message=message,
        node=_name(node),
        insufficient=short,
        resources=table,
    )


def ephemeral_storage_fit(
    node: Mapping[str, Any], target_pod: Mapping[str, Any], pods_on_target: Iterable[Mapping[str, Any]]
) -> Check:
    """The target pod's ephemeral-storage request against the node's allocatable minus its pods' requests. A node that
    reports no allocatable ephemeral-storage is not checked (the check passes and says so)."""
    name = EPHEMERAL_STORAGE
    needed = pod_scalar_requests(target_pod.get("spec") or {}).get(name, 0)
    allocatable = _node_scalars(node).get(name)
    if allocatable is None:
        return check(
            "ephemeral_storage_fit",
            INSUFFICIENT_RESOURCES,
            ok=True,
            message=f"node {_name(node)} reports no allocatable ephemeral-storage: not checked",
            node=_name(node),
            checked=False,
            requested=needed,
        )
    used = _used_scalars(placed_pods(target_pod, pods_on_target)).get(name, 0)
    free = allocatable - used
    ok = needed <= free
    detail = _shortage(name, needed, free, allocatable, used)
    message = (
        f"node {_name(node)} has the ephemeral-storage the pod requests: {detail}"
        if ok
        else f"not enough ephemeral-storage on node {_name(node)}: {detail}"
    )
    return check(
        "ephemeral_storage_fit",
        INSUFFICIENT_RESOURCES,
        ok=ok,
        message=message,
        node=_name(node),
        checked=True,
        insufficient=[] if ok else [name],
        requested=needed,
        free=free,
        allocatable=allocatable,
        used=used,
    )


ANOTHER_NAMESPACE_POD = "a pod of another namespace"


def _namespace(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("namespace") or "default")


def _pod_text(pod: Mapping[str, Any], namespace: str) -> str:
    """``pod`` as a conflict names it to whoever migrates a pod of ``namespace``: ``namespace/name`` for a pod of that
    namespace; a pod of another one is not named -- the text reaches REST answers, dry runs and Events, whose readers
    may not see that namespace (not even that it has a pod on the node)."""
    if _namespace(pod) != namespace:
        return ANOTHER_NAMESPACE_POD
    return f"{namespace}/{(pod.get('metadata') or {}).get('name')}"


def host_ports_free(
    node: Mapping[str, Any], target_pod: Mapping[str, Any], pods_on_target: Iterable[Mapping[str, Any]]
) -> Check:
    """No host port of the target pod may already be bound on the node by another (non-finished) pod."""
    wanted = host_ports(target_pod.get("spec") or {})
    namespace = _namespace(target_pod)
    conflicts: list[dict[str, Any]] = []
    if wanted:
        for other in placed_pods(target_pod, pods_on_target):
            for taken in placed_usage(other).host_ports:
                for port in wanted:
                    if port.conflicts_with(taken):
                        pod = _pod_text(other, namespace)
                        conflicts.append({**port._asdict(), "pod": pod, "taken": taken._asdict()})
    if conflicts:
        message = f"host port(s) already in use on node {_name(node)}: " + ", ".join(
            f"{HostPort(c['protocol'], c['host_ip'], c['port'])} by "
            + (c["pod"] if c["pod"] == ANOTHER_NAMESPACE_POD else f"pod {c['pod']}")
            for c in conflicts
        )
    elif wanted:
        message = f"host port(s) {', '.join(str(p) for p in wanted)} are free on node {_name(node)}"
    else:
        message = "the target pod binds no host port"
    return check(
        "host_ports_free",
        HOST_PORT_CONFLICT,
        ok=not conflicts,
        message=message,
        node=_name(node),
        host_ports=[p._asdict() for p in wanted],
        conflicts=conflicts,
    )


def volumes_node_affinity(node: Mapping[str, Any], volumes: Iterable[VolumeInfo]) -> Check:
    """Every PersistentVolume bound to one of the target pod's claims must be reachable from the node: its
    ``spec.nodeAffinity.required`` terms (ORed) must match the node, as the scheduler's VolumeBinding filter asks."""
    restricted = [v for v in volumes if v.node_affinity is not None]
    bad = [v for v in restricted if not any(term_matches(node, t) for t in v.node_affinity or ())]
    texts = [f"PV {v.pv_name or '(unnamed)'} of {v.describe()}" for v in bad]
    if bad:
        message = (
            f"node {_name(node)} does not match the required node affinity of {', '.join(texts)}:"
            " the volume cannot be reached from there"
        )
    elif restricted:
        message = f"node {_name(node)} matches the node affinity of every bound PersistentVolume"
    else:
        message = "no bound PersistentVolume restricts its nodes"
    return check(
        "volume_node_affinity",
        VOLUME_NODE_AFFINITY,
        ok=not bad,
        message=message,
        node=_name(node),
        volumes=[
            {"name": v.name, "claim": v.claim_name, "pv": v.pv_name, "terms": [dict(t) for t in v.node_affinity or ()]}
            for v in bad
        ],
    )


def node_fit_checks(
    node: Mapping[str, Any],
    target_pod: Mapping[str, Any],
    pods_on_target: Iterable[Mapping[str, Any]],
    volumes: Iterable[VolumeInfo] = (),
) -> list[Check]:
    """Every node check, in reporting order; none short-circuits. ``volumes`` are the target pod's volumes."""
    spec = target_pod.get("spec") or {}
    others = list(pods_on_target)
    return [
        node_ready(node),
        node_schedulable(node),
        taints_tolerated(node, spec),
        node_selector_matches(node, spec),
        node_affinity_matches(node, spec),
        resources_fit(node, target_pod, others),
        extended_resources_fit(node, target_pod, others),
        ephemeral_storage_fit(node, target_pod, others),
        host_ports_free(node, target_pod, others),
        volumes_node_affinity(node, volumes),
    ]
