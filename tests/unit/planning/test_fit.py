from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import node_fit_checks, tolerates
from ai_storage_orchestrator.controller.planning.fit import node_affinity_matches
from tests.unit.planning.fixtures import container, make_node, make_pod, running

pytestmark = pytest.mark.unit

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "value": "present"}, True),  # default operator Equal, empty effect matches all
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "absent"}, False),
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"operator": "Exists"}, True),  # empty key + Exists tolerates everything
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_tolerates(toleration: dict[str, Any], expected: bool) -> None:
    assert tolerates(toleration, GPU_TAINT) is expected


def _affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    required = {"nodeSelectorTerms": list(terms)}
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}}


def _expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)} if values else {"key": key, "operator": operator}


NODE = make_node(labels={"gpu": "a100", "zone": "z1", "gpus": "8"})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, True),
        (_affinity({"matchExpressions": [_expr("gpu", "In", "a100", "h100")]}), True),
        (_affinity({"matchExpressions": [_expr("gpu", "NotIn", "a100")]}), False),
        (_affinity({"matchExpressions": [_expr("missing", "NotIn", "x")]}), True),
        (_affinity({"matchExpressions": [_expr("zone", "Exists")]}), True),
        (_affinity({"matchExpressions": [_expr("zone", "DoesNotExist")]}), False),
        (_affinity({"matchExpressions": [_expr("gpus", "Gt", "4")]}), True),
        (_affinity({"matchExpressions": [_expr("gpus", "Lt", "4")]}), False),
        (_affinity({"matchExpressions": [_expr("zone", "Gt", "4")]}), False),  # not an integer
        (_affinity({"matchExpressions": [_expr("gpu", "In", "a100"), _expr("zone", "In", "z2")]}), False),  # AND
        (
            _affinity(
                {"matchExpressions": [_expr("zone", "In", "z2")]}, {"matchExpressions": [_expr("gpu", "Exists")]}
            ),
            True,
        ),
        (_affinity({"matchFields": [_expr("metadata.name", "In", "node-b")]}), True),
        (_affinity({"matchFields": [_expr("metadata.name", "NotIn", "node-b")]}), False),
        (_affinity({}), False),  # an empty term matches nothing
    ],
)
def test_node_affinity(spec: dict[str, Any], expected: bool) -> None:
    assert node_affinity_matches(NODE, spec).passed is expected


def _failed(node: dict[str, Any], pod: dict[str, Any], others: list[dict[str, Any]] | None = None) -> dict[str, str]:
    return {c.reason: c.message for c in node_fit_checks(node, pod, others or []) if not c.passed}


def _pod(cpu: str = "1", memory: str = "1Gi", **kwargs: Any) -> dict[str, Any]:
    return make_pod(containers=[container("c", cpu=cpu, memory=memory)], statuses=[running("c")], **kwargs)


@pytest.mark.parametrize(
    ("node", "pod", "others", "reason", "phrase"),
    [
        pytest.param(make_node(ready=False), _pod(), [], "target_node_not_ready", "is not Ready", id="not-ready"),
        pytest.param(make_node(unschedulable=True), _pod(), [], "target_node_cordoned", "cordoned", id="cordoned"),
        pytest.param(
            make_node(taints=[GPU_TAINT, {"key": "soft", "effect": "PreferNoSchedule"}]),
            _pod(),
            [],
            "taints_not_tolerated",
            "nvidia.com/gpu=present:NoSchedule",
            id="taint",
        ),
        pytest.param(make_node(), _pod(), [_pod(name="other")], None, None, id="healthy"),
        pytest.param(
            make_node(cpu="2"),
            _pod(cpu="1500m"),
            [_pod(cpu="1", name="o1"), _pod(cpu="4", name="o2", phase="Succeeded")],  # the finished pod does not count
            "insufficient_resources",
            "not enough cpu",
            id="cpu",
        ),
        pytest.param(
            make_node(memory="4Gi"), _pod(memory="5Gi"), [], "insufficient_resources", "not enough memory", id="memory"
        ),
        pytest.param(
            make_node(pods="1"), _pod(), [_pod(name="other")], "insufficient_resources", "not enough pods", id="pods"
        ),
    ],
)
def test_node_checks(
    node: dict[str, Any], pod: dict[str, Any], others: list[dict[str, Any]], reason: str | None, phrase: str | None
) -> None:
    failed = _failed(node, pod, others)
    if reason is None:
        assert failed == {}
    else:
        assert list(failed) == [reason]
        assert phrase is not None
        assert phrase in failed[reason]


def test_node_selector() -> None:
    pod = _pod()
    pod["spec"]["nodeSelector"] = {"gpu": "h100"}
    assert "gpu=h100" in _failed(NODE, pod)["node_selector_mismatch"]
    pod["spec"]["nodeSelector"] = {"gpu": "a100"}
    assert _failed(NODE, pod) == {}


def test_target_pod_itself_is_not_counted() -> None:
    target = _pod(cpu="2", name="p-migrated-1")
    assert _failed(make_node(cpu="2"), target, [target]) == {}
