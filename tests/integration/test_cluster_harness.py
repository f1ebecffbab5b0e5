"""The harness itself: the certification pod on a simulated node runs, and data-processor completes."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from kubernetes_asyncio import client, watch

from tests.cluster.fixtures import ClusterHandle
from tests.cluster.workloads import CERTIFICATION_POD, certification_pod, shared_volume


def _states(pod: Any) -> dict[str, str]:
    result = {}
    for status in pod.status.container_statuses or []:
        state = status.state
        if state.running:
            result[status.name] = "running"
        elif state.terminated:
            result[status.name] = f"terminated:{state.terminated.exit_code}:{state.terminated.reason}"
        else:
            result[status.name] = f"waiting:{state.waiting.reason if state.waiting else ''}"
    return result


async def test_certification_pod_runs_then_data_processor_completes(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str
) -> None:
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))
    node = cluster.node_names[0]
    created = await core.create_namespaced_pod(
        namespace, cast(client.V1Pod, certification_pod(node=node, complete_after="1s"))
    )

    seen_running: dict[str, str] | None = None
    seen_completed: dict[str, str] | None = None
    async with asyncio.timeout(60), watch.Watch() as stream:
        async for event in stream.stream(
            core.list_namespaced_pod,
            namespace,
            field_selector=f"metadata.name={CERTIFICATION_POD}",
            resource_version=created.metadata.resource_version,
            timeout_seconds=60,
        ):
            pod = event["object"]
            states = _states(pod)
            if pod.status.phase == "Running" and set(states.values()) == {"running"} and len(states) == 3:
                seen_running = states
            if seen_running and states.get("data-processor", "").startswith("terminated"):
                seen_completed = states
                break

    assert seen_running == {"tensorflow-trainer": "running", "data-processor": "running", "model-monitor": "running"}
    assert seen_completed == {
        "tensorflow-trainer": "running",
        "data-processor": "terminated:0:Completed",
        "model-monitor": "running",
    }
    pod = await core.read_namespaced_pod(CERTIFICATION_POD, namespace)
    assert pod.spec.node_name == node
    assert pod.status.phase == "Running"
    await core.delete_persistent_volume(pv["metadata"]["name"])


async def test_simulated_nodes_are_ready(cluster: ClusterHandle, core: client.CoreV1Api) -> None:
    nodes = await core.list_node(label_selector="type=kwok")
    ready = {
        n.metadata.name
        for n in nodes.items
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    }
    assert set(cluster.node_names) <= ready
    assert len(ready) >= 2
