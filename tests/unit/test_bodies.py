"""Read-only views over raw API objects: missing, null and wrongly typed fields read as empty, never raise."""

from __future__ import annotations

import pytest

from ai_storage_orchestrator.bodies import Body, Node, Pod

pytestmark = pytest.mark.unit


def test_a_pod_with_everything() -> None:
    pod = Pod(
        {
            "metadata": {
                "name": "p",
                "namespace": "ns",
                "uid": "u1",
                "labels": {"a": "1"},
                "annotations": {"b": "2"},
                "finalizers": ["f"],
                "deletionTimestamp": "2026-12-01T00:00:00Z",
            },
            "spec": {"nodeName": "n1"},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c"}],
                "initContainerStatuses": [{"name": "i"}],
            },
        }
    )
    assert (pod.name, pod.namespace, pod.uid, pod.node_name, pod.phase) == ("p", "ns", "u1", "n1", "Running")
    assert pod.labels == {"a": "1"}
    assert pod.annotations == {"b": "2"}
    assert pod.finalizers == ["f"]
    assert pod.terminating
    assert pod.ready
    assert [c["name"] for c in pod.container_statuses] == ["c"]
    assert [c["name"] for c in pod.init_container_statuses] == ["i"]


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"metadata": None, "spec": None, "status": None},
        {"metadata": {"labels": None, "annotations": None, "finalizers": None}, "status": {"conditions": None}},
        {"metadata": "x", "spec": [], "status": {"containerStatuses": "nope", "conditions": [None, 3]}},
    ],
)
def test_missing_or_malformed_fields_read_as_empty(raw: dict[str, object]) -> None:
    pod = Pod(raw)
    assert (pod.name, pod.namespace, pod.uid, pod.node_name, pod.phase) == ("", "", None, None, None)
    assert dict(pod.labels) == {}
    assert dict(pod.annotations) == {}
    assert list(pod.finalizers) == []
    assert not pod.terminating
    assert not pod.ready
    assert list(pod.container_statuses) == []


def test_a_node_is_ready_only_with_a_true_ready_condition() -> None:
    assert Node({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}).ready
    assert not Node({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}).ready
    assert not Node({"status": {"conditions": [{"type": "MemoryPressure", "status": "True"}]}}).ready
    assert Body({"spec": {"x": 1}}).spec == {"x": 1}
