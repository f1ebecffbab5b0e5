"""Automatic target choice: which node a pod moves to when the request names none (``target_node`` omitted or
``auto``).

Filter, then score. A node is eligible only when it passes every fit check a named target must pass
(``fit.node_fit_checks``: Ready, not cordoned, taints tolerated, nodeSelector and required node affinity, cpu/memory/
pods, extended resources, ephemeral-storage, host ports, the volumes' node affinity) and is not the source node. The
eligible nodes are ranked by, in this order:

1. the node already has every image of the target pod (``status.images``): no pull before the target can start;
2. least allocated after the move: the mean of the cpu and memory requests (the node's pods plus the target pod)
   over allocatable, rounded to 1/10000;
3. spread: fewer pods of the same workload on the node (same controlling owner; for a pod without one, pods that
   carry all its labels);
4. the node's name.

Pure: the caller hands in the nodes and the pods on each; ``TargetChoice`` explains the outcome (how many nodes were
considered, the chosen one with its score parts, the best runners-up, and every refused node's first reason, listed
up to ``MAX_LISTED``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ai_storage_orchestrator.controller.planning.checks import (
    NO_TARGET_NODE,
    REASON_PRIORITY,
    SOURCE_EQUALS_TARGET,
    Check,
    check,
)
from ai_storage_orchestrator.controller.planning.fit import node_fit_checks, placed_pods, placed_requests
from ai_storage_orchestrator.controller.planning.quantities import cpu_millicores, memory_bytes, pod_requests
from ai_storage_orchestrator.controller.planning.targetpod import DROPPED_LABELS
from ai_storage_orchestrator.controller.planning.volumes import VolumeInfo
from ai_storage_orchestrator.conventions import MIGRATION_ID_LABEL
from ai_storage_orchestrator.models import Resources

MAX_LISTED = 20  # refused nodes listed in the explanation (their total is always given)
MAX_RUNNERS_UP = 5  # eligible nodes shown after the chosen one
RANKING = (
    "every image already on the node first, then least allocated after the move (mean of cpu and memory requests"
    " over allocatable), then fewest pods of the same workload, then name"
)
_PRIORITY = {reason: index for index, reason in enumerate(REASON_PRIORITY)}
_DOCKER_HUB = "docker.io"


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


# Images -------------------------------------------------------------------------------------------------------------
def normalize_image(reference: str) -> str:
    """An image reference in the form a node lists it: ``busybox`` → ``docker.io/library/busybox:latest``; a digest
    wins over a tag (``repo:tag@sha256:…`` → ``repo@sha256:…``)."""
    name, _, digest = reference.strip().partition("@")
    tag = ""
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = _DOCKER_HUB, name
    if domain in ("index.docker.io", "registry-1.docker.io"):
        domain = _DOCKER_HUB
    if domain == _DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    base = f"{domain}/{path}"
    return f"{base}@{digest}" if digest else f"{base}:{tag or 'latest'}"


def pod_images(pod_spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The images of a pod's init and regular containers, in order, each once."""
    containers = [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]
    return tuple(dict.fromkeys(str(c["image"]) for c in containers if c.get("image")))


def node_images(node: Mapping[str, Any]) -> frozenset[str]:
    """Every name under which the node's ``status.images`` lists an image, normalized."""
    return frozenset(
        normalize_image(str(name))
        for image in (node.get("status") or {}).get("images") or []
        for name in image.get("names") or []
    )


def missing_images(images: Iterable[str], node: Mapping[str, Any]) -> tuple[str, ...]:
    present = node_images(node)
    return tuple(image for image in images if normalize_image(image) not in present)


# Spread -------------------------------------------------------------------------------------------------------------
def _controller_uid(pod: Mapping[str, Any]) -> str | None:
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), None)
    return str(owner.get("uid")) if owner and owner.get("uid") else None


