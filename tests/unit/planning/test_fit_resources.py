"""The resources rule of the node fit: allocatable minus what the node's running pods request, at its boundaries."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning.fit import resources_fit
from tests.unit.planning.fixtures import container, make_node, make_pod, running

pytestmark = pytest.mark.unit


def _pod(name: str, *, cpu: str = "100m", memory: str = "128Mi", phase: str = "Running") -> dict[str, Any]:
    return make_pod(
        name=name, containers=[container("c", cpu=cpu, memory=memory)], statuses=[running("c")], phase=phase
    )


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_finished_pods_on_the_target_do_not_use_its_capacity(phase: str) -> None:
    node = make_node(cpu="2", memory="4Gi", pods="3")
    others = [
        _pod("busy", cpu="1", memory="2Gi"),
        *(_pod(f"done-{n}", cpu="2", memory="4Gi", phase=phase) for n in (1, 2)),
    ]
    result = resources_fit(node, _pod("target", cpu="1", memory="2Gi"), others)
    assert result.passed, result.message
    assert result.details["free"] == {"cpu_millicores": 1000, "memory_bytes": 2 << 30, "pods": 2}


@pytest.mark.parametrize("phase", ["Running", "Pending", "Unknown"])
def test_pods_that_have_not_finished_use_its_capacity(phase: str) -> None:
    node = make_node(cpu="2", memory="4Gi")
    result = resources_fit(node, _pod("target", cpu="1", memory="2Gi"), [_pod("other", cpu="1500m", phase=phase)])
    assert not result.passed
    assert result.details["insufficient"] == ["cpu"]


@pytest.mark.parametrize(
    ("cpu", "memory", "insufficient"),
    [
        pytest.param("1", "2Gi", [], id="exactly-what-is-free-fits"),
        pytest.param("1001m", "2Gi", ["cpu"], id="one-millicore-more"),
        pytest.param("1", str((2 << 30) + 1), ["memory"], id="one-byte-more"),
        pytest.param("1001m", str((2 << 30) + 1), ["cpu", "memory"], id="both"),
    ],
)
def test_a_request_equal_to_what_is_free_fits(cpu: str, memory: str, insufficient: list[str]) -> None:
    node = make_node(cpu="2", memory="4Gi")
    result = resources_fit(node, _pod("target", cpu=cpu, memory=memory), [_pod("other", cpu="1", memory="2Gi")])
    assert result.details["insufficient"] == insufficient
    assert result.passed is (not insufficient)


@pytest.mark.parametrize(("pods", "fits"), [("2", True), ("1", False)])
def test_the_last_free_pod_slot_can_be_taken(pods: str, fits: bool) -> None:
    result = resources_fit(make_node(pods=pods), _pod("target"), [_pod("other")])
    assert result.passed is fits
    assert result.details["insufficient"] == ([] if fits else ["pods"])
