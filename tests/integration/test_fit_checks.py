"""The target-node fit checks against the real API server: a pod that needs a GPU is not moved to a KWOK node that
has none. The request is answered 422 before anything is touched, and the source pod stays as it was."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient
from kubernetes_asyncio import client

from ai_storage_orchestrator.runtime import Orchestrator
from tests.cluster.fixtures import ClusterHandle

pytestmark = pytest.mark.integration

JSON = dict[str, Any]
GPU = "nvidia.com/gpu"
POD = "gpu-trainer"


def _gpu_pod(node: str) -> JSON:
    return {
        "metadata": {"name": POD},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "train",
                    "image": "busybox",
                    "resources": {"limits": {GPU: "1", "cpu": "100m", "memory": "64Mi"}},
                }
            ],
        },
    }


async def test_a_gpu_pod_is_refused_for_a_node_without_gpus_and_left_untouched(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    orchestrator: Orchestrator,
    http: TestClient[Any, Any],
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    target_node = await core.read_node(target)
    assert GPU not in (target_node.status.allocatable or {}), "the test needs a target node without GPUs"
    created = await core.create_namespaced_pod(namespace, cast(client.V1Pod, _gpu_pod(source)))
    await orchestrator.state.wait_for(lambda: orchestrator.state.pod(namespace, POD), timeout=30)
    before = await core.read_namespaced_pod(POD, namespace)

    body = {"pod_name": POD, "pod_namespace": namespace, "source_node": source, "target_node": target}
    response = await http.post("/api/migrations", json=body)
    error: JSON = await response.json()
    assert response.status == 422, error
    assert error["error"] == "insufficient_resources", error
    assert GPU in error["message"], error
    assert target in error["message"], error
    assert error["details"]["check"] == "extended_resources_fit"
    assert error["details"]["insufficient"] == [GPU]
    assert error["details"]["resources"][GPU] == {"requested": 1, "allocatable": 0, "used": 0, "free": 0}

    # A dry run shows the plan (200) with the failed check in it, as for every other refusal.
    dry = await http.post("/api/migrations", json={**body, "dry_run": True})
    plan: JSON = await dry.json()
    assert (dry.status, plan["ok"]) == (200, False), plan
    failed = [c for c in plan["checks"] if not c["passed"]]
    assert [(c["name"], c["reason"]) for c in failed] == [("extended_resources_fit", "insufficient_resources")]

    after = await core.read_namespaced_pod(POD, namespace)
    assert after.metadata.uid == created.metadata.uid
    assert cast(datetime | None, after.metadata.deletion_timestamp) is None  # the stubs say always set
    assert after.spec.node_name == source
    assert after.spec.to_dict() == before.spec.to_dict(), "the source pod was modified"
    assert after.metadata.labels == before.metadata.labels
    assert after.metadata.annotations == before.metadata.annotations
    assert orchestrator.state.migrations_of_pod(namespace, POD) == []
    pods = await core.list_namespaced_pod(namespace)
    assert [p.metadata.name for p in pods.items] == [POD], "nothing may be created on the target"


async def test_a_gpu_pod_without_target_node_is_refused_no_target_node_with_each_nodes_reason(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    orchestrator: Orchestrator,
    http: TestClient[Any, Any],
) -> None:
    """No node offers nvidia.com/gpu: the orchestrator finds no target (422 no_target_node), says why for every
    node, and touches nothing."""
    source = cluster.node_names[0]
    nodes = (await core.list_node()).items
    assert not any(GPU in (n.status.allocatable or {}) for n in nodes), "the test needs a cluster without GPUs"
    created = await core.create_namespaced_pod(namespace, cast(client.V1Pod, _gpu_pod(source)))
    await orchestrator.state.wait_for(lambda: orchestrator.state.pod(namespace, POD), timeout=30)
    before = await core.read_namespaced_pod(POD, namespace)

    body = {"pod_name": POD, "pod_namespace": namespace, "source_node": source}
    response = await http.post("/api/migrations", json=body)
    error: JSON = await response.json()
    assert response.status == 422, error
    assert error["error"] == "no_target_node", error
    assert error["message"].startswith(f"no node can take pod {namespace}/{POD}: none of the"), error
    details = error["details"]
    assert (details["check"], details["eligible"], details["chosen"]) == ("target_node_chosen", 0, None)
    assert details["considered"] == details["refused_total"] == len(orchestrator.state.nodes)
    refused = {r["node"]: r for r in details["refused"]}
    assert refused[source]["reason"] == "source_equals_target"
    for name in cluster.node_names[1:]:
        assert (refused[name]["reason"], refused[name]["check"]) == ("insufficient_resources", "extended_resources_fit")
        assert GPU in refused[name]["message"]

    dry = await http.post("/api/migrations", json={**body, "target_node": "auto", "dry_run": True})
    plan: JSON = await dry.json()
    assert (dry.status, plan["ok"], plan["target_choice"]["chosen"]) == (200, False, None), plan
    assert [c["reason"] for c in plan["checks"] if not c["passed"]] == ["no_target_node"]

    after = await core.read_namespaced_pod(POD, namespace)
    assert after.metadata.uid == created.metadata.uid
    assert cast(datetime | None, after.metadata.deletion_timestamp) is None  # the stubs say always set
    assert after.spec.to_dict() == before.spec.to_dict(), "the source pod was modified"
    assert after.metadata.annotations == before.metadata.annotations
    assert orchestrator.state.migrations_of_pod(namespace, POD) == []
    pods = await core.list_namespaced_pod(namespace)
    assert [p.metadata.name for p in pods.items] == [POD], "nothing may be created"
