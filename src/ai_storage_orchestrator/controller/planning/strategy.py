"""Which migration strategy ``auto`` resolves to, and why.

* ``checkpoint-restart`` when any container that will run on the target mounts a persistent volume (PVC or NFS)
  read-write -- two copies of a trainer writing the same checkpoint directory at once would corrupt its state --, or
  the pod declares a checkpoint hook (an annotation key starting with ``ai-storage.io/checkpoint-hook.``, e.g.
  ``ai-storage.io/checkpoint-hook.<container>: <command>``), or one of the target pod's volumes is a
  ReadWriteOnce/ReadWriteOncePod PVC (one node at a time);
* otherwise ``make-before-break``: the target is Ready before the source goes, zero downtime.

An explicit strategy is returned as is; validation refuses ``make-before-break`` with a ReadWriteOnce PVC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ai_storage_orchestrator.controller.planning.containers import spec_containers
from ai_storage_orchestrator.controller.planning.volumes import VolumeInfo, container_mounts
from ai_storage_orchestrator.conventions import CHECKPOINT_HOOK_PREFIX
from ai_storage_orchestrator.models import Strategy


def checkpoint_hooks(pod: Mapping[str, Any]) -> list[str]:
    """The pod's checkpoint hook annotation keys, sorted."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return sorted(str(k) for k in annotations if str(k).startswith(CHECKPOINT_HOOK_PREFIX))


def rwo_volumes(volumes: Mapping[str, VolumeInfo]) -> list[VolumeInfo]:
    return [v for v in volumes.values() if v.read_write_once]


def persistent_writers(target_pod: Mapping[str, Any], volumes: Mapping[str, VolumeInfo]) -> list[str]:
    """``container 'c' writes <volume>`` for every read-write persistent mount of the target pod."""
    found: dict[str, None] = {}
    for _, container in spec_containers(target_pod.get("spec") or {}):
        for mount in container_mounts(container):
            info = volumes.get(mount.volume)
            if not mount.read_only and info is not None and info.persistent:
                found[f"container '{container.get('name')}' writes {info.describe()}"] = None
    return list(found)


def resolve_strategy(
    requested: Strategy, pod: Mapping[str, Any], target_pod: Mapping[str, Any], volumes: Mapping[str, VolumeInfo]
) -> tuple[Strategy, str]:
    """The concrete strategy (never AUTO) and a sentence saying why; ``volumes`` are the target pod's volumes."""
    if requested is not Strategy.AUTO:
        return requested, f"{requested.value} requested explicitly"
    reasons = persistent_writers(target_pod, volumes)
    if reasons:
        reasons[0] += " (two copies writing it at once would corrupt training state)"
    hooks = checkpoint_hooks(pod)
    if hooks:
        reasons.append(f"the pod declares checkpoint hook(s) {', '.join(hooks)}")
    reasons += [f"{v.describe()} is {'/'.join(v.access_modes)}: one node at a time" for v in rwo_volumes(volumes)]
    if reasons:
        return Strategy.CHECKPOINT_RESTART, "checkpoint-restart: " + "; ".join(reasons)
    return Strategy.MAKE_BEFORE_BREAK, (
        "make-before-break: no container writes persistent storage, no checkpoint hook and no ReadWriteOnce volume,"
        " so the target starts before the source stops (zero downtime)"
    )
