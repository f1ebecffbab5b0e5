"""The certification workload (3 containers, shared NFS-style volume) as manifests for the simulated cluster."""

from __future__ import annotations

from typing import Any

CERTIFICATION_POD = "tensorflow-ai-workload"
SHARED_CLAIM = "training-data"
IMAGE = "tensorflow/tensorflow:2.13.0"

CONTAINERS = {
    "tensorflow-trainer": {"cpu": "1500m", "memory": "3Gi"},
    "data-processor": {"cpu": "500m", "memory": "1536Mi"},
    "model-monitor": {"cpu": "200m", "memory": "512Mi"},
}


def shared_volume(namespace: str, *, claim: str = SHARED_CLAIM) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ReadWriteMany NFS PersistentVolume pre-bound to its claim (simulated nodes never mount it)."""
    pv_name = f"{namespace}-{claim}"
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "labels": {"ai-storage.io/test": "true"}},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "nfs",
            "nfs": {"server": "127.0.0.1", "path": "/exports/training"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "nfs",
            "resources": {"requests": {"storage": "10Gi"}},
            "volumeName": pv_name,
        },
    }
    return pv, pvc


def certification_pod(
    *,
    node: str,
    name: str = CERTIFICATION_POD,
    claim: str = SHARED_CLAIM,
    complete_after: str = "2s",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    containers = [
        {
            "name": container,
            "image": IMAGE,
            "command": ["python", f"/scripts/{container}.py"],
            "resources": {"requests": dict(requests), "limits": dict(requests)},
            "volumeMounts": [{"name": "shared-data", "mountPath": "/data"}],
        }
        for container, requests in CONTAINERS.items()
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "tensorflow-ai-workload"},
            "annotations": {
                "sim.ai-storage.io/complete-containers": "data-processor",
                "sim.ai-storage.io/complete-after": complete_after,
                **(annotations or {}),
            },
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 5,
            "containers": containers,
            "volumes": [{"name": "shared-data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }
