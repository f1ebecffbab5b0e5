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
    "PodDisruptionBudget": Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    "NetworkPolicy": Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    "ValidatingAdmissionPolicy": Resource(
        "admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", False
    ),
    "ValidatingAdmissionPolicyBinding": Resource(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        False,
    ),
}
APP = {"app.kubernetes.io/name": "ai-storage-orchestrator"}


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


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


def test_the_deployment_is_hardened() -> None:
    objects = _kustomize(ROOT / "k8s")
    deployment = _one(objects, "Deployment")
    template = deployment["spec"]["template"]
    assert deployment["spec"]["replicas"] == 2
    assert template["metadata"]["labels"] == APP

    # At most one of the two replicas goes at a time.
    budget = _one(objects, "PodDisruptionBudget")
    assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": APP}}

    # The replicas prefer different nodes.
    [term] = template["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"] == {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": APP}}

    # The read-only root filesystem gets a bounded /tmp.
    [container] = template["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    [mount] = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
    [volume] = [v for v in template["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume == {"name": mount["name"], "emptyDir": {"sizeLimit": "1Gi"}}

    # In: the API port only. Out: the API server's ports only.
    policy = _one(objects, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert policy["spec"]["podSelector"] == {"matchLabels": APP}
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    [ingress] = policy["spec"]["ingress"]
    assert ingress == {"ports": [{"protocol": "TCP", "port": 8080}]}
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    [egress] = policy["spec"]["egress"]
    assert sorted(p["port"] for p in egress["ports"]) == [443, 6443]
    assert all(p["protocol"] == "TCP" for p in egress["ports"])


def test_the_admission_policy_is_shipped_and_bound_everywhere() -> None:
    objects = _kustomize(ROOT / "k8s")
    policy = _one(objects, "ValidatingAdmissionPolicy")
    binding = _one(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"
    [rule] = policy["spec"]["matchConstraints"]["resourceRules"]
    assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]
    assert sorted(rule["resources"]) == ["pods", "pods/status"]


def test_the_orchestrator_may_read_namespaces_one_by_one_only() -> None:
    role = _one(_kustomize(ROOT / "k8s"), "ClusterRole")
    verbs = [r["verbs"] for r in role["rules"] if "namespaces" in r["resources"] and r["apiGroups"] == [""]]
    assert verbs == [["get"]], "the opt-in label is read with a GET of the pod's namespace: no list, no watch"
