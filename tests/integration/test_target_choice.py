"""Automatic target choice against the real API server and KWOK nodes: a request without `target_node` moves the
certification pod to the node the orchestrator chose, and the choice is recorded on the PodMigration
(`spec.targetChoice`) and explained in the REST view (`target_choice`).

The pod's required node affinity keeps the candidates to the harness's simulated nodes, so the test holds on a
cluster of the user's too (AISO_KUBECONFIG): a node of theirs is refused (node_affinity_mismatch), never chosen."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient
from kubernetes_asyncio import client

from ai_storage_orchestrator import API_GROUP, API_VERSION
from ai_storage_orchestrator.models import Phase
from ai_storage_orchestrator.runtime import Orchestrator
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.moves import wait_data_processor_completed, wait_phase
from tests.cluster.workloads import CERTIFICATION_POD, SHARED_CLAIM, certification_pod, shared_volume

pytestmark = pytest.mark.integration

JSON = dict[str, Any]
LOAD_POD = "load"


def _only_on(nodes: list[str]) -> JSON:
    term = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": nodes}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def _load_pod(node: str, cpu: str) -> JSON:
    """A pod that takes `cpu` of `node`'s allocatable (KWOK runs it; nothing executes)."""
    return {
        "metadata": {"name": LOAD_POD},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [{"name": "load", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}],
        },
    }


async def _deploy(
    core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator, *, source: str, nodes: list[str]
) -> None:
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))
    pod = certification_pod(node=source, complete_after="0s")
    pod["spec"]["affinity"] = _only_on(nodes)
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
    await wait_data_processor_completed(orchestrator, namespace)

    def shared_volume_known() -> bool:
        """The claim Bound and its PV in the caches: data-processor's results are then safe (skipped), so every
        plan below sees the same target pod."""
        claim = orchestrator.state.claim(namespace, SHARED_CLAIM) or {}
        bound = (claim.get("status") or {}).get("phase") == "Bound"
        volume = (claim.get("spec") or {}).get("volumeName")
        return bound and bool(volume) and orchestrator.state.volume(str(volume)) is not None

    await orchestrator.state.wait_for(shared_volume_known, timeout=30)


async def test_without_target_node_the_orchestrator_chooses_records_and_explains(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    api: client.ApiClient,
    namespace: str,
    orchestrator: Orchestrator,
    http: TestClient[Any, Any],
) -> None:
    source, busy, free = cluster.node_names[:3]
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, _load_pod(busy, "8")))  # half of the node's 16 cpus
    await orchestrator.state.wait_for(lambda: orchestrator.state.pod(namespace, LOAD_POD), timeout=30)
    await _deploy(core, namespace, orchestrator, source=source, nodes=cluster.node_names[:3])
    body = {"pod_name": CERTIFICATION_POD, "pod_namespace": namespace, "source_node": source, "preserve_pv": True}

    dry = await http.post("/api/migrations", json={**body, "dry_run": True})
    plan: JSON = await dry.json()
    assert (dry.status, plan["ok"]) == (200, True), plan
    choice = plan["target_choice"]
    assert plan["request"]["target_node"] == free
    assert choice["chosen"]["node"] == free
    assert [s["node"] for s in choice["runners_up"]] == [busy]
    assert choice["runners_up"][0]["score"]["cpu_after"] > choice["chosen"]["score"]["cpu_after"]
    assert {r["node"]: r["reason"] for r in choice["refused"]}[source] == "source_equals_target"
    assert choice["considered"] == choice["eligible"] + choice["refused_total"]
    assert next(c for c in plan["checks"] if c["name"] == "target_node_chosen")["passed"] is True

    response = await http.post("/api/migrations", json=body)
    accepted: JSON = await response.json()
    assert response.status == 202, accepted
    assert accepted["target_node"] == free
    assert accepted["target_choice"]["chosen"] == choice["chosen"]

    # The durable record: spec.targetNode is the chosen node, spec.targetChoice says why (camelCase, as in the CRD).
    custom = client.CustomObjectsApi(api)
    record = await custom.get_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, "podmigrations", accepted["migration_id"]
    )
    assert record["spec"]["targetNode"] == free
    recorded = record["spec"]["targetChoice"]
    assert recorded["chosen"]["node"] == free
    assert recorded["chosen"]["score"]["allocatedAfter"] == choice["chosen"]["score"]["allocated_after"]
    assert recorded["refusedTotal"] == choice["refused_total"]

    done = await wait_phase(orchestrator, namespace, accepted["migration_id"], Phase.COMPLETED, Phase.FAILED)
    assert done["status"]["phase"] == Phase.COMPLETED.value, done["status"]
    new_pod = await core.read_namespaced_pod(done["status"]["targetPod"], namespace)
    assert new_pod.spec.node_name == free
    assert [c.name for c in new_pod.spec.containers] == ["tensorflow-trainer", "model-monitor"]
    fetched = await http.get(f"/api/migrations/{accepted['migration_id']}")
    final: JSON = await fetched.json()
    assert (final["status"], final["target_node"]) == ("completed", free)
    assert final["target_choice"] == accepted["target_choice"]


async def test_target_node_auto_is_the_same_as_omitting_it(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    orchestrator: Orchestrator,
    http: TestClient[Any, Any],
) -> None:
    source = cluster.node_names[0]
    await _deploy(core, namespace, orchestrator, source=source, nodes=cluster.node_names[:3])
    body = {"pod_name": CERTIFICATION_POD, "pod_namespace": namespace, "source_node": source}
    plans = []
    for target in ({}, {"target_node": None}, {"target_node": "auto"}):
        response = await http.post("/api/migrations", json={**body, **target, "dry_run": True})
        plan: JSON = await response.json()
        assert response.status == 200, plan
        plans.append(plan["target_choice"])
    assert plans[0] == plans[1] == plans[2]
    assert plans[0]["chosen"]["node"] in cluster.node_names[1:3]
