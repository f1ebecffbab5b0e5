"""`drain NODE` against the real API server, kube-controller-manager (the real ReplicaSet and DaemonSet controllers)
and KWOK nodes, with an in-process orchestrator behind its REST API on 127.0.0.1.

The node holds two certification pods (the orchestrator migrates them: the finished data-processor stays behind), a
ReplicaSet's pod (the orchestrator refuses it, owned_by_controller: evicted, and its ReplicaSet recreates it on
another node) and a DaemonSet's pod (skipped). The harness runs no scheduler: the DaemonSet's pod is bound to the
node as kube-scheduler would (pods/binding), the ReplicaSet's pods name their node in the template."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.runtime import Orchestrator
from tests.cluster.api_clients import api_client_of
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.moves import container_state
from tests.cluster.pods import wait_pods
from tests.cluster.processes import run_command
from tests.cluster.workloads import SHARED_CLAIM, certification_pod, shared_volume

pytestmark = pytest.mark.integration

JSON = dict[str, Any]
BIN = Path(sys.executable).parent
COMMAND_DEADLINE = 100.0
MIGRATED = ("cert-a", "cert-b")
OWNED = "owned"
AGENT = "agent"


async def _run(argv: list[str]) -> tuple[int, str, str]:
    return await run_command(argv, timeout=COMMAND_DEADLINE)


def _running_on(pods: list[JSON], node: str, prefix: str) -> list[JSON]:
    return [
        p
        for p in pods
        if p["metadata"]["name"].startswith(prefix)
        and p["spec"].get("nodeName") == node
        and (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    ]


def _replica_set(node: str) -> JSON:
    labels = {"app": OWNED}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": OWNED},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeName": node, "containers": [{"name": "web", "image": "busybox"}]},
            },
        },
    }


def _daemon_set(node: str) -> JSON:
    labels = {"app": AGENT}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": AGENT},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [{"name": "agent", "image": "busybox"}],
                },
            },
        },
    }


async def _bind(core: client.CoreV1Api, namespace: str, pod: str, node: str) -> None:
    """What kube-scheduler does: bind the pod to the node."""
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }
    response = cast(  # not preloaded: the aiohttp response itself, not a V1Binding
        aiohttp.ClientResponse,
        await core.create_namespaced_pod_binding(
            pod, namespace, cast(client.V1Binding, binding), _preload_content=False
        ),
    )
    response.release()


async def _deploy(core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str, source: str) -> None:
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))
    for name in MIGRATED:
        await core.create_namespaced_pod(
            namespace, cast(client.V1Pod, certification_pod(node=source, name=name, complete_after="0s"))
        )
    await apps.create_namespaced_replica_set(namespace, cast(client.V1ReplicaSet, _replica_set(source)))
    await apps.create_namespaced_daemon_set(namespace, cast(client.V1DaemonSet, _daemon_set(source)))
    pods = await wait_pods(core, namespace, lambda ps: any(p["metadata"]["name"].startswith(AGENT) for p in ps))
    agent = next(p for p in pods if p["metadata"]["name"].startswith(AGENT))
    await _bind(core, namespace, agent["metadata"]["name"], source)


def _ready(pods: list[JSON], source: str) -> bool:
    finished = {
        p["metadata"]["name"]
        for p in pods
        if p["metadata"]["name"] in MIGRATED and container_state(p, "data-processor") == "terminated"
    }
    return (
        finished == set(MIGRATED)
        and len(_running_on(pods, source, OWNED)) == 1
        and len(_running_on(pods, source, AGENT)) == 1
    )


async def _orchestrator_sees_everything(orchestrator: Orchestrator, namespace: str, pods: list[JSON]) -> None:
    """The orchestrator's caches hold the pods as they are now and the shared claim with its PV (data-processor's
    results are then known to be safe, so it is left out)."""

    def seen() -> bool:
        claim = orchestrator.state.claim(namespace, SHARED_CLAIM) or {}
        volume = (claim.get("spec") or {}).get("volumeName")
        if (claim.get("status") or {}).get("phase") != "Bound" or not volume:
            return False
        if orchestrator.state.volume(str(volume)) is None:
            return False
        return all(
            container_state(orchestrator.state.pod(namespace, name), "data-processor") == "terminated"
            for name in MIGRATED
        ) and all(orchestrator.state.pod(namespace, p["metadata"]["name"]) is not None for p in pods)

    await orchestrator.state.wait_for(seen, timeout=30)


async def _unschedulable(core: client.CoreV1Api, node: str) -> bool:
    return bool((await core.read_node(node)).spec.unschedulable)


def _rows(out: str) -> dict[str, list[str]]:
    """The dry run's table: pod name -> its cells."""
    return {cells[1]: cells for line in out.splitlines() if len(cells := line.split()) >= 3 and cells[0] != "NAMESPACE"}


