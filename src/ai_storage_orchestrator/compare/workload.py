"""The certification workload as manifests: pod ``tensorflow-ai-workload`` with three containers on a shared RWX claim.

Four variants with the same containers and volume:

* ``tensorflow`` -- the real one (image tensorflow/tensorflow:2.13.0, the programs of ``workload_scripts`` in a
  ConfigMap). ``k8s/workloads/`` holds the same objects for ``kubectl apply -k`` (a unit test keeps them in step).
* ``numpy`` -- for real nodes of a small test machine (the ``make e2e`` tier): local image
  ``aiso.local/numpy-workload:1`` (Debian's python3 and numpy, no TensorFlow, never pulled), the programs of
  ``numpy_scripts`` in the same ConfigMap, the same memory and the CPU requests scaled by ``NUMPY_CPU_SCALE``.
* ``tensorflow-local`` -- the ``tensorflow`` programs on those small real nodes: local image
  ``aiso.local/tensorflow-workload:2.13`` (the numpy image plus tensorflow-cpu 2.13.1 from PyPI, built only on request
  by ``tools/nodes/images.sh --tensorflow``, never pulled) and the ``numpy`` variant's scaled CPU requests.
* ``simulated`` -- for simulated (KWOK) nodes, which run no containers: the annotations of
  tests/cluster/kwok-stages.yaml make ``data-processor`` end with exit 0 after ``complete_after`` (a Go duration)
  and keep the others running.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from ai_storage_orchestrator.compare import numpy_scripts, workload_scripts
from ai_storage_orchestrator.controller.planning.quantities import cpu_millicores, format_cpu
from ai_storage_orchestrator.conventions import SIM_COMPLETE_AFTER_ANNOTATION, SIM_COMPLETE_CONTAINERS_ANNOTATION

JSON = dict[str, Any]

POD_NAME = "tensorflow-ai-workload"
CLAIM = "training-data"
IMAGE = "tensorflow/tensorflow:2.13.0"
NUMPY_IMAGE = "aiso.local/numpy-workload:1"  # imported into each node's containerd, never pulled
TENSORFLOW_LOCAL_IMAGE = "aiso.local/tensorflow-workload:2.13"  # likewise
SCRIPTS_CONFIG_MAP = "tensorflow-ai-workload-scripts"
DATA_MOUNT = "/data"
SCRIPTS_MOUNT = "/scripts"
COMPLETING_CONTAINER = "data-processor"
PROCESS_SECONDS = 45
APP_LABEL = {"app": POD_NAME}
WORKLOADS = ("simulated", "tensorflow", "numpy", "tensorflow-local")
REAL_WORKLOADS = ("tensorflow", "numpy", "tensorflow-local")  # run containers: real nodes and the scripts ConfigMap
SCALED_WORKLOADS = ("numpy", "tensorflow-local")  # CPU requests scaled by NUMPY_CPU_SCALE for 2-core nodes


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    name: str
    cpu: str
    memory: str
    role: str


CONTAINERS = (
    ContainerSpec("tensorflow-trainer", "1500m", "3Gi", "trains a model continuously"),
    ContainerSpec("data-processor", "500m", "1536Mi", f"preprocesses data for about {PROCESS_SECONDS} s, then exits 0"),
    ContainerSpec("model-monitor", "200m", "512Mi", "watches model metrics"),
)

# Why the numpy variant scales CPU: it runs on real kubelets of a small test machine, two nodes on one 2-core host,
# each offering 2 CPUs. The certification's requests add up to 2.2 CPUs, and a pod pinned with spec.nodeName skips the
# scheduler, so the kubelet itself rejects it (Failed, reason OutOfcpu). The variant's CPU requests (= limits) are
# therefore the certification's scaled by this factor: 750m + 250m + 100m = 1100m, which leaves room for the node's
# other pods. Memory stays as certified, and the share the orchestrator frees (data-processor's, 22.7 %) is unchanged.
NUMPY_CPU_SCALE = Fraction(1, 2)
NUMPY_CONTAINERS = tuple(
    replace(spec, cpu=format_cpu(int(cpu_millicores(spec.cpu) * NUMPY_CPU_SCALE))) for spec in CONTAINERS
)
SCRIPTS_BY_WORKLOAD: Mapping[str, Mapping[str, str]] = {
    "tensorflow": workload_scripts.SCRIPTS,
    "numpy": numpy_scripts.SCRIPTS,
    "tensorflow-local": workload_scripts.SCRIPTS,
}


# `--workload auto` on real nodes, in order of preference: the certification's own image, then the local stand-ins
# that tools/nodes/images.sh imports into a node's containerd (never pulled).
_BY_IMAGE = (("tensorflow", IMAGE), ("tensorflow-local", TENSORFLOW_LOCAL_IMAGE), ("numpy", NUMPY_IMAGE))


def node_images(node: Mapping[str, Any]) -> frozenset[str]:
    """The image names a node's kubelet reports (status.images: up to its nodeStatusMaxImages)."""
    images = (node.get("status") or {}).get("images") or []
    return frozenset(str(name) for image in images for name in image.get("names") or [])


