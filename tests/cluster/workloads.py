"""The certification workload for the simulated cluster: the comparison tool's own manifests
(`ai_storage_orchestrator.compare.workload`), with the knobs tests need."""

from __future__ import annotations

from typing import Any

from ai_storage_orchestrator.compare import workload

CERTIFICATION_POD = workload.POD_NAME
SHARED_CLAIM = workload.CLAIM
IMAGE = workload.IMAGE
TEST_LABELS = {"ai-storage.io/test": "true"}


def shared_volume(namespace: str, *, claim: str = SHARED_CLAIM) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ReadWriteMany NFS PersistentVolume pre-bound to its claim (simulated nodes never mount it)."""
    return workload.shared_volume(
        namespace=namespace, claim=claim, nfs_server="127.0.0.1", nfs_path="/exports/training", labels=TEST_LABELS
    )


def certification_pod(
    *,
    node: str,
    name: str = CERTIFICATION_POD,
    claim: str = SHARED_CLAIM,
    complete_after: str = "2s",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    pod = workload.simulated_pod(node=node, claim=claim, complete_after=complete_after)
    pod["metadata"]["name"] = name
    pod["metadata"]["annotations"].update(annotations or {})
    return pod
