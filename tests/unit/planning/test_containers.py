from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import container_states
from ai_storage_orchestrator.models import ContainerKind, ContainerPhase
from tests.unit.planning.fixtures import container, make_pod, running, terminated, waiting

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("status", "phase", "reason", "exit_code", "describe"),
    [
        (running("c", restarts=2), ContainerPhase.RUNNING, None, None, "running"),
        (terminated("c", 0), ContainerPhase.TERMINATED, "Completed", 0, "terminated (exit 0, Completed)"),
        (terminated("c", 137, "OOMKilled"), ContainerPhase.TERMINATED, "OOMKilled", 137, "terminated (exit 137"),
        (waiting("c", "CrashLoopBackOff"), ContainerPhase.WAITING, "CrashLoopBackOff", None, "CrashLoopBackOff"),
        (waiting("c", "ContainerCreating"), ContainerPhase.WAITING, "ContainerCreating", None, "ContainerCreating"),
        (None, ContainerPhase.UNKNOWN, None, None, "unknown"),
        ({"name": "c", "state": {}}, ContainerPhase.UNKNOWN, None, None, "unknown"),
    ],
)
def test_container_state(
    status: dict[str, Any] | None, phase: ContainerPhase, reason: str | None, exit_code: int | None, describe: str
) -> None:
    pod = make_pod(containers=[container("c")], statuses=[status] if status else [])
    [state] = container_states(pod)
    assert (state.name, state.kind, state.phase, state.reason, state.exit_code) == (
        "c",
        ContainerKind.CONTAINER,
        phase,
        reason,
        exit_code,
    )
    assert describe in state.describe()


def test_kinds_order_and_details() -> None:
    pod = make_pod(
        init_containers=[container("setup"), container("proxy", restart_policy="Always")],
        init_statuses=[terminated("setup"), running("proxy")],
        containers=[container("main")],
        statuses=[running("main", restarts=3)],
    )
    states = container_states(pod)
    assert [(s.name, s.kind) for s in states] == [
        ("setup", ContainerKind.INIT),
        ("proxy", ContainerKind.SIDECAR),
        ("main", ContainerKind.CONTAINER),
    ]
    assert states[0].finished_at == "2024-05-01T11:00:00Z"
    assert (states[2].restart_count, states[2].ready) == (3, True)


def test_restart_count_and_readiness_are_read_in_every_state() -> None:
    statuses: list[dict[str, Any]] = [
        {"name": "a", "state": {"terminated": {"exitCode": 0}}, "restartCount": 3, "ready": True},
        {"name": "b", "state": {"running": {}}, "restartCount": 1, "ready": True},
        {"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 7},
        {"name": "d", "state": {}, "restartCount": 2, "ready": True},
        {"name": "e", "state": {"terminated": {}}},
    ]
    pod = make_pod(containers=[container(s["name"]) for s in statuses], statuses=statuses)
    states = container_states(pod)
    assert [(s.restart_count, s.ready) for s in states] == [(3, True), (1, True), (7, False), (2, True), (0, False)]
    assert (states[4].exit_code, states[4].reason, states[4].finished_at) == (None, None, None)
    assert not states[4].completed