def workload_for_images(images_per_node: Sequence[frozenset[str]]) -> tuple[str, str]:
    """The real workload variant for `--workload auto` and why: the first of the certification's image and the
    local stand-ins that every one of the nodes already has; none of them anywhere → the certification's, pulled."""
    for workload, image in _BY_IMAGE:
        if images_per_node and all(_has(images, image) for images in images_per_node):
            scaled = f", CPU requests x{NUMPY_CPU_SCALE} to fit 2-core nodes" if workload in SCALED_WORKLOADS else ""
            return workload, f"{image} is on both nodes{scaled}"
    return "tensorflow", f"no node has {IMAGE} or a local stand-in yet: the kubelets pull {IMAGE}"


def _has(images: frozenset[str], image: str) -> bool:
    # The kubelet reports names as the runtime normalised them (docker.io/tensorflow/tensorflow:2.13.0).
    return image in images or f"docker.io/{image}" in images


def scale_note(workload: str) -> str | None:
    """What a published table of this variant must say next to it: its CPU is not the certification's."""
    if workload not in SCALED_WORKLOADS:
        return None
    certified = sum(cpu_millicores(spec.cpu) for spec in CONTAINERS)
    scaled = sum(cpu_millicores(spec.cpu) for spec in NUMPY_CONTAINERS)
    return (
        f"workload {workload}: the certification's CPU requests and limits scaled x{NUMPY_CPU_SCALE}"
        f" ({format_cpu(certified)} -> {format_cpu(scaled)}) so the pod fits 2-core nodes; memory as certified,"
        " the share of requests the orchestrator frees unchanged"
    )


def container_specs(workload: str) -> tuple[ContainerSpec, ...]:
    """The containers of a workload variant, with its requests."""
    return NUMPY_CONTAINERS if workload in SCALED_WORKLOADS else CONTAINERS


def _resources(spec: ContainerSpec) -> JSON:
    values = {"cpu": spec.cpu, "memory": spec.memory}
    return {"requests": dict(values), "limits": dict(values)}


def _metadata(name: str, namespace: str | None, labels: dict[str, str] | None) -> JSON:
    metadata: JSON = {"name": name, "labels": {**APP_LABEL, **(labels or {})}}
    if namespace:
        metadata["namespace"] = namespace
    return metadata


def shared_volume(
    *, namespace: str, claim: str = CLAIM, nfs_server: str, nfs_path: str, labels: dict[str, str] | None = None
) -> tuple[JSON, JSON]:
    """A ReadWriteMany NFS PersistentVolume pre-bound to its claim, and the claim."""
    pv_name = f"{namespace}-{claim}"
    pv: JSON = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "labels": dict(labels or {})},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "nfs",
            "nfs": {"server": nfs_server, "path": nfs_path},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
    pvc: JSON = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "nfs",
            "resources": {"requests": {"storage": "10Gi"}},
            "volumeName": pv_name,
        },
    }
    return pv, pvc


