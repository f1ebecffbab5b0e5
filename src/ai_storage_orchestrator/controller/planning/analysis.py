"""The container decision table: what happens to each container when its pod moves.

=====================================  ==========  =====================================================
Container state                        Action      Why
=====================================  ==========  =====================================================
sidecar (init, restartPolicy Always)   MIGRATE     keeps running beside the main containers
running                                MIGRATE     its work continues on the target
waiting (CrashLoopBackOff, ...)        MIGRATE     kept, never silently dropped
no status yet                          MIGRATE     kept, never silently dropped
terminated, exit != 0                  RESTART     failed: runs again on the target
terminated, exit 0, pod restartPolicy  MIGRATE     (regular containers) the kubelet would run it again
Always
terminated, exit 0, results safe       SKIP        left out of the target pod
terminated, exit 0, results unsafe     MIGRATE     what it wrote would be lost: it runs again
=====================================  ==========  =====================================================

"Results safe": every writable mount (``readOnly`` false, or a raw block device) is a shared persistent volume or lies
under a path the checkpoint copies for that container; a container without writable mounts is safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ai_storage_orchestrator.controller.planning.containers import container_states, spec_containers
from ai_storage_orchestrator.controller.planning.volumes import VolumeInfo, container_mounts
from ai_storage_orchestrator.models import Action, ContainerDecision, ContainerKind, ContainerPhase, ContainerState

NO_CHECKPOINTED_PATHS: Mapping[str, Sequence[str]] = MappingProxyType({})


def _covered(path: str, checkpointed: Sequence[str]) -> bool:
    path = path.rstrip("/") or "/"
    for copied in checkpointed:
        base = copied.rstrip("/")
        if base == "" or path == base or path.startswith(base + "/"):
            return True
    return False


def _result_safety(
    container: Mapping[str, Any], volumes: Mapping[str, VolumeInfo], checkpointed: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(why its results are safe, which volumes would lose them)."""
    safe: dict[str, None] = {}
    lost: dict[str, None] = {}
    for mount in container_mounts(container):
        if mount.read_only:
            continue
        info = volumes.get(mount.volume)
        if info is not None and info.shared:
            safe[f"'{mount.volume}' is shared persistent storage"] = None
        elif _covered(mount.path, checkpointed):
            safe[f"'{mount.volume}' at {mount.path} is copied by the checkpoint"] = None
        else:
            lost[info.describe() if info is not None else f"unknown volume '{mount.volume}'"] = None
    return list(safe), list(lost)


def _decide(
    state: ContainerState,
    container: Mapping[str, Any],
    volumes: Mapping[str, VolumeInfo],
    checkpointed: Sequence[str],
    restart_policy: str,
) -> tuple[Action, str]:
    kind = state.kind
    if kind is ContainerKind.SIDECAR:
        return Action.MIGRATE, "sidecar: keeps running beside the main containers"
    prefix = "init container " if kind is ContainerKind.INIT else ""
    if state.phase is ContainerPhase.RUNNING:
        if kind is ContainerKind.INIT:
            return Action.MIGRATE, "init container running: it runs again to completion on the target"
        return Action.MIGRATE, "running: its work continues on the target"
    if state.phase is ContainerPhase.WAITING:
        return Action.MIGRATE, f"{prefix}waiting ({state.reason or 'no reason'}): kept, never dropped"
    if state.phase is ContainerPhase.UNKNOWN:
        return Action.MIGRATE, f"{prefix}no status reported yet: kept, never dropped"
    if not state.completed:
        return Action.RESTART, (
            f"{prefix}failed (exit {state.exit_code}, {state.reason or 'no reason'}): restarted on the target"
        )
    if kind is ContainerKind.CONTAINER and restart_policy == "Always":
        return Action.MIGRATE, (
            "completed (exit 0), but under restartPolicy Always the kubelet would run it again: kept on the target"
        )
    safe, lost = _result_safety(container, volumes, checkpointed)
    if lost:
        where = ", ".join(lost)
        return Action.MIGRATE, f"{prefix}completed (exit 0), but its results on {where} would be lost: it runs again"
    why = "; ".join(safe) or "it has no writable volume mounts"
    return Action.SKIP, f"{prefix}completed (exit 0) and its results are safe ({why}): left out of the target pod"


def analyse_containers(
    pod: Mapping[str, Any],
    volumes: Mapping[str, VolumeInfo],
    *,
    checkpointed: Mapping[str, Sequence[str]] = NO_CHECKPOINTED_PATHS,
) -> list[ContainerDecision]:
    """One decision per init container and container, in spec order.

    ``checkpointed`` maps a container name to the paths the checkpoint copies for it (its artifacts).
    """
    spec = pod.get("spec") or {}
    restart_policy = str(spec.get("restartPolicy") or "Always")  # the API server's default
    decisions = []
    for state, (_, container) in zip(container_states(pod), spec_containers(spec), strict=True):
        action, reason = _decide(state, container, volumes, checkpointed.get(state.name, ()), restart_policy)
        decisions.append(ContainerDecision(state.name, state.kind, state.describe(), action, reason))
    return decisions


def nothing_to_run(decisions: Iterable[ContainerDecision]) -> bool:
    """True when no regular container would run on the target (init containers and sidecars alone do not count)."""
    return not any(
        d.kind is ContainerKind.CONTAINER and d.action in (Action.MIGRATE, Action.RESTART) for d in decisions
    )


def skipped(decisions: Iterable[ContainerDecision]) -> list[str]:
    return [d.name for d in decisions if d.action is Action.SKIP]