def workload_labels(pod: Mapping[str, Any]) -> dict[str, str]:
    """The labels that say which workload a pod belongs to: its own, without controllers' bookkeeping and the
    migration's."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items() if k not in DROPPED_LABELS and k != MIGRATION_ID_LABEL}


def same_workload(pod: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """``other`` belongs to ``pod``'s workload: the same controlling owner (by uid) or, for a pod without one, all of
    its workload labels (a pod with no label has no peers)."""
    uid = _controller_uid(pod)
    if uid is not None:
        return _controller_uid(other) == uid
    wanted = workload_labels(pod)
    labels = (other.get("metadata") or {}).get("labels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


# Scores -------------------------------------------------------------------------------------------------------------
def _fraction(used: int, allocatable: int) -> float:
    return 1.0 if allocatable <= 0 else round(used / allocatable, 4)


@dataclass(frozen=True, slots=True)
class NodeScore:
    """How an eligible node ranks; ``key`` orders best first."""

    node: str
    images_missing: tuple[str, ...]
    cpu_after: float
    memory_after: float
    allocated_after: float
    same_workload_pods: int

    @property
    def images_present(self) -> bool:
        return not self.images_missing

    def key(self) -> tuple[bool, float, int, str]:
        return (not self.images_present, self.allocated_after, self.same_workload_pods, self.node)

    def describe(self) -> str:
        images = "every image already there" if self.images_present else f"{len(self.images_missing)} image(s) to pull"
        return (
            f"{images}, {self.allocated_after:.1%} allocated after the move (cpu {self.cpu_after:.1%},"
            f" memory {self.memory_after:.1%}), {self.same_workload_pods} pod(s) of the same workload"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "score": {
                "images_present": self.images_present,
                "images_missing": list(self.images_missing),
                "cpu_after": self.cpu_after,
                "memory_after": self.memory_after,
                "allocated_after": self.allocated_after,
                "same_workload_pods": self.same_workload_pods,
            },
        }


def score_node(
    node: Mapping[str, Any],
    *,
    pod: Mapping[str, Any],
    target_pod: Mapping[str, Any],
    pods_on_node: Iterable[Mapping[str, Any]],
) -> NodeScore:
    """The score parts of one node for ``target_pod`` (the copy of ``pod`` that would run there)."""
    placed = placed_pods(target_pod, pods_on_node)
    used = Resources()
    for other in placed:
        used += placed_requests(other)
    after = used + pod_requests(target_pod.get("spec") or {})
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    cpu = _fraction(after.cpu_millicores, cpu_millicores(allocatable.get("cpu", 0)))
    memory = _fraction(after.memory_bytes, memory_bytes(allocatable.get("memory", 0)))
    return NodeScore(
        node=_name(node),
        images_missing=missing_images(pod_images(target_pod.get("spec") or {}), node),
        cpu_after=cpu,
        memory_after=memory,
        allocated_after=round((cpu + memory) / 2, 4),
        same_workload_pods=sum(1 for other in placed if same_workload(pod, other)),
    )


# The choice ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a node cannot take the pod: its first failed check (``REASON_PRIORITY`` order)."""

    node: str
    reason: str
    check: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"node": self.node, "reason": self.reason, "check": self.check, "message": self.message}


def first_refusal(node: str, checks: Sequence[Check]) -> Refusal | None:
    failed = sorted((c for c in checks if not c.passed), key=lambda c: _PRIORITY.get(c.reason, len(_PRIORITY)))
    if not failed:
        return None
    first = failed[0]
    return Refusal(node=node, reason=first.reason, check=first.name, message=first.message)


@dataclass(frozen=True, slots=True)
class TargetChoice:
    """The outcome: ``ranking`` holds the eligible nodes best first (the chosen one is its head), ``refused`` every
    other node by name."""

    considered: int
    ranking: tuple[NodeScore, ...]
    refused: tuple[Refusal, ...]

    @property
    def chosen(self) -> NodeScore | None:
        return self.ranking[0] if self.ranking else None

    def to_json(self) -> dict[str, Any]:
        chosen = self.chosen
        return {
            "considered": self.considered,
            "eligible": len(self.ranking),
            "chosen": chosen.to_json() if chosen else None,
            "runners_up": [s.to_json() for s in self.ranking[1 : 1 + MAX_RUNNERS_UP]],
            "refused": [r.to_json() for r in self.refused[:MAX_LISTED]],
            "refused_total": len(self.refused),
            "ranking": RANKING,
        }

    def as_check(self, pod_ref: str) -> Check:
        """``target_node_chosen``: passes with the chosen node, fails with ``no_target_node`` and every node's
        reason (up to ``MAX_LISTED``) when none fits."""
        chosen = self.chosen
        if chosen is not None:
            return check(
                "target_node_chosen",
                NO_TARGET_NODE,
                ok=True,
                message=(
                    f"chose node {chosen.node} among {len(self.ranking)} eligible of {self.considered} node(s):"
                    f" {chosen.describe()}"
                ),
                node=chosen.node,
                considered=self.considered,
                eligible=len(self.ranking),
            )
        shown = "; ".join(f"{r.node}: {r.reason}" for r in self.refused[:5])
        more = f"; and {len(self.refused) - 5} more" if len(self.refused) > 5 else ""
        return check(
            "target_node_chosen",
            NO_TARGET_NODE,
            ok=False,
            message=(
                f"no node can take pod {pod_ref}: none of the {self.considered} node(s) passes every fit check"
                + (f" ({shown}{more})" if self.refused else "")
            ),
            **self.to_json(),
        )


def choose_target(
    *,
    pod: Mapping[str, Any],
    target_pod: Mapping[str, Any],
    nodes: Iterable[Mapping[str, Any]],
    pods_by_node: Mapping[str, Sequence[Mapping[str, Any]]],
    source_node: str,
    volumes: Iterable[VolumeInfo] = (),
) -> TargetChoice:
    """Run every fit check of a named target on each node (``target_pod``'s ``nodeName`` is ignored), refuse the
    source node, and rank the rest (see the module's docstring)."""
    volumes = list(volumes)
    ranking: list[NodeScore] = []
    refused: list[Refusal] = []
    considered = 0
    for node in sorted(nodes, key=_name):
        considered += 1
        name = _name(node)
        if name == source_node:
            refused.append(
                Refusal(name, SOURCE_EQUALS_TARGET, "source_differs_from_target", f"node {name} is the source node")
            )
            continue
        others = list(pods_by_node.get(name) or ())
        refusal = first_refusal(name, node_fit_checks(node, target_pod, others, volumes))
        if refusal is not None:
            refused.append(refusal)
            continue
        ranking.append(score_node(node, pod=pod, target_pod=target_pod, pods_on_node=others))
    return TargetChoice(
        considered=considered, ranking=tuple(sorted(ranking, key=NodeScore.key)), refused=tuple(refused)
    )