def simulated_pod(
    *,
    node: str,
    namespace: str | None = None,
    claim: str = CLAIM,
    complete_after: str = f"{PROCESS_SECONDS}s",
    labels: dict[str, str] | None = None,
) -> JSON:
    containers = [
        {
            "name": spec.name,
            "image": IMAGE,
            "command": ["python3", "-u", f"{SCRIPTS_MOUNT}/{spec.name}.py"],
            "resources": _resources(spec),
            "volumeMounts": [{"name": "shared-data", "mountPath": DATA_MOUNT}],
        }
        for spec in CONTAINERS
    ]
    metadata = _metadata(POD_NAME, namespace, labels)
    metadata["annotations"] = {
        SIM_COMPLETE_CONTAINERS_ANNOTATION: COMPLETING_CONTAINER,
        SIM_COMPLETE_AFTER_ANNOTATION: complete_after,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": node,
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 5,
            "containers": containers,
            "volumes": [{"name": "shared-data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def _env(spec: ContainerSpec) -> list[JSON]:
    env = [{"name": "DATA_DIR", "value": DATA_MOUNT}]
    if spec.name == COMPLETING_CONTAINER:
        env.append({"name": "PROCESS_SECONDS", "value": str(PROCESS_SECONDS)})
    return env


def _real_pod(
    *,
    image: str,
    specs: tuple[ContainerSpec, ...],
    pull_policy: str | None,
    node: str | None,
    namespace: str | None,
    claim: str,
    labels: dict[str, str] | None,
) -> JSON:
    pull = {"imagePullPolicy": pull_policy} if pull_policy else {}
    containers = [
        {
            "name": spec.name,
            "image": image,
            **pull,
            "command": ["python3", "-u", f"{SCRIPTS_MOUNT}/{spec.name}.py"],
            "env": _env(spec),
            "resources": _resources(spec),
            "volumeMounts": [
                {"name": "shared-data", "mountPath": DATA_MOUNT},
                {"name": "scripts", "mountPath": SCRIPTS_MOUNT, "readOnly": True},
            ],
        }
        for spec in specs
    ]
    spec: JSON = {
        "restartPolicy": "OnFailure",
        "terminationGracePeriodSeconds": 30,
        "containers": containers,
        "volumes": [
            {"name": "shared-data", "persistentVolumeClaim": {"claimName": claim}},
            {"name": "scripts", "configMap": {"name": SCRIPTS_CONFIG_MAP}},
        ],
    }
    if node:
        spec = {"nodeName": node, **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata(POD_NAME, namespace, labels), "spec": spec}


def tensorflow_pod(
    *,
    node: str | None = None,
    namespace: str | None = "default",
    claim: str = CLAIM,
    labels: dict[str, str] | None = None,
) -> JSON:
    """The real workload. Without ``node`` the scheduler places it; the comparison pins it with ``spec.nodeName``."""
    return _real_pod(
        image=IMAGE, specs=CONTAINERS, pull_policy=None, node=node, namespace=namespace, claim=claim, labels=labels
    )


def numpy_pod(
    *,
    node: str | None = None,
    namespace: str | None = "default",
    claim: str = CLAIM,
    labels: dict[str, str] | None = None,
) -> JSON:
    """The real workload on the local numpy image with the scaled CPU requests (``NUMPY_CPU_SCALE``); it needs the
    ConfigMap of ``scripts_config_map(workload="numpy")``."""
    return _real_pod(
        image=NUMPY_IMAGE, specs=NUMPY_CONTAINERS, pull_policy="Never", node=node, namespace=namespace, claim=claim,
        labels=labels,
    )  # fmt: skip


def tensorflow_local_pod(
    *,
    node: str | None = None,
    namespace: str | None = "default",
    claim: str = CLAIM,
    labels: dict[str, str] | None = None,
) -> JSON:
    """The TensorFlow programs on the local TensorFlow image with the scaled CPU requests; it needs the ConfigMap of
    ``scripts_config_map(workload="tensorflow-local")`` (the ``tensorflow`` programs)."""
    return _real_pod(
        image=TENSORFLOW_LOCAL_IMAGE, specs=NUMPY_CONTAINERS, pull_policy="Never", node=node, namespace=namespace,
        claim=claim, labels=labels,
    )  # fmt: skip


def scripts_config_map(
    *, namespace: str | None = "default", labels: dict[str, str] | None = None, workload: str = "tensorflow"
) -> JSON:
    """The programs of a real workload variant (``REAL_WORKLOADS``), one key per container."""
    if workload not in SCRIPTS_BY_WORKLOAD:
        raise ValueError(f"workload {workload!r} runs no scripts: one of {', '.join(SCRIPTS_BY_WORKLOAD)} does")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(SCRIPTS_CONFIG_MAP, namespace, labels),
        "data": dict(SCRIPTS_BY_WORKLOAD[workload]),
    }


def workload_pod(
    workload: str, *, node: str, namespace: str, claim: str, complete_after: str, labels: dict[str, str]
) -> JSON:
    if workload == "simulated":
        return simulated_pod(node=node, namespace=namespace, claim=claim, complete_after=complete_after, labels=labels)
    if workload == "tensorflow":
        return tensorflow_pod(node=node, namespace=namespace, claim=claim, labels=labels)
    if workload == "numpy":
        return numpy_pod(node=node, namespace=namespace, claim=claim, labels=labels)
    if workload == "tensorflow-local":
        return tensorflow_local_pod(node=node, namespace=namespace, claim=claim, labels=labels)
    raise ValueError(f"unknown workload {workload!r}: one of {', '.join(WORKLOADS)}")


def manifest_objects() -> list[JSON]:
    """What k8s/workloads/ holds: the ConfigMap with the programs and the pod, in namespace ``default``."""
    return [scripts_config_map(), tensorflow_pod()]


# k8s/workloads/ is written from the builders above: python -m ai_storage_orchestrator.compare.workload k8s/workloads
MANIFEST_FILES: dict[str, tuple[str, Callable[[], JSON]]] = {
    "scripts-configmap.yaml": (
        "# The programs the three containers run (python3 of tensorflow/tensorflow:2.13.0).\n",
        scripts_config_map,
    ),
    "tensorflow-ai-workload.yaml": (
        "# The certification workload: pod tensorflow-ai-workload (3 containers) on the shared RWX claim\n"
        "# training-data (k8s/nfs provides one). `ai-storage-orchestrator compare` deploys the same pod pinned with\n"
        "# spec.nodeName.\n",
        tensorflow_pod,
    ),
}
_GENERATED = (
    "# Generated by `python -m ai_storage_orchestrator.compare.workload k8s/workloads`: edit compare/workload*.py.\n"
)


def render_yaml(obj: JSON) -> str:
    """YAML with multi-line strings (the scripts) as literal blocks."""

    class Dumper(yaml.SafeDumper):
        pass

    def represent(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, represent)
    return yaml.dump(obj, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=120)


def write_manifests(directory: Path) -> list[Path]:
    written = []
    for name, (comment, build) in MANIFEST_FILES.items():
        path = directory / name
        path.write_text(_GENERATED + comment + render_yaml(build()))
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    for written_path in write_manifests(Path(sys.argv[1] if len(sys.argv) > 1 else "k8s/workloads")):
        print(written_path)
