"""Never lose a pod, on the real control plane: each test is a path that once ended with neither the source nor a
target pod (or a record that lied about it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.controller.context import MigrationContext
from ai_storage_orchestrator.controller.phases import PHASES
from ai_storage_orchestrator.controller.reconciler import Result
from ai_storage_orchestrator.conventions import API_GROUP, API_VERSION, RESTORED_BY_ANNOTATION
from ai_storage_orchestrator.models import MigrationRequest, Phase, Strategy
from ai_storage_orchestrator.runtime import Orchestrator
from ai_storage_orchestrator.settings import Settings
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.moves import container_state, deploy_certification_pod, wait_data_processor_completed, wait_phase
from tests.cluster.nodes import create_simulated_nodes
from tests.cluster.workloads import CERTIFICATION_POD, certification_pod, shared_volume

JSON = dict[str, Any]
HOLD_TERMINATION = "sim.ai-storage.io/hold-termination"  # tests/cluster/kwok-stages.yaml


async def _setup(
    core: client.CoreV1Api, namespace: str, node: str, orchestrator: Orchestrator, **annotations: str
) -> None:
    """The certification pod on `node`, seen by the orchestrator with its data-processor completed."""
    await deploy_certification_pod(core, namespace, node, annotations=annotations)
    await wait_data_processor_completed(orchestrator, namespace)


async def _submit(orchestrator: Orchestrator, namespace: str, target: str, **extra: Any) -> str:
    assert orchestrator.service is not None
    source = orchestrator.state.pod(namespace, CERTIFICATION_POD)
    assert source is not None
    request = MigrationRequest(
        pod_name=CERTIFICATION_POD,
        pod_namespace=namespace,
        source_node=source["spec"]["nodeName"],
        target_node=target,
        **extra,
    )
    created = await orchestrator.service.submit(request)
    return str(created["migration_id"])


async def _pods(core: client.CoreV1Api, namespace: str) -> list[tuple[str, str, bool]]:
    """(name, node, terminating) of every pod in the namespace, read from the API server."""
    pods = await core.list_namespaced_pod(namespace)
    return sorted((p.metadata.name, p.spec.node_name, p.metadata.deletion_timestamp is not None) for p in pods.items)


async def _wait_pod_gone(core: client.CoreV1Api, namespace: str, name: str, orchestrator: Orchestrator) -> None:
    await orchestrator.state.wait_for(lambda: orchestrator.state.pod(namespace, name) is None, timeout=30)


class Gates:
    """Hold a phase's step until the test opens its gate; the step then runs as written."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.opened: list[asyncio.Event] = []

    def hold(self, phase: Phase) -> asyncio.Event:
        step = PHASES[phase]
        opened = asyncio.Event()
        self.opened.append(opened)

        async def gated(ctx: MigrationContext) -> Result:
            await opened.wait()
            return await step(ctx)

        self.monkeypatch.setitem(PHASES, phase, gated)
        return opened


async def _only_the_source_left(orchestrator: Orchestrator, core: client.CoreV1Api, namespace: str, node: str) -> None:
    await orchestrator.state.wait_for(
        lambda: (
            [p["metadata"]["name"] for p in orchestrator.state.pods if p["metadata"]["namespace"] == namespace]
            == [CERTIFICATION_POD]
        ),
        timeout=30,
    )
    assert await _pods(core, namespace) == [(CERTIFICATION_POD, node, False)]


@pytest.fixture
async def gates(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gates]:
    held = Gates(monkeypatch)
    yield held
    for opened in held.opened:
        opened.set()


@pytest.fixture
async def unready_target(cluster: ClusterHandle, core: client.CoreV1Api) -> AsyncIterator[str]:
    """A Ready node on which pods never become Ready (KWOK stage rule for the sim-unready- prefix)."""
    name = f"sim-unready-{uuid.uuid4().hex[:6]}"
    await create_simulated_nodes(cluster.kubeconfig, [name])
    yield name
    await core.delete_node(name)