async def test_drain_migrates_evicts_and_skips(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    api: client.ApiClient,
    namespace: str,
    orchestrator: Orchestrator,
    rest_url: str,
) -> None:
    source, elsewhere = cluster.node_names[0], cluster.node_names[1]
    apps = client.AppsV1Api(api)
    await _deploy(core, apps, namespace, source)
    pods = await wait_pods(core, namespace, lambda ps: _ready(ps, source))
    # From now on the ReplicaSet recreates its pod on another node (the one on `source` stays where it is).
    await apps.patch_namespaced_replica_set(OWNED, namespace, {"spec": {"template": {"spec": {"nodeName": elsewhere}}}})
    await _orchestrator_sees_everything(orchestrator, namespace, pods)
    owned_before = _running_on(pods, source, OWNED)[0]["metadata"]
    agent_before = _running_on(pods, source, AGENT)[0]["metadata"]
    common = ["-n", namespace, "--kubeconfig", str(cluster.kubeconfig), "--url", rest_url]

    try:
        # --dry-run, through the kubectl plugin: the plan, and nothing changed -- not even the cordon.
        code, out, err = await _run([str(BIN / "kubectl-migrate"), "drain", source, "--dry-run", *common])
        assert code == 0, (out, err)
        rows = _rows(out)
        for name in MIGRATED:
            assert rows[name][2] == "migrate", out
            assert rows[name][3] not in (source, "-"), out
        assert rows[owned_before["name"]][2:4] == ["evict", "-"], out
        assert "owned_by_controller" in " ".join(rows[owned_before["name"]]), out
        assert rows[agent_before["name"]][2] == "skip", out
        assert "DaemonSet" in " ".join(rows[agent_before["name"]]), out
        assert "Would migrate 2, evict 1, skip 1, leave 0; 0 cannot be planned" in out
        assert not await _unschedulable(core, source)
        assert orchestrator.service is not None
        assert orchestrator.service.list(namespace=namespace) == []
        after_dry_run = await wait_pods(core, namespace, lambda ps: True)
        assert {p["metadata"]["uid"] for p in after_dry_run} == {p["metadata"]["uid"] for p in pods}

        # The drain itself; stdout is a pipe: plain progress lines, no escape codes.
        argv = [str(BIN / "ai-storage-orchestrator"), "drain", source, *common, "--timeout", "90s"]
        code, out, err = await _run([*argv, "--poll-interval", "0.2"])
        assert code == 0, (out, err)
        assert "\x1b[" not in out
        assert out.splitlines()[0] == f"node/{source} cordoned", out
        assert f"Node {source}: migrated 2, evicted 1, skipped 1, failed 0" in out, out
        assert out.splitlines()[-1] == f"node/{source} drained", out
        assert await _unschedulable(core, source)

        migrations = orchestrator.service.list(namespace=namespace)
        assert sorted((m["pod_name"], m["status"]) for m in migrations) == [(n, "completed") for n in MIGRATED]
        for migration in migrations:
            assert re.search(rf"migrated +{namespace}/{migration['pod_name']} -> {migration['target_node']}", out)
            moved = api_client_of(core).sanitize_for_serialization(
                await core.read_namespaced_pod(migration["new_pod_name"], namespace)
            )
            assert moved["spec"]["nodeName"] not in (None, source)
            assert [c["name"] for c in moved["spec"]["containers"]] == ["tensorflow-trainer", "model-monitor"]

        def settled(ps: list[JSON]) -> bool:
            """The owner's replacement runs elsewhere; on the node only the DaemonSet's pod is left."""
            on_source = [p for p in ps if p["spec"].get("nodeName") == source]
            return [p["metadata"]["uid"] for p in on_source] == [agent_before["uid"]] and bool(
                _running_on(ps, elsewhere, OWNED)
            )

        after = await wait_pods(core, namespace, settled)
        assert owned_before["uid"] not in {p["metadata"]["uid"] for p in after}
        assert f"{namespace}/{agent_before['name']}: managed by DaemonSet {AGENT}" in out
    finally:
        await core.patch_node(source, {"spec": {"unschedulable": False}})
