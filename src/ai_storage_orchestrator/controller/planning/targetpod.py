"""The target pod: a clean copy of the source pod, pinned to the target node, without the skipped containers."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ai_storage_orchestrator.controller.planning.analysis import skipped
from ai_storage_orchestrator.controller.planning.gate import without_gate
from ai_storage_orchestrator.controller.planning.marking import mark_containers
from ai_storage_orchestrator.controller.planning.naming import target_pod_name
from ai_storage_orchestrator.controller.planning.quantities import pod_requests
from ai_storage_orchestrator.controller.planning.volumes import referenced_volumes
from ai_storage_orchestrator.conventions import (
    HANDOFF_ANNOTATION,
    MIGRATE_TO_ANNOTATION,
    MIGRATION_ID_ANNOTATION,
    MIGRATION_ID_LABEL,
    MIGRATION_STATUS_ANNOTATION,
    SKIPPED_CONTAINERS_ANNOTATION,
    SOURCE_NODE_ANNOTATION,
    SOURCE_POD_ANNOTATION,
)
from ai_storage_orchestrator.models import Action, ContainerDecision, ContainerKind, Resources

# Labels that let a controller adopt the copy, or that are a controller's own bookkeeping.
DROPPED_LABELS = frozenset(
    {
        "pod-template-hash",
        "controller-revision-hash",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "job-name",
        "controller-uid",
        "batch.kubernetes.io/job-name",
        "batch.kubernetes.io/controller-uid",
    }
)
DROPPED_ANNOTATIONS = frozenset(
    {
        MIGRATE_TO_ANNOTATION,
        MIGRATION_ID_ANNOTATION,
        MIGRATION_STATUS_ANNOTATION,
        HANDOFF_ANNOTATION,
        "kubectl.kubernetes.io/last-applied-configuration",
    }
)
_DROPPED_SPEC_FIELDS = ("nodeName", "ephemeralContainers", "schedulingGates")
_NO_ANNOTATIONS: Mapping[str, str] = MappingProxyType({})


def _skipped_names(decisions: Iterable[ContainerDecision]) -> tuple[set[str], set[str]]:
    """(skipped regular containers, skipped init containers)."""
    regular: set[str] = set()
    init: set[str] = set()
    for decision in decisions:
        if decision.action is Action.SKIP:
            (regular if decision.kind is ContainerKind.CONTAINER else init).add(decision.name)
    return regular, init


def _volume_refs(spec: Mapping[str, Any]) -> set[str]:
    refs: set[str] = set()
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        refs |= referenced_volumes(container)
    return refs


def _without_skipped(spec: dict[str, Any], decisions: Iterable[ContainerDecision]) -> None:
    regular, init = _skipped_names(decisions)
    before = _volume_refs(spec)
    spec["containers"] = [c for c in spec.get("containers") or [] if c.get("name") not in regular]
    if "initContainers" in spec:
        spec["initContainers"] = [c for c in spec["initContainers"] or [] if c.get("name") not in init]
        if not spec["initContainers"]:
            del spec["initContainers"]
    orphaned = before - _volume_refs(spec)
    if "volumes" in spec:
        spec["volumes"] = [v for v in spec["volumes"] or [] if v.get("name") not in orphaned]


def build_target_pod(
    pod: Mapping[str, Any],
    decisions: Iterable[ContainerDecision],
    *,
    migration_id: str,
    target_node: str,
    extra_annotations: Mapping[str, str] = _NO_ANNOTATIONS,
) -> dict[str, Any]:
    """A new pod object ready to create: fresh metadata, ``nodeName`` = target, SKIP containers and the volumes only
    they used removed, ephemeral containers and scheduling gates dropped, no status."""
    decisions = list(decisions)
    source_meta = pod.get("metadata") or {}
    source_spec = pod.get("spec") or {}
    name = str(source_meta.get("name"))
    namespace = str(source_meta.get("namespace") or "default")

    labels = {k: v for k, v in (source_meta.get("labels") or {}).items() if k not in DROPPED_LABELS}
    labels[MIGRATION_ID_LABEL] = migration_id
    annotations = {k: v for k, v in (source_meta.get("annotations") or {}).items() if k not in DROPPED_ANNOTATIONS}
    annotations.update(
        {
            SOURCE_POD_ANNOTATION: f"{namespace}/{name}",
            SOURCE_NODE_ANNOTATION: str(source_spec.get("nodeName") or ""),
            SKIPPED_CONTAINERS_ANNOTATION: ",".join(skipped(decisions)),
            MIGRATION_ID_ANNOTATION: migration_id,
        }
    )
    annotations.update(extra_annotations)

    spec: dict[str, Any] = copy.deepcopy(dict(source_spec))
    for field in _DROPPED_SPEC_FIELDS:
        spec.pop(field, None)
    _without_skipped(spec, decisions)
    spec = without_gate({"spec": spec})["spec"]  # a gate of an earlier move: this move adds its own when it pre-warms
    mark_containers(spec.get("containers") or [], migration_id)
    spec["nodeName"] = target_node

    target: dict[str, Any] = {
        "apiVersion": pod.get("apiVersion", "v1"),
        "kind": pod.get("kind", "Pod"),
        "metadata": {
            "name": target_pod_name(name, migration_id),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }
    return target


def requests_summary(source_pod: Mapping[str, Any], target_pod: Mapping[str, Any]) -> tuple[Resources, Resources]:
    """(requests before, requests after) as the scheduler counts them."""
    return pod_requests(source_pod.get("spec") or {}), pod_requests(target_pod.get("spec") or {})