async def test_cancel_while_the_source_is_terminating_recreates_the_pod(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _setup(core, namespace, source, orchestrator, **{HOLD_TERMINATION: "true"})
    # Simulated nodes have no exec: said up front, so the pre-warmed target is not started beside a checkpoint that
    # will be skipped (that copy would inherit the hold annotation and stay Terminating when removed).
    assert orchestrator.controller is not None
    orchestrator.controller.exec_support.note(source, works=False)
    migration_id = await _submit(orchestrator, namespace, target, strategy=Strategy.CHECKPOINT_RESTART)
    await orchestrator.state.wait_for(
        lambda: bool(
            (orchestrator.state.pod(namespace, CERTIFICATION_POD) or {}).get("metadata", {}).get("deletionTimestamp")
        ),
        timeout=30,
    )
    assert orchestrator.service is not None
    await orchestrator.service.cancel(migration_id)
    await wait_phase(orchestrator, namespace, migration_id, Phase.ROLLING_BACK)
    pods = await _pods(core, namespace)
    assert (CERTIFICATION_POD, source, True) in pods
    assert all(node == target for name, node, _ in pods if name != CERTIFICATION_POD), "only the pre-warmed target"

    # The kubelet finishes the old pod only now (and the pre-warmed target, which inherited the annotation): the
    # rollback must still bring the pod back.
    for name, _node, _terminating in pods:
        await core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": {HOLD_TERMINATION: None}}})
    done = await wait_phase(orchestrator, namespace, migration_id, Phase.CANCELLED, Phase.FAILED)
    assert done["status"]["phase"] == Phase.CANCELLED.value
    assert done["status"]["podsAlive"] == [CERTIFICATION_POD]
    assert await _pods(core, namespace) == [(CERTIFICATION_POD, source, False)]
    restored = await core.read_namespaced_pod(CERTIFICATION_POD, namespace)
    assert restored.metadata.annotations[RESTORED_BY_ANNOTATION] == migration_id


async def test_a_target_lost_after_it_was_ready_keeps_the_source(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    orchestrator: Orchestrator,
    gates: Gates,
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _setup(core, namespace, source, orchestrator)
    removing = gates.hold(Phase.REMOVING_SOURCE)
    migration_id = await _submit(orchestrator, namespace, target, strategy=Strategy.MAKE_BEFORE_BREAK)
    ready = await wait_phase(orchestrator, namespace, migration_id, Phase.REMOVING_SOURCE)
    first_target = ready["status"]["targetPod"]
    first_uid = ready["status"]["targetPodUID"]

    await core.delete_namespaced_pod(first_target, namespace)  # evicted, deleted, lost: after it was Ready
    await _wait_pod_gone(core, namespace, first_target, orchestrator)
    removing.set()

    done = await wait_phase(orchestrator, namespace, migration_id, Phase.COMPLETED, Phase.FAILED)
    assert done["status"]["phase"] == Phase.COMPLETED.value, done["status"]
    phases = [t["phase"] for t in done["status"]["phaseTransitions"]]
    removing_at = phases.index("RemovingSource")
    assert phases[removing_at + 1] == "WaitingForTarget", phases  # went back to wait instead of removing the source
    assert done["status"]["targetPodUID"] != first_uid, "completed with the new target, not the lost one"
    await _wait_pod_gone(core, namespace, CERTIFICATION_POD, orchestrator)
    assert await _pods(core, namespace) == [(first_target, target, False)]


async def test_a_target_whose_data_processor_completed_before_it_was_seen_replaces_the_source(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator, gates: Gates
) -> None:
    """A data-processor that also writes to a scratch volume is run again in the target; once it completes there, the
    target is never Ready again (neither is the source), yet it runs the pod's work and replaces the source."""
    source, target = cluster.node_names[0], cluster.node_names[1]
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))
    pod = certification_pod(node=source, complete_after="0s")
    pod["spec"]["volumes"].append({"name": "scratch", "emptyDir": {}})
    prep = next(c for c in pod["spec"]["containers"] if c["name"] == "data-processor")
    prep["volumeMounts"].append({"name": "scratch", "mountPath": "/scratch"})
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
    await wait_data_processor_completed(orchestrator, namespace)
    waiting = gates.hold(Phase.WAITING_FOR_TARGET)
    migration_id = await _submit(orchestrator, namespace, target, strategy=Strategy.MAKE_BEFORE_BREAK)
    created = await wait_phase(orchestrator, namespace, migration_id, Phase.WAITING_FOR_TARGET)
    planned = next(t for t in created["status"]["phaseTransitions"] if t["phase"] == "CreatingTarget")
    assert "0 container(s) left out" in planned["message"], planned
    name = created["status"]["targetPod"]
    await orchestrator.state.wait_for(
        lambda: container_state(orchestrator.state.pod(namespace, name), "data-processor") == "terminated", timeout=30
    )
    waiting.set()

    done = await wait_phase(orchestrator, namespace, migration_id, Phase.COMPLETED, Phase.FAILED)
    assert done["status"]["phase"] == Phase.COMPLETED.value, done["status"]
    reached = next(t for t in done["status"]["phaseTransitions"] if t["phase"] == "RemovingSource")
    assert reached["message"] == f"target pod {name} runs (data-processor completed)"
    await _wait_pod_gone(core, namespace, CERTIFICATION_POD, orchestrator)
    assert await _pods(core, namespace) == [(name, target, False)]


