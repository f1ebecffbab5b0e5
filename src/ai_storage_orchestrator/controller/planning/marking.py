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


def move_of(pod: Mapping[str, Any] | None) -> str | None:
    """The id of the move whose target `pod` is: its label, when its containers carry the same id; else None."""
    if pod is None:
        return None
    label = ((pod.get("metadata") or {}).get("labels") or {}).get(MIGRATION_ID_LABEL)
    if not label:
        return None
    for container in (pod.get("spec") or {}).get("containers") or []:
        for variable in container.get("env") or []:
            if variable.get("name") == MIGRATION_ID_ENV and variable.get("value") == label:
                return str(label)
    return None
