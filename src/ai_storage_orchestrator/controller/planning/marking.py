"""Which move made a pod: the `ai-storage.io/migration-id` label, confirmed by the same id in the pod's containers.

Anyone who may `patch` a pod can set a label, so the label alone would let them make any pod count as a move's
target (captured, adopted, kept or deleted by the orchestrator, its evictions refused). A container's environment is
fixed when the pod is created, and the orchestrator writes the variable only into pods it creates or rewrites at
their creation (the target, an owner's captured replacement). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ai_storage_orchestrator.conventions import MIGRATION_ID_ENV, MIGRATION_ID_LABEL

JSON = dict[str, Any]


def mark_containers(containers: list[JSON], migration_id: str) -> None:
    """Set the variable in every container (in place), replacing an earlier move's."""
    for container in containers:
        others = [e for e in container.get("env") or [] if e.get("name") != MIGRATION_ID_ENV]
        container["env"] = [*others, {"name": MIGRATION_ID_ENV, "value": migration_id}]


def unmark_containers(containers: list[JSON]) -> None:
    """Drop the variable (in place): a pod recreated as it was is no move's target."""
    for container in containers:
        if any(e.get("name") == MIGRATION_ID_ENV for e in container.get("env") or []):
            container["env"] = [e for e in container["env"] if e.get("name") != MIGRATION_ID_ENV]
            if not container["env"]:
                del container["env"]


def labelled_move(pod: Mapping[str, Any] | None) -> str | None:
    """The move the pod's label names: a claim, to be proven with `made_by`."""
    label = (((pod or {}).get("metadata") or {}).get("labels") or {}).get(MIGRATION_ID_LABEL)
    return str(label) if label else None


def move_of(pod: Mapping[str, Any] | None) -> str | None:
    """The id of the move whose target `pod` is: its label, when its containers carry the same id; else None."""
    label = labelled_move(pod)
    if pod is None or label is None:
        return None
    for container in (pod.get("spec") or {}).get("containers") or []:
        for variable in container.get("env") or []:
            if variable.get("name") == MIGRATION_ID_ENV and variable.get("value") == label:
                return label
    return None


def made_by(pod: Mapping[str, Any] | None, migration: Mapping[str, Any] | None) -> bool:
    """`pod` is the target `migration` made (or captured): labelled with its id and proven by the variable; or,
    for a pod made before that proof existed (a move in flight while the orchestrator is upgraded), the very pod
    the migration recorded as its target (`status.targetPod`: a name only its creator could have given a pod, or
    recorded after it was proven)."""
    if pod is None or migration is None:
        return False
    name = str((migration.get("metadata") or {}).get("name") or "")
    if not name or labelled_move(pod) != name:
        return False
    if move_of(pod) == name:
        return True
    recorded = (migration.get("status") or {}).get("targetPod")
    return bool(recorded) and (pod.get("metadata") or {}).get("name") == recorded
