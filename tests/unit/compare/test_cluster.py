"""Node and pod facts the comparison relies on."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.compare.cluster import (
    CompareError,
    containers_started,
    is_simulated,
    node_info,
    pick_nodes,
    pod_ready,
    pod_trouble,
)

pytestmark = pytest.mark.unit


def _node(name: str, *, labels: dict[str, str] | None = None, kubelet: str = "v1.30.1", ready: bool = True,
          unschedulable: bool = False, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {"kubeletVersion": kubelet, "containerRuntimeVersion": "containerd://1.7.2"},
        },
    }


def test_simulated_nodes_are_recognised_by_label_or_kubelet_version() -> None:
    assert is_simulated(_node("a", labels={"type": "kwok"}))
    assert is_simulated(_node("b", kubelet="kwok-v0.8.0"))
    assert is_simulated({"metadata": {"name": "c", "annotations": {"kwok.x-k8s.io/node": "fake"}}})
    assert not is_simulated(_node("d"))
    assert not is_simulated({})


def test_pick_nodes_defaults_to_the_first_two_ready_schedulable_ones() -> None:
    nodes = [
        node_info(_node("w3")),
        node_info(_node("w1")),
        node_info(_node("cp", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])),
        node_info(_node("w0", ready=False)),
        node_info(_node("w2", unschedulable=True)),
    ]
    assert pick_nodes(nodes, source=None, target=None) == ("w1", "w3")
    assert pick_nodes(nodes, source="w3", target=None) == ("w3", "w1")
    assert pick_nodes(nodes, source=None, target="w1") == ("w3", "w1")
    with pytest.raises(CompareError, match="must differ"):
        pick_nodes(nodes, source="w1", target="w1")
    with pytest.raises(CompareError, match="does not exist"):
        pick_nodes(nodes, source="nope", target="w1")
    with pytest.raises(CompareError, match="two Ready"):
        pick_nodes(nodes[:1], source=None, target=None)


def test_containers_started_counts_running_and_ended_ones() -> None:
    pod = {
        "status": {
            "containerStatuses": [
                {"name": "a", "state": {"running": {}}},
                {"name": "b", "state": {"terminated": {"exitCode": 0}}},
                {"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}},
            ]
        }
    }
    assert containers_started(pod) == ["a", "b"]


def test_pod_ready_and_trouble() -> None:
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert pod_ready(ready)
    assert not pod_ready(None)
    assert not pod_ready({"status": {"phase": "Pending"}})
    crash = {"status": {"containerStatuses": [{"name": "t", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert "CrashLoopBackOff" in (pod_trouble(crash) or "")
    failed = {"status": {"containerStatuses": [{"name": "t", "state": {"terminated": {"exitCode": 137}}}]}}
    assert "exited with code 137" in (pod_trouble(failed) or "")
    pulling = {"status": {"containerStatuses": [{"name": "t", "state": {"waiting": {"reason": "ErrImagePull"}}}]}}
    assert pod_trouble(pulling) is None  # a slow registry is not hopeless
