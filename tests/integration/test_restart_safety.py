"""SIGKILL the orchestrator in every phase of a migration, start it again: the migration finishes from its recorded
phase with exactly one Ready target pod, and the pod is never lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.models import Phase
from ai_storage_orchestrator.runtime import Orchestrator
from ai_storage_orchestrator.settings import Settings
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.moves import deploy_certification_pod
from tests.cluster.orchestrator_process import OrchestratorProcess
from tests.cluster.workloads import CERTIFICATION_POD

# Steps pass through phases: Pending's step validates and records the plan (Validating is passed through), and in
# checkpoint-restart the step that sees the source gone also creates the target (CreatingTarget).
CHECKPOINT_RESTART_PHASES = ["Pending", "Checkpointing", "StoppingSource", "WaitingForTarget"]
MAKE_BEFORE_BREAK_PHASES = ["Pending", "CreatingTarget", "WaitingForTarget", "RemovingSource"]
CASES = [
    *[("checkpoint-restart", f"{when}:{phase}") for phase in CHECKPOINT_RESTART_PHASES for when in ("before", "after")],
    *[("make-before-break", f"{when}:{phase}") for phase in MAKE_BEFORE_BREAK_PHASES for when in ("before", "after")],
]


def _is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


@pytest.mark.parametrize(("strategy", "fault"), CASES)
async def test_sigkill_at_every_phase_ends_with_one_ready_target(
    strategy: str,
    fault: str,
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    crd_installed: None,
    tmp_path: Path,
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await deploy_certification_pod(core, namespace, source)

    doomed = OrchestratorProcess(
        tmp_path, kubeconfig=cluster.kubeconfig, namespace=namespace, env={"AISO_FAULT_POINT": fault}
    )
    await doomed.start()
    body = {
        "pod_name": CERTIFICATION_POD,
        "pod_namespace": namespace,
        "source_node": source,
        "target_node": target,
        "preserve_pv": True,
        "strategy": strategy,
    }
    try:

        async def data_processor_done() -> bool:
            pod = await core.read_namespaced_pod(CERTIFICATION_POD, namespace)
            return any(s.name == "data-processor" and s.state.terminated for s in pod.status.container_statuses or [])

        await doomed.wait_for(data_processor_done, timeout=30, what="data-processor completed")
        async with aiohttp.ClientSession() as http, http.post(f"{doomed.url}/api/migrations", json=body) as response:
            assert response.status == 202, await response.text()
            migration_id = (await response.json())["migration_id"]
        reached = await doomed.wait_for_log_event("fault.reached")
        assert reached["point"] == fault
        doomed.kill()
    finally:
        doomed.stop()

    settings = Settings(kubeconfig=str(cluster.kubeconfig), namespace=namespace, leader_election=False)
    successor = Orchestrator(settings)
    await successor.start()
    try:

        def ended() -> dict[str, Any] | None:
            migration = successor.state.migration(namespace, migration_id)
            phase = ((migration or {}).get("status") or {}).get("phase")
            return migration if phase in (Phase.COMPLETED.value, Phase.FAILED.value) else None

        migration = await successor.state.wait_for(ended, timeout=60)
    finally:
        await successor.stop()

    assert migration["status"]["phase"] == "Completed", migration["status"]
    pods = (await core.list_namespaced_pod(namespace)).items
    assert [p.metadata.name for p in pods] == [migration["status"]["targetPod"]], "exactly one pod: the target"
    assert pods[0].spec.node_name == target
    assert _is_ready(pods[0])
