"""Every manifest under k8s/ passes a server-side dry-run apply against the real API server."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from ai_storage_orchestrator.kube.resources import CRDS, KubeApi, Resource

ROOT = Path(__file__).resolve().parents[2]
KINDS = {
    "CustomResourceDefinition": CRDS,
    "ServiceAccount": Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    "Service": Resource("", "v1", "services", "Service"),
    "PersistentVolume": Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False),
    "PersistentVolumeClaim": Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    "ConfigMap": Resource("", "v1", "configmaps", "ConfigMap"),
    "Pod": Resource("", "v1", "pods", "Pod"),
    "Deployment": Resource("apps", "v1", "deployments", "Deployment"),
    "ClusterRole": Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    "ClusterRoleBinding": Resource(
        "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
    ),
    "Role": Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    "RoleBinding": Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
}


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (for its built-in kustomize) is not installed")
    rendered = subprocess.run([kubectl, "kustomize", str(directory)], check=True, capture_output=True, text=True)
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@pytest.mark.parametrize("directory", ["k8s", "k8s/nfs", "k8s/workloads"])
async def test_manifests_pass_server_side_dry_run(api: client.ApiClient, directory: str) -> None:
    objects = _kustomize(ROOT / directory)
    assert objects, f"{directory} renders nothing"
    kube = KubeApi(api)
    for obj in objects:
        resource = KINDS[obj["kind"]]
        applied = await kube.apply(resource, obj, field_manager="manifest-test", dry_run=True)
        assert applied["metadata"]["name"] == obj["metadata"]["name"]
