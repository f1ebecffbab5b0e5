"""Builders of raw Kubernetes objects (camelCase dicts, as the API server serves them) for the planning tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ai_storage_orchestrator.controller.planning import ClaimInfo, StaticVolumeCatalog
from ai_storage_orchestrator.models import MigrationRequest, Strategy

NAMESPACE = "ml"
SOURCE_NODE = "node-a"
TARGET_NODE = "node-b"
MIGRATION_ID = "3f2a9c1e-77aa-4b7e-9d0e-5a1b2c3d4e5f"

RWX_NFS = ClaimInfo(("ReadWriteMany",), "nfs-client", "nfs")
RWO_CSI = ClaimInfo(("ReadWriteOnce",), "standard", "csi")
RWX_LOCAL = ClaimInfo(("ReadWriteMany",), "local-storage", "local")
RWO_HOSTPATH = ClaimInfo(("ReadWriteOnce",), "manual", "hostPath")
UNBOUND = ClaimInfo(("ReadWriteMany",), "nfs-client", None)


def mount(volume: str, path: str, *, read_only: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {"name": volume, "mountPath": path}
    if read_only:
        result["readOnly"] = True
    return result


def container(
    name: str,
    *,
    cpu: str | None = None,
    memory: str | None = None,
    limits_only: bool = False,
    mounts: Iterable[Mapping[str, Any]] = (),
    devices: Iterable[Mapping[str, Any]] = (),
    restart_policy: str | None = None,
) -> dict[str, Any]:
    values = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    result: dict[str, Any] = {"name": name, "image": f"example.com/{name}:1"}
    if values:
        result["resources"] = {"limits": values} if limits_only else {"requests": values}
    if mounts:
        result["volumeMounts"] = [dict(m) for m in mounts]
    if devices:
        result["volumeDevices"] = [dict(d) for d in devices]
    if restart_policy:
        result["restartPolicy"] = restart_policy
    return result


def _status(name: str, state: dict[str, Any], *, ready: bool, restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "state": state, "ready": ready, "restartCount": restarts, "image": f"example.com/{name}:1"}


def running(name: str, *, restarts: int = 0) -> dict[str, Any]:
    return _status(name, {"running": {"startedAt": "2024-05-01T10:00:00Z"}}, ready=True, restarts=restarts)


def terminated(name: str, exit_code: int = 0, reason: str = "Completed") -> dict[str, Any]:
    state = {"terminated": {"exitCode": exit_code, "reason": reason, "finishedAt": "2024-05-01T11:00:00Z"}}
    return _status(name, state, ready=False)


def waiting(name: str, reason: str, *, restarts: int = 0) -> dict[str, Any]:
    status = _status(name, {"waiting": {"reason": reason}}, ready=False, restarts=restarts)
    if reason == "CrashLoopBackOff":
        status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error"}}
    return status


def pvc(volume: str, claim: str) -> dict[str, Any]:
    return {"name": volume, "persistentVolumeClaim": {"claimName": claim}}


def make_pod(
    *,
    name: str = "trainer",
    containers: Iterable[Mapping[str, Any]] = (),
    statuses: Iterable[Mapping[str, Any]] = (),
    init_containers: Iterable[Mapping[str, Any]] = (),
    init_statuses: Iterable[Mapping[str, Any]] = (),
    volumes: Iterable[Mapping[str, Any]] = (),
    restart_policy: str = "OnFailure",
    node: str | None = SOURCE_NODE,
    phase: str = "Running",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [dict(c) for c in containers], "restartPolicy": restart_policy}
    if init_containers:
        spec["initContainers"] = [dict(c) for c in init_containers]
    if volumes:
        spec["volumes"] = [dict(v) for v in volumes]
    if node is not None:
        spec["nodeName"] = node
    status: dict[str, Any] = {"phase": phase, "containerStatuses": [dict(s) for s in statuses]}
    if init_statuses:
        status["initContainerStatuses"] = [dict(s) for s in init_statuses]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": "0d6c2d7e-0000-4000-8000-000000000001",
            "resourceVersion": "4242",
            "creationTimestamp": "2024-05-01T09:59:00Z",
            "labels": dict(labels or {"app": name}),
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
        "status": status,
    }


def make_node(
    name: str = TARGET_NODE,
    *,
    ready: bool = True,
    unschedulable: bool = False,
    taints: Iterable[Mapping[str, Any]] = (),
    labels: Mapping[str, str] | None = None,
    cpu: str = "8",
    memory: str = "32Gi",
    pods: str = "110",
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def make_request(**overrides: Any) -> MigrationRequest:
    values: dict[str, Any] = {
        "pod_name": "tensorflow-ai-workload",
        "pod_namespace": NAMESPACE,
        "source_node": SOURCE_NODE,
        "target_node": TARGET_NODE,
        "strategy": Strategy.AUTO,
    }
    values.update(overrides)
    return MigrationRequest(**values)


def catalog(**claims: ClaimInfo) -> StaticVolumeCatalog:
    """Claims in NAMESPACE keyed by claim name (underscores stand for dashes)."""
    return StaticVolumeCatalog({(NAMESPACE, name.replace("_", "-")): info for name, info in claims.items()})


def certification_pod() -> dict[str, Any]:
    """The certification example: three containers sharing an RWX NFS-backed PVC, data-processor has completed."""
    data = [mount("shared-data", "/data")]
    return make_pod(
        name="tensorflow-ai-workload",
        restart_policy="OnFailure",
        containers=[
            container("tensorflow-trainer", cpu="1500m", memory="3Gi", mounts=data),
            container("data-processor", cpu="500m", memory="1536Mi", mounts=data),
            container("model-monitor", cpu="200m", memory="512Mi", mounts=data),
        ],
        statuses=[
            running("tensorflow-trainer"),
            terminated("data-processor", 0, "Completed"),
            running("model-monitor"),
        ],
        volumes=[pvc("shared-data", "training-data")],
        labels={"app": "tensorflow-ai-workload"},
    )


def certification_catalog() -> StaticVolumeCatalog:
    return catalog(training_data=RWX_NFS)
