"""Container kinds and states, read from a raw pod object (``spec`` and ``status``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ai_storage_orchestrator.models import ContainerKind, ContainerPhase, ContainerState


def is_sidecar(container: Mapping[str, Any]) -> bool:
    """A restartable init container (``restartPolicy: Always``): it keeps running beside the main containers."""
    return container.get("restartPolicy") == "Always"


def spec_containers(pod_spec: Mapping[str, Any]) -> list[tuple[ContainerKind, Mapping[str, Any]]]:
    """Init containers (and sidecars) in order, then the regular containers; ephemeral containers are not included."""
    result: list[tuple[ContainerKind, Mapping[str, Any]]] = []
    for container in pod_spec.get("initContainers") or []:
        result.append((ContainerKind.SIDECAR if is_sidecar(container) else ContainerKind.INIT, container))
    for container in pod_spec.get("containers") or []:
        result.append((ContainerKind.CONTAINER, container))
    return result


def _by_name(statuses: Iterable[Mapping[str, Any]] | None) -> dict[str, Mapping[str, Any]]:
    return {str(status.get("name")): status for status in statuses or []}


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _state(name: str, kind: ContainerKind, status: Mapping[str, Any] | None) -> ContainerState:
    if status is None:
        return ContainerState(name, kind, ContainerPhase.UNKNOWN)
    common: dict[str, Any] = {
        "restart_count": int(status.get("restartCount") or 0),
        "ready": bool(status.get("ready")),
    }
    state = status.get("state") or {}
    if state.get("terminated") is not None:
        terminated = state["terminated"]
        exit_code = terminated.get("exitCode")
        return ContainerState(
            name,
            kind,
            ContainerPhase.TERMINATED,
            reason=_optional_str(terminated.get("reason")),
            exit_code=None if exit_code is None else int(exit_code),
            finished_at=_optional_str(terminated.get("finishedAt")),
            **common,
        )
    if state.get("running") is not None:
        return ContainerState(name, kind, ContainerPhase.RUNNING, **common)
    if state.get("waiting") is not None:
        # The *current* state: a crash-looping container is waiting (CrashLoopBackOff), whatever lastState says.
        return ContainerState(
            name, kind, ContainerPhase.WAITING, reason=_optional_str(state["waiting"].get("reason")), **common
        )
    return ContainerState(name, kind, ContainerPhase.UNKNOWN, **common)


def container_states(pod: Mapping[str, Any]) -> list[ContainerState]:
    """One state per init container and container, in spec order; a container without status is UNKNOWN."""
    status = pod.get("status") or {}
    init_statuses = _by_name(status.get("initContainerStatuses"))
    statuses = _by_name(status.get("containerStatuses"))
    result = []
    for kind, container in spec_containers(pod.get("spec") or {}):
        name = str(container.get("name"))
        source = statuses if kind is ContainerKind.CONTAINER else init_statuses
        result.append(_state(name, kind, source.get(name)))
    return result
