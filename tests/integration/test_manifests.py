"""Every manifest under k8s/ passes a server-side dry-run apply against the real API server; the default and the
namespace-scoped overlay (k8s/namespaced) grant what they say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import CRDS, NAMESPACES, KubeApi, Resource

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


@pytest.mark.parametrize(
    "directory", ["k8s", "k8s/nfs", "k8s/workloads", "k8s/namespaced", "k8s/overlays/control-plane"]
)
async def test_manifests_pass_server_side_dry_run(api: client.ApiClient, directory: str) -> None:
    objects = _kustomize(ROOT / directory)
    assert objects, f"{directory} renders nothing"
    kube = KubeApi(api)
    # The namespaces a manifest puts objects in exist on a real cluster before the apply (kube-system always does).
    created = []
    for namespace in sorted({o["metadata"].get("namespace") for o in objects} - {None, "kube-system", "default"}):
        try:
            await kube.create(NAMESPACES, {"metadata": {"name": namespace, "labels": {"ai-storage.io/test": "true"}}})
        except KubeApiError as error:
            if not error.already_exists:
                raise
        else:
            created.append(namespace)
    try:
        for obj in objects:
            resource = KINDS[obj["kind"]]
            applied = await kube.apply(resource, obj, field_manager="manifest-test", dry_run=True)
            assert applied["metadata"]["name"] == obj["metadata"]["name"]
    finally:
        for namespace in created:
            await kube.delete(NAMESPACES, namespace)


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


def test_the_deployment_is_hardened() -> None:
    objects = _kustomize(ROOT / "k8s")
    deployment = _one(objects, "Deployment")
    template = deployment["spec"]["template"]
    assert deployment["spec"]["replicas"] == 2
    assert template["metadata"]["labels"] == {**APP, "app": "ai-storage-orchestrator"}  # the seed's docs select it

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


def test_the_control_plane_overlay_runs_the_same_deployment_on_the_control_plane() -> None:
    default, overlay = _kustomize(ROOT / "k8s"), _kustomize(ROOT / "k8s" / "overlays" / "control-plane")
    assert sorted((o["kind"], o["metadata"]["name"]) for o in overlay) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in default
    )
    pod = _one(overlay, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert pod["tolerations"] == [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
    ]
    unchanged = _one(default, "Deployment")["spec"]["template"]["spec"]
    assert {k: v for k, v in pod.items() if k not in ("nodeSelector", "tolerations")} == unchanged


def test_the_comparison_client_has_no_rights_of_its_own() -> None:
    objects = _kustomize(ROOT / "k8s")
    [client_account] = [
        o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "ai-migration-compare"
    ]
    assert client_account["metadata"]["namespace"] == "kube-system"
    assert client_account["automountServiceAccountToken"] is False
    subjects = [s for o in objects if o["kind"].endswith("Binding") for s in o.get("subjects", [])]
    assert all(s.get("name") != "ai-migration-compare" for s in subjects)


def test_the_admission_policy_is_shipped_and_bound_everywhere() -> None:
    objects = _kustomize(ROOT / "k8s")
    policy = _one(objects, "ValidatingAdmissionPolicy")
    binding = _one(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"
    writes, bindings = policy["spec"]["matchConstraints"]["resourceRules"]
    assert sorted(writes["operations"]) == ["CREATE", "UPDATE"]
    assert sorted(writes["resources"]) == ["pods", "pods/status"]
    assert (bindings["operations"], bindings["resources"]) == (["CREATE"], ["pods/binding"])


def test_the_orchestrator_may_read_namespaces_one_by_one_only() -> None:
    role = _one(_kustomize(ROOT / "k8s"), "ClusterRole")
    verbs = [r["verbs"] for r in role["rules"] if "namespaces" in r["resources"] and r["apiGroups"] == [""]]
    assert verbs == [["get"]], "the opt-in label is read with a GET of the pod's namespace: no list, no watch"


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """(group, resource, verb, resourceNames) of every rule."""
    return {
        (group, resource, verb, tuple(rule.get("resourceNames") or ()))
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _args(objects: list[dict[str, Any]]) -> list[str]:
    [container] = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    args: list[str] = container["args"]
    return args


def test_the_namespaced_overlay_grants_the_default_rights_in_its_namespaces_only() -> None:
    default, scoped = _kustomize(ROOT / "k8s"), _kustomize(ROOT / "k8s" / "namespaced")
    cluster_wide = _one(default, "ClusterRole")
    [cluster_read] = [o for o in scoped if o["kind"] == "ClusterRole"]
    assert cluster_read["metadata"]["name"] != cluster_wide["metadata"]["name"], "k8s/rbac's ClusterRole is dropped"
    [cluster_binding] = [o for o in scoped if o["kind"] == "ClusterRoleBinding"]
    assert cluster_binding["roleRef"]["name"] == cluster_read["metadata"]["name"]

    # --namespaces of the Deployment = the namespaces holding the orchestrator's Role (besides its Lease's).
    [flag] = [a for a in _args(scoped) if a.startswith("--namespaces=")]
    managed = flag.removeprefix("--namespaces=").split(",")
    assert not [a for a in _args(default) if a.startswith(("--namespaces", "--namespace="))], "k8s/: all namespaces"
    assert _args(scoped) == [*_args(default), flag]
    roles = {o["metadata"]["namespace"]: o for o in scoped if o["kind"] == "Role"}
    lease_namespace = _one(default, "Deployment")["metadata"]["namespace"]
    assert sorted(roles) == sorted([*managed, lease_namespace])
    for namespace in managed:
        [binding] = [o for o in scoped if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] == namespace]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "ai-storage-orchestrator",
        }
        assert binding["subjects"] == _one(default, "ClusterRoleBinding")["subjects"], "the same ServiceAccount"

    # Together, a managed namespace's Role and the small ClusterRole grant exactly what the ClusterRole of k8s/ does.
    role = roles[managed[0]]
    assert all(_grants(roles[n]["rules"]) == _grants(role["rules"]) for n in managed)
    assert _grants(role["rules"]) | _grants(cluster_read["rules"]) == _grants(cluster_wide["rules"])
    cluster_scoped = {"nodes", "persistentvolumes", "tokenreviews", "subjectaccessreviews",
                      "validatingadmissionpolicybindings", "validatingadmissionpolicies"}  # fmt: skip
    assert {resource for _g, resource, _v, _n in _grants(cluster_read["rules"])} == cluster_scoped
    assert not {verb for _g, _r, verb, _n in _grants(cluster_read["rules"])} - {"get", "list", "watch", "create"}
    assert {v for _g, r, v, _n in _grants(cluster_read["rules"]) if r in ("nodes", "persistentvolumes")} == {
        "get",
        "list",
        "watch",
    }


def test_the_orchestrator_may_read_the_admission_policy_by_name_only() -> None:
    for directory in ("k8s", "k8s/namespaced"):
        objects = _kustomize(ROOT / directory)
        binding = _one(objects, "ValidatingAdmissionPolicyBinding")
        grants = {g for o in objects if o["kind"] == "ClusterRole" for g in _grants(o["rules"])}
        admission = {g for g in grants if g[0] == "admissionregistration.k8s.io"}
        names = (binding["metadata"]["name"],)
        assert admission == {
            ("admissionregistration.k8s.io", "validatingadmissionpolicybindings", "get", names),
            ("admissionregistration.k8s.io", "validatingadmissionpolicies", "get", (binding["spec"]["policyName"],)),
        }, directory
