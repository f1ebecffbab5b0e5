"""When a target runs the pod's work: Ready, succeeded, or Ready but for containers that completed for good."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.invariant import admitted, refused, serving, target_unfit_to_replace_source

pytestmark = pytest.mark.unit

JSON = dict[str, Any]
RUNNING: JSON = {"name": "trainer", "ready": True, "state": {"running": {}}}
COMPLETED: JSON = {"name": "prep", "ready": False, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
FAILED: JSON = {"name": "prep", "ready": False, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
WAITING: JSON = {"name": "prep", "ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}


def _pod(*statuses: JSON, ready: bool = False, phase: str = "Running", policy: str | None = "OnFailure") -> JSON:
    spec: JSON = {"nodeName": "b", "containers": [{"name": s["name"]} for s in statuses]}
    if policy:
        spec["restartPolicy"] = policy
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    status = {"phase": phase, "conditions": [condition], "containerStatuses": list(statuses)}
    return {"metadata": {"name": "t", "uid": "u"}, "spec": spec, "status": status}


@pytest.mark.parametrize(
    ("pod", "how"),
    [
        (_pod(RUNNING, ready=True), "is Ready"),
        (_pod(COMPLETED, phase="Succeeded"), "succeeded"),
        (_pod(RUNNING, COMPLETED), "runs (prep completed)"),
        (_pod(RUNNING, COMPLETED, policy="Never"), "runs (prep completed)"),
        (_pod(RUNNING, COMPLETED, policy="Always"), None),  # the kubelet starts it again: not settled
        (_pod(RUNNING, COMPLETED, policy=None), None),  # Always is the default
        (_pod(RUNNING, FAILED), None),
        (_pod(RUNNING, WAITING), None),
        (_pod({**RUNNING, "ready": False}, COMPLETED), None),  # the trainer is not ready
        (_pod(COMPLETED), None),  # nothing runs (and not yet Succeeded)
        (_pod(RUNNING, COMPLETED, phase="Pending"), None),
    ],
)
def test_a_target_serves_when_ready_succeeded_or_ready_but_for_completed_containers(pod: JSON, how: str | None) -> None:
    assert serving(pod) == how


def test_a_target_whose_statuses_are_not_all_reported_does_not_serve() -> None:
    pod = _pod(RUNNING, COMPLETED)
    pod["spec"]["containers"].append({"name": "monitor"})
    assert serving(pod) is None


def test_a_readiness_gate_still_counts_for_a_target_with_a_completed_container() -> None:
    pod = _pod(RUNNING, COMPLETED)
    pod["spec"]["readinessGates"] = [{"conditionType": "example.com/registered"}]
    assert serving(pod) is None
    pod["status"]["conditions"].append({"type": "example.com/registered", "status": "True"})
    assert serving(pod) == "runs (prep completed)"


def test_a_terminating_target_never_serves() -> None:
    pod = _pod(RUNNING, COMPLETED)
    pod["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    assert serving(pod) is None


def test_a_target_ready_but_for_its_completed_container_may_replace_the_source() -> None:
    assert target_unfit_to_replace_source(_pod(RUNNING, COMPLETED), uid="u", node="b") is None
    assert target_unfit_to_replace_source(_pod(RUNNING, FAILED), uid="u", node="b") == "target pod t is no longer Ready"


@pytest.mark.parametrize(
    ("pod", "taken", "turned_away"),
    [
        ({"metadata": {"name": "t"}, "spec": {}}, False, False),
        (_pod(WAITING, phase="Pending"), True, False),
        (_pod(RUNNING), True, False),
        (_pod(phase="Failed"), False, True),
        (_pod(FAILED, phase="Failed"), True, False),
        (_pod(phase="Succeeded"), True, False),
    ],
    ids=["not-reported", "containers-reported", "running", "refused", "ran-and-failed", "succeeded"],
)
def test_a_kubelet_takes_a_pod_or_turns_it_away_before_any_container_ran(
    pod: JSON, taken: bool, turned_away: bool
) -> None:
    assert admitted(pod) is taken
    assert refused(pod) is turned_away
