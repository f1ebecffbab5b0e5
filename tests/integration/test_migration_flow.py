"""Migrations carried out by the controller against the real API server and KWOK nodes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import pytest
from kubernetes_asyncio import client, watch

from ai_storage_orchestrator.errors import Conflict, NotFound, Unprocessable
from ai_storage_orchestrator.models import MigrationRequest, Phase, Strategy
from ai_storage_orchestrator.runtime import Orchestrator
from ai_storage_orchestrator.settings import Settings
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.moves import container_state, deploy_certification_pod, wait_data_processor_completed, wait_phase
from tests.cluster.nodes import create_simulated_nodes
from tests.cluster.workloads import CERTIFICATION_POD

JSON = dict[str, Any]


async def _certification_setup(core: client.CoreV1Api, namespace: str, node: str) -> None:
    await deploy_certification_pod(core, namespace, node, complete_after="1s")


def _request(namespace: str, source: str, target: str, **extra: Any) -> MigrationRequest:
    return MigrationRequest(
        pod_name=CERTIFICATION_POD, pod_namespace=namespace, source_node=source, target_node=target, **extra
    )


@pytest.fixture
async def unready_node(cluster: ClusterHandle, core: client.CoreV1Api) -> Any:
    """A Ready node on which pods never become Ready (KWOK stage rule for the sim-unready- prefix)."""
    name = f"sim-unready-{uuid.uuid4().hex[:6]}"
    await create_simulated_nodes(cluster.kubeconfig, [name])
    yield name
    await core.delete_node(name)


async def test_certification_pod_migrates_with_two_containers(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _certification_setup(core, namespace, source)
    await wait_data_processor_completed(orchestrator, namespace)
    assert orchestrator.service is not None

    created = await orchestrator.service.submit(_request(namespace, source, target, preserve_pv=True))
    assert created["status"] == "pending"
    done = await wait_phase(orchestrator, namespace, created["migration_id"], Phase.COMPLETED, Phase.FAILED)

    migration = orchestrator.service.get(created["migration_id"])
    assert migration["status"] == "completed", migration
    actions = {c["name"]: c["action"] for c in migration["containers"]}
    assert actions == {"tensorflow-trainer": "migrate", "data-processor": "skip", "model-monitor": "migrate"}
    assert migration["resources"]["freed"] == {"cpu_millicores": 500, "memory_bytes": 1536 * 1024**2}
    assert migration["ordering"] == Strategy.CHECKPOINT_RESTART.value
    new_name = migration["new_pod_name"]
    assert new_name.startswith(f"{CERTIFICATION_POD}-migrated-")
    assert done["status"]["targetPod"] == new_name

    new_pod = await core.read_namespaced_pod(new_name, namespace)
    assert new_pod.spec.node_name == target
    assert [c.name for c in new_pod.spec.containers] == ["tensorflow-trainer", "model-monitor"]
    assert [v.persistent_volume_claim.claim_name for v in new_pod.spec.volumes if v.persistent_volume_claim] == [
        "training-data"
    ]
    assert new_pod.metadata.labels["ai-storage.io/migration-id"] == created["migration_id"]
    pods = await core.list_namespaced_pod(namespace)
    assert [p.metadata.name for p in pods.items] == [new_name], "source pod must be gone"
    phases = [t["phase"] for t in migration["phase_transitions"]]
    assert phases == [
        "Validating",
        "Checkpointing",
        "StoppingSource",
        "CreatingTarget",
        "WaitingForTarget",
        "Completed",
    ]


async def test_target_never_ready_fails_after_timeout_and_keeps_source(
    core: client.CoreV1Api, cluster: ClusterHandle, namespace: str, orchestrator: Orchestrator, unready_node: str
) -> None:
    source = cluster.node_names[0]
    await _certification_setup(core, namespace, source)
    await wait_data_processor_completed(orchestrator, namespace)
    assert orchestrator.service is not None
    request = _request(namespace, source, unready_node, timeout_seconds=2, strategy=Strategy.MAKE_BEFORE_BREAK)
    created = await orchestrator.service.submit(request)
    await wait_phase(orchestrator, namespace, created["migration_id"], Phase.FAILED, Phase.COMPLETED)
    migration = orchestrator.service.get(created["migration_id"])
    assert migration["status"] == "failed"
    assert migration["error"]["reason"] == "target_not_ready_timeout"
    assert "not Ready within 2s" in migration["error"]["message"]
    pods = await core.list_namespaced_pod(namespace)
    assert [(p.metadata.name, p.spec.node_name) for p in pods.items] == [(CERTIFICATION_POD, source)]


async def test_checkpoint_restart_to_a_node_that_cannot_start_the_pod_never_touches_the_source(
    core: client.CoreV1Api, cluster: ClusterHandle, namespace: str, orchestrator: Orchestrator, unready_node: str
) -> None:
    source = cluster.node_names[0]
    await _certification_setup(core, namespace, source)
    await wait_data_processor_completed(orchestrator, namespace)
    assert orchestrator.service is not None
    before = await core.read_namespaced_pod(CERTIFICATION_POD, namespace)
    request = _request(namespace, source, unready_node, timeout_seconds=3, strategy=Strategy.CHECKPOINT_RESTART)
    created = await orchestrator.service.submit(request)
    await wait_phase(orchestrator, namespace, created["migration_id"], Phase.FAILED, Phase.COMPLETED)
    migration = orchestrator.service.get(created["migration_id"])
    assert migration["status"] == "failed"
    assert migration["error"]["reason"] == "target_not_ready_timeout"
    assert "the source pod was not touched" in migration["message"]
    pods = await core.list_namespaced_pod(namespace)
    assert [(p.metadata.name, p.metadata.uid) for p in pods.items] == [(CERTIFICATION_POD, before.metadata.uid)]
    assert not any(t["phase"] == Phase.CREATING_TARGET.value for t in migration["phase_transitions"])


@pytest.mark.parametrize("orchestrator_overrides", [{"prewarm": False}])
async def test_checkpoint_restart_rollback_recreates_pod_on_source(
    core: client.CoreV1Api, cluster: ClusterHandle, namespace: str, orchestrator: Orchestrator, unready_node: str
) -> None:
    source = cluster.node_names[0]
    await _certification_setup(core, namespace, source)
    await wait_data_processor_completed(orchestrator, namespace)
    assert orchestrator.service is not None
    request = _request(namespace, source, unready_node, timeout_seconds=3, strategy=Strategy.CHECKPOINT_RESTART)
    created = await orchestrator.service.submit(request)
    await wait_phase(orchestrator, namespace, created["migration_id"], Phase.FAILED, Phase.COMPLETED)
    migration = orchestrator.service.get(created["migration_id"])
    assert migration["status"] == "failed"
    assert migration["error"]["reason"] == "target_not_ready_timeout"
    assert f"recreated on {source}" in migration["message"]
    pods = await core.list_namespaced_pod(namespace)
    assert [(p.metadata.name, p.spec.node_name) for p in pods.items] == [(CERTIFICATION_POD, source)]
    restored = pods.items[0]
    assert restored.metadata.annotations["ai-storage.io/restored-by"] == created["migration_id"]
    assert [c.name for c in restored.spec.containers] == ["tensorflow-trainer", "model-monitor"]


async def test_cancel_while_waiting_rolls_back(
    core: client.CoreV1Api, cluster: ClusterHandle, namespace: str, orchestrator: Orchestrator, unready_node: str
) -> None:
    source = cluster.node_names[0]
    await _certification_setup(core, namespace, source)
    await wait_data_processor_completed(orchestrator, namespace)
    assert orchestrator.service is not None
    request = _request(namespace, source, unready_node, strategy=Strategy.MAKE_BEFORE_BREAK)
    created = await orchestrator.service.submit(request)
    await wait_phase(orchestrator, namespace, created["migration_id"], Phase.WAITING_FOR_TARGET)
    await orchestrator.service.cancel(created["migration_id"])
    await wait_phase(orchestrator, namespace, created["migration_id"], Phase.CANCELLED, Phase.FAILED)
    migration = orchestrator.service.get(created["migration_id"])
    assert migration["status"] == "cancelled"
    pods = await core.list_namespaced_pod(namespace)
    assert [(p.metadata.name, p.spec.node_name) for p in pods.items] == [(CERTIFICATION_POD, source)]
    with pytest.raises(Conflict) as finished:
        await orchestrator.service.cancel(created["migration_id"])
    assert finished.value.reason == "migration_finished"


async def test_refusals_carry_reasons(
    core: client.CoreV1Api, cluster: ClusterHandle, namespace: str, orchestrator: Orchestrator
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _certification_setup(core, namespace, source)
    await wait_data_processor_completed(orchestrator, namespace)
    service = orchestrator.service
    assert service is not None
    with pytest.raises(NotFound) as missing:
        await service.submit(
            _request(namespace, source, target).__class__(
                pod_name="nope", pod_namespace=namespace, source_node=source, target_node=target
            )
        )
    assert missing.value.reason == "pod_not_found"
    with pytest.raises(Conflict) as wrong_node:
        await service.submit(_request(namespace, target, source))
    assert wrong_node.value.reason == "pod_not_on_source_node"
    with pytest.raises(Unprocessable) as no_node:
        await service.submit(_request(namespace, source, "no-such-node"))
    assert no_node.value.reason == "target_node_not_found"
    first = await service.submit(_request(namespace, source, target, preserve_pv=True))
    with pytest.raises(Conflict) as busy:
        await service.submit(_request(namespace, source, target))
    assert busy.value.reason == "migration_in_progress"
    assert busy.value.details["migration_id"] == first["migration_id"]
    await wait_phase(orchestrator, namespace, first["migration_id"], Phase.COMPLETED, Phase.FAILED)


async def test_image_pull_error_on_target_rolls_back_early(
    core: client.CoreV1Api, cluster: ClusterHandle, namespace: str, orchestrator: Orchestrator
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    pod = {
        "metadata": {"name": "bad-image"},
        "spec": {"nodeName": source, "containers": [{"name": "main", "image": "registry.local/does-not-exist:1"}]},
    }
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
    await orchestrator.state.wait_for(
        lambda: container_state(orchestrator.state.pod(namespace, "bad-image"), "main"), timeout=30
    )
    assert orchestrator.service is not None
    request = MigrationRequest(
        pod_name="bad-image", pod_namespace=namespace, source_node=source, target_node=target, timeout_seconds=600
    )
    created = await orchestrator.service.submit(request)
    await wait_phase(orchestrator, namespace, created["migration_id"], Phase.FAILED, Phase.COMPLETED)
    migration = orchestrator.service.get(created["migration_id"])
    assert migration["error"]["reason"] == "target_container_error"
    assert "ErrImagePull" in migration["error"]["message"]
    assert migration["duration_seconds"] < 30, "an image error must not wait for the timeout"
    pods = await core.list_namespaced_pod(namespace)
    assert [(p.metadata.name, p.spec.node_name) for p in pods.items] == [("bad-image", source)]


async def _wait_for_event(core: client.CoreV1Api, namespace: str, *, kind: str, reason: str) -> None:
    listing = await core.list_namespaced_event(namespace)
    if any(e.reason == reason and e.involved_object.kind == kind for e in listing.items):
        return
    async with asyncio.timeout(30), watch.Watch() as stream:
        async for event in stream.stream(
            core.list_namespaced_event,
            namespace,
            resource_version=listing.metadata.resource_version,
            timeout_seconds=30,
        ):
            recorded = event["object"]
            if recorded.reason == reason and recorded.involved_object.kind == kind:
                return


def created_pod_name(orchestrator: Orchestrator, namespace: str) -> str:
    migrations = [m for m in orchestrator.state.migrations if m["metadata"]["namespace"] == namespace]
    return str(migrations[0]["status"]["targetPod"])


async def test_events_are_recorded_on_the_pod_and_the_migration(
    core: client.CoreV1Api, cluster: ClusterHandle, namespace: str, orchestrator: Orchestrator
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _certification_setup(core, namespace, source)
    await wait_data_processor_completed(orchestrator, namespace)
    assert orchestrator.service is not None
    assert orchestrator.recorder is not None
    created = await orchestrator.service.submit(_request(namespace, source, target, preserve_pv=True))
    await wait_phase(orchestrator, namespace, created["migration_id"], Phase.COMPLETED)
    # The cache may show Completed (watch event) before the step that wrote it has recorded its Events.
    await _wait_for_event(core, namespace, kind="PodMigration", reason="MigrationCompleted")
    await orchestrator.recorder.flush()
    events = (await core.list_namespaced_event(namespace)).items
    on_migration = [e.reason for e in events if e.involved_object.kind == "PodMigration"]
    on_pod = [
        e.reason for e in events if e.involved_object.kind == "Pod" and e.involved_object.name == CERTIFICATION_POD
    ]
    on_new_pod = [
        e.reason
        for e in events
        if e.involved_object.kind == "Pod" and e.involved_object.name == created_pod_name(orchestrator, namespace)
    ]
    assert {"MigrationValidating", "MigrationStoppingSource", "MigrationCompleted"} <= set(on_migration)
    # DESIGN §3: on the pod only start, completion, failure and rollback; completion on the pod that now runs.
    assert on_pod == ["MigrationValidating"]
    assert on_new_pod == ["MigrationCompleted"]


async def test_per_node_cap_queues_the_second_migration(
    core: client.CoreV1Api, cluster: ClusterHandle, namespace: str, crd_installed: None, unready_node: str
) -> None:
    source = cluster.node_names[0]
    for name in ("first", "second"):
        pod = {"metadata": {"name": name}, "spec": {"nodeName": source, "containers": [{"name": "c", "image": "x"}]}}
        await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
    settings = Settings(
        kubeconfig=str(cluster.kubeconfig), namespace=namespace, leader_election=False, max_active_per_node=1
    )
    capped = Orchestrator(settings)
    await capped.start()
    try:
        assert capped.service is not None
        await capped.state.wait_for(lambda: capped.state.synced and len(capped.state.pods) == 2, timeout=30)
        migrations = []
        for name in ("first", "second"):
            request = MigrationRequest(
                pod_name=name, pod_namespace=namespace, source_node=source, target_node=unready_node
            )
            migrations.append(await capped.service.submit(request))
        await wait_phase(capped, namespace, migrations[0]["migration_id"], Phase.WAITING_FOR_TARGET)

        def queued() -> bool:
            second = capped.state.migration(namespace, migrations[1]["migration_id"]) or {}
            return "queued" in ((second.get("status") or {}).get("message") or "")

        await capped.state.wait_for(queued, timeout=30)
        assert capped.service.get(migrations[1]["migration_id"])["status"] == "pending"
        await capped.service.cancel(migrations[0]["migration_id"])
        await wait_phase(capped, namespace, migrations[1]["migration_id"], Phase.WAITING_FOR_TARGET)
        await capped.service.cancel(migrations[1]["migration_id"])
        await wait_phase(capped, namespace, migrations[1]["migration_id"], Phase.CANCELLED)
    finally:
        await capped.stop()
