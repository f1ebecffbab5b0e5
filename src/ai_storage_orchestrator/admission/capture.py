"""Which in-flight migration an owner's new pod belongs to, and how that pod is rewritten to be the move's target.

A migration of an owned pod (a Job's, a StatefulSet's, a ReplicaSet's, an operator's) evicts the source and lets the
owner create the replacement, as Kubernetes would; the mutating webhook then rewrites that replacement. It is
claimed by the migration whose recorded owner UID is the new pod's controller, whose source removal has been
recorded (``sourceStopped``) and which has no live captured pod yet; a StatefulSet's pod must also have the
source's name (its ordinal). The rewrite starts from the owner's pod, not from the recorded target manifest, so that
whatever the owner's template says now (a new revision, its service-account token volume) stays; from the plan it
takes only the move's changes: the target node, the containers left out, the restore init container and its
volumes, the checkpoint's environment variable, the migration's label and annotations, and - while the source may
still run - the gate (controller/planning/gate.py) that holds the containers until the source has stopped.

Pure: no I/O."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from ai_storage_orchestrator.bodies import Body
from ai_storage_orchestrator.checkpoint.layout import CHECKPOINT_DIR_ENV
from ai_storage_orchestrator.checkpoint.restoring import RESTORE_CONTAINER_PREFIX
from ai_storage_orchestrator.controller.invariant import terminating
from ai_storage_orchestrator.controller.planning.gate import owned_gate_deadline, token_digest, with_gate
from ai_storage_orchestrator.controller.planning.marking import made_by, mark_containers
from ai_storage_orchestrator.controller.planning.owner import controlling_owner, replaces_source
from ai_storage_orchestrator.controller.planning.volumes import referenced_volumes
from ai_storage_orchestrator.controller.records import phase_of
from ai_storage_orchestrator.conventions import API_GROUP, MIGRATION_ID_LABEL
from ai_storage_orchestrator.models import Phase

JSON = dict[str, Any]
# The phases in which a migration waits for its owner's replacement.
CAPTURING_PHASES = frozenset({Phase.STOPPING_SOURCE})
# ... and those in which a surge (controller/surge.py) waits for the owner's one pod more.
SURGE_PHASES = frozenset({Phase.CREATING_TARGET, Phase.WAITING_FOR_TARGET})


def claiming_migration(
    pod: Mapping[str, Any], namespace: str, migrations: Iterable[JSON], pods: Iterable[JSON]
) -> JSON | None:
    """The migration that captures `pod` (being created in `namespace`), or None."""
    owner = controlling_owner(pod)
    if owner is None or not owner.get("uid"):
        return None
    candidates = [
        m
        for m in migrations
        if (m.get("metadata") or {}).get("namespace") == namespace
        and (Body(m).status.get("owner") or {}).get("uid") == owner["uid"]
        and _waits_for_a_pod(m)
    ]
    candidates = [
        m
        for m in candidates
        if replaces_source(
            pod,
            owner_kind=str(owner.get("kind")),
            source_name=str(Body(m).spec.get("podName")),
            template=Body(m).status.get("targetPodManifest") or {},
        )
    ]
    live = [p for p in pods if (p.get("metadata") or {}).get("namespace") == namespace and not terminating(p)]
    free = [m for m in candidates if not any(made_by(p, m) for p in live)]
    return min(free, key=lambda m: str(m["metadata"].get("creationTimestamp") or ""), default=None)


def _waits_for_a_pod(migration: JSON) -> bool:
    """Its source removal recorded (checkpoint-restart), or its owner asked for one pod more (surge)."""
    status = Body(migration).status
    if (status.get("owner") or {}).get("surge"):
        return phase_of(migration) in SURGE_PHASES
    return phase_of(migration) in CAPTURING_PHASES and bool(status.get("sourceStopped"))


def _names(containers: Iterable[Mapping[str, Any]]) -> set[str]:
    return {str(c.get("name")) for c in containers}


def _checkpoint_env(template: Mapping[str, Any]) -> dict[str, JSON]:
    """The checkpoint directory variable the plan gave each container, by container name."""
    found: dict[str, JSON] = {}
    for container in template.get("containers") or []:
        for variable in container.get("env") or []:
            if variable.get("name") == CHECKPOINT_DIR_ENV:
                found[str(container.get("name"))] = dict(variable)
    return found


def captured_pod(pod: Mapping[str, Any], migration: Mapping[str, Any], *, gate: bool, now: float | None = None) -> JSON:
    """The owner's `pod` rewritten as the migration's target (see the module's docstring). `gate`: held until the
    source has stopped, and at the latest until `gate.owned_gate_deadline` from `now` (seconds since the epoch)."""
    status = Body(dict(migration)).status
    template_spec: JSON = (status.get("targetPodManifest") or {}).get("spec") or {}
    template_meta: JSON = (status.get("targetPodManifest") or {}).get("metadata") or {}
    target: JSON = copy.deepcopy(dict(pod))
    spec: JSON = target.setdefault("spec", {})

    kept = _names(template_spec.get("containers") or [])
    env = _checkpoint_env(template_spec)
    containers = [c for c in spec.get("containers") or [] if c.get("name") in kept]
    for container in containers:
        variable = env.get(str(container.get("name")))
        if variable is not None:
            others = [e for e in container.get("env") or [] if e.get("name") != CHECKPOINT_DIR_ENV]
            container["env"] = [*others, variable]
    before = _referenced(spec)
    mark_containers(containers, migration["metadata"]["name"])
    spec["containers"] = containers

    template_init = template_spec.get("initContainers") or []
    restores = [c for c in template_init if str(c.get("name")).startswith(RESTORE_CONTAINER_PREFIX)]
    kept_init = _names(template_init)
    init = [*restores, *(c for c in spec.get("initContainers") or [] if c.get("name") in kept_init)]
    if init:
        spec["initContainers"] = init
    else:
        spec.pop("initContainers", None)

    after = _referenced(spec)
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") in after or v.get("name") not in before]
    present = _names(volumes)
    volumes += [v for v in template_spec.get("volumes") or [] if v.get("name") in after - present]
    if volumes:
        spec["volumes"] = volumes
    else:
        spec.pop("volumes", None)
    spec["nodeName"] = migration["spec"]["targetNode"]

    meta: JSON = target.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), MIGRATION_ID_LABEL: migration["metadata"]["name"]}
    ours = {k: v for k, v in (template_meta.get("annotations") or {}).items() if k.startswith(f"{API_GROUP}/")}
    meta["annotations"] = {**(meta.get("annotations") or {}), **ours}
    token = (status.get("owner") or {}).get("token")
    if gate and token:
        grace = (status.get("targetPodManifest") or {}).get("spec", {}).get("terminationGracePeriodSeconds")
        open_at = None if now is None else owned_gate_deadline(now, grace)
        target = with_gate(target, token_digest(str(token)), open_at=open_at)
    return target


def _referenced(spec: Mapping[str, Any]) -> set[str]:
    refs: set[str] = set()
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        refs |= referenced_volumes(container)
    return refs


def capture_patch(pod: Mapping[str, Any], target: Mapping[str, Any]) -> list[JSON]:
    """The JSONPatch that turns `pod` into `target` (the spec whole, the labels and annotations whole)."""
    meta = target.get("metadata") or {}
    return [
        {"op": "replace" if "spec" in pod else "add", "path": "/spec", "value": target["spec"]},
        {"op": "add", "path": "/metadata/labels", "value": meta.get("labels") or {}},
        {"op": "add", "path": "/metadata/annotations", "value": meta.get("annotations") or {}},
    ]
