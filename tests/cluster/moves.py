"""What integration tests of migrations share: the certification pod with its shared volume on a node, and waits on
the orchestrator's own caches (woken by its watches) for a container state or a migration phase."""

from __future__ import annotations

from typing import Any, cast

from kubernetes_asyncio import client

from ai_storage_orchestrator.models import Phase
from ai_storage_orchestrator.runtime import Orchestrator
from tests.cluster.workloads import CERTIFICATION_POD, certification_pod, shared_volume

JSON = dict[str, Any]


async def deploy_certification_pod(
    core: client.CoreV1Api,
    namespace: str,
    node: str,
    *,
    complete_after: str = "0s",
    annotations: dict[str, str] | None = None,
) -> None:
    """The shared NFS volume (PV pre-bound to its claim) and the certification pod on `node`."""
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))
    pod = certification_pod(node=node, complete_after=complete_after, annotations=annotations)
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))


def container_state(pod: JSON | None, name: str) -> str | None:
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status["name"] == name:
            state: str = next(iter(status.get("state") or {"unknown": None}))
            return state
    return None


async def wait_data_processor_completed(orchestrator: Orchestrator, namespace: str, *, timeout: float = 30) -> None:
    await orchestrator.state.wait_for(
        lambda: container_state(orchestrator.state.pod(namespace, CERTIFICATION_POD), "data-processor") == "terminated",
        timeout=timeout,
    )


async def wait_phase(
    orchestrator: Orchestrator, namespace: str, migration_id: str, *phases: Phase, timeout: float = 60
) -> JSON:
    """The migration's record once its phase is one of `phases`."""
    wanted = {p.value for p in phases}

    def reached() -> JSON | None:
        migration = orchestrator.state.migration(namespace, migration_id)
        if migration and (migration.get("status") or {}).get("phase") in wanted:
            return migration
        return None

    return await orchestrator.state.wait_for(reached, timeout=timeout)
