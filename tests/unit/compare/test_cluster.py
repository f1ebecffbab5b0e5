"""Node and pod facts the comparison relies on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from ai_storage_orchestrator.compare.cluster import (
    CompareError,
    containers_started,
    describe_pod,
    image_trouble,
    is_simulated,
    node_info,
    pick_nodes,
    pod_ready,
    pod_trouble,
    wait_for,
)
from ai_storage_orchestrator.kube.resources import PODS, Resource, WatchEvent

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


# image pulls ---------------------------------------------------------------------------------------------------------
def _waiting(reason: str, message: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"name": "tensorflow-trainer", "image": "aiso.local/numpy-workload:1"}
    status["state"] = {"waiting": {"reason": reason, "message": message}}
    return {"metadata": {"name": "p"}, "status": {"phase": "Pending", "containerStatuses": [status]}}


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"])
def test_an_image_the_node_cannot_get_is_named(reason: str) -> None:
    said = image_trouble(_waiting(reason, "not present with pull policy of Never"))
    assert said is not None
    assert said.startswith(
        f"container tensorflow-trainer cannot get its image aiso.local/numpy-workload:1 ({reason}: not present with"
        " pull policy of Never): the node must be able to pull it from its registry, or have it imported into its"
        " containerd"
    )


def test_a_container_being_created_has_no_image_trouble() -> None:
    assert image_trouble(_waiting("ContainerCreating")) is None


class OnePodKube:
    """Lists ``pod``, then a watch that sends ``events`` (after ``delay`` seconds each) and stays open and silent."""

    def __init__(self, pod: dict[str, Any], events: Sequence[dict[str, Any]] = (), delay: float = 0.0) -> None:
        self.pod, self.events, self.delay = pod, list(events), delay

    async def list(self, resource: Resource, **kwargs: Any) -> tuple[list[dict[str, Any]], str]:
        return [self.pod], "1"

    async def watch(self, resource: Resource, **kwargs: Any) -> AsyncIterator[WatchEvent]:
        for event in self.events:
            await asyncio.sleep(self.delay)
            yield WatchEvent("MODIFIED", event)
        await asyncio.sleep(3600)  # a pod that stays in back-off changes seldom: nothing more arrives


async def _wait(kube: OnePodKube, *, timeout: float, grace: float) -> dict[str, Any] | None:
    return await wait_for(
        kube, PODS, name="p", namespace="ml", condition=pod_ready, timeout=timeout, what="pod p Ready",  # type: ignore[arg-type]
        trouble=pod_trouble, lasting_trouble=image_trouble, grace=grace, describe=describe_pod,
    )  # fmt: skip


async def test_an_image_pull_failure_ends_the_wait_after_its_grace_not_at_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(CompareError) as failed:
        await _wait(OnePodKube(_waiting("ErrImageNeverPull")), timeout=60, grace=0.2)
    assert time.monotonic() - started < 10
    assert str(failed.value).startswith(
        "pod p Ready: container tensorflow-trainer cannot get its image aiso.local/numpy-workload:1 (ErrImageNeverPull)"
    )
    assert str(failed.value).endswith("(for 0.2s)")


async def test_the_grace_runs_from_the_first_pull_failure_through_its_back_off() -> None:
    """ErrImagePull, then ImagePullBackOff, then ErrImagePull again: the same trouble, lasting."""
    kube = OnePodKube(_waiting("ErrImagePull"), [_waiting("ImagePullBackOff"), _waiting("ErrImagePull")], delay=0.1)
    started = time.monotonic()
    with pytest.raises(CompareError, match=r"\(ErrImagePull\).*\(for 0.3s\)$"):
        await _wait(kube, timeout=60, grace=0.3)
    assert 0.25 < time.monotonic() - started < 10


async def test_a_pull_that_succeeds_within_the_grace_does_not_end_the_wait() -> None:
    ready = {
        "metadata": {"name": "p"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    kube = OnePodKube(_waiting("ErrImagePull"), [_waiting("ContainerCreating"), ready], delay=0.15)
    assert await _wait(kube, timeout=60, grace=0.2) == ready


async def test_without_a_pull_failure_the_wait_ends_at_its_timeout() -> None:
    with pytest.raises(CompareError, match=r"pod p Ready: not reached within 0.3s \(last seen: phase Pending;"):
        await _wait(OnePodKube(_waiting("ContainerCreating")), timeout=0.3, grace=0.1)