@pytest.mark.parametrize("orchestrator_overrides", [{"prewarm": False}])  # so that the source stops first
async def test_deleting_the_podmigration_mid_move_rolls_back(
    core: client.CoreV1Api,
    api: client.ApiClient,
    cluster: ClusterHandle,
    namespace: str,
    orchestrator: Orchestrator,
    unready_target: str,
) -> None:
    source = cluster.node_names[0]
    await _setup(core, namespace, source, orchestrator)
    migration_id = await _submit(orchestrator, namespace, unready_target, strategy=Strategy.CHECKPOINT_RESTART)
    await wait_phase(orchestrator, namespace, migration_id, Phase.WAITING_FOR_TARGET)
    assert [name for name, _, _ in await _pods(core, namespace)] != [CERTIFICATION_POD], "source stopped"

    custom = client.CustomObjectsApi(api)
    await custom.delete_namespaced_custom_object(API_GROUP, API_VERSION, namespace, "podmigrations", migration_id)
    await orchestrator.state.wait_for(lambda: orchestrator.state.migration(namespace, migration_id) is None, timeout=60)
    await orchestrator.state.wait_for(
        lambda: (
            [p["metadata"]["name"] for p in orchestrator.state.pods if p["metadata"]["namespace"] == namespace]
            == [CERTIFICATION_POD]
        ),
        timeout=30,
    )
    assert await _pods(core, namespace) == [(CERTIFICATION_POD, source, False)]


async def test_a_disruption_budget_blocks_the_source_removal(
    cluster: ClusterHandle, core: client.CoreV1Api, api: client.ApiClient, namespace: str, orchestrator: Orchestrator
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _setup(core, namespace, source, orchestrator)
    pod = await core.read_namespaced_pod(CERTIFICATION_POD, namespace)
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "keep-two"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": dict(pod.metadata.labels)}},
    }
    await client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(
        namespace, cast(client.V1PodDisruptionBudget, budget)
    )
    migration_id = await _submit(
        orchestrator, namespace, target, strategy=Strategy.MAKE_BEFORE_BREAK, timeout_seconds=15
    )

    def blocked() -> bool:
        status = (orchestrator.state.migration(namespace, migration_id) or {}).get("status") or {}
        return str(status.get("message", "")).startswith("blocked_by_disruption_budget")

    await orchestrator.state.wait_for(blocked, timeout=30)
    done = await wait_phase(orchestrator, namespace, migration_id, Phase.FAILED, Phase.COMPLETED)
    assert done["status"]["error"]["reason"] == "blocked_by_disruption_budget"
    await orchestrator.state.wait_for(
        lambda: (
            [p["metadata"]["name"] for p in orchestrator.state.pods if p["metadata"]["namespace"] == namespace]
            == [CERTIFICATION_POD]
        ),
        timeout=30,
    )
    assert await _pods(core, namespace) == [(CERTIFICATION_POD, source, False)]


async def test_finished_migrations_expire(
    cluster: ClusterHandle, core: client.CoreV1Api, api: client.ApiClient, namespace: str, crd_installed: None
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    settings = Settings(
        kubeconfig=str(cluster.kubeconfig),
        namespace=namespace,
        leader_election=False,
        identity=f"ttl-{namespace}",
        finished_migration_ttl_seconds=1.0,
    )
    orchestrator = Orchestrator(settings)
    await orchestrator.start()
    try:
        await orchestrator.state.wait_for(lambda: orchestrator.state.synced, timeout=30)
        await _setup(core, namespace, source, orchestrator)
        migration_id = await _submit(orchestrator, namespace, target)
        await wait_phase(orchestrator, namespace, migration_id, Phase.COMPLETED)
        await orchestrator.state.wait_for(
            lambda: orchestrator.state.migration(namespace, migration_id) is None, timeout=30
        )
    finally:
        await orchestrator.stop()
    custom = client.CustomObjectsApi(api)
    listed = await custom.list_namespaced_custom_object(API_GROUP, API_VERSION, namespace, "podmigrations")
    assert listed["items"] == []
