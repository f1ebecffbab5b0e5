"""The Helm chart (charts/ai-storage-orchestrator) passes `helm lint --strict` and renders, with its default values,
exactly the objects of `kubectl kustomize k8s/` (plus Helm's standard labels); its namespace-scoped mode renders those
of k8s/namespaced, its nodeSelector/tolerations those of k8s/overlays/control-plane. Kustomize stays the primary path:
these tests fail when the two diverge.

helm is built from the Go module proxy by `make tools-bin` (tools/testtools/helm.sh) into the directory AISO_TOOLS_BIN
names (default: what `tools/testtools/build.sh --print` prints); without it these tests fail and say so."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.local_cluster import cache_dir

pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ai-storage-orchestrator"
APP = {"app.kubernetes.io/name": "ai-storage-orchestrator"}
# The labels Helm charts conventionally add, which k8s/ does not carry.
HELM_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}
RELEASE = "aiso"
JSON = dict[str, Any]

# The namespace-scoped mode with a TLS Secret of another name, a token audience and an extra argument, in a release
# namespace other than kube-system.
SCOPED_TLS_VALUES: JSON = {
    "namespaceScope": {"namespaces": ["ml-team-a", "ml-team-b"]},
    "tls": {"secretName": "orchestrator-cert"},
    "auth": {"tokenAudience": "migrations.example"},
    "extraArgs": ["--max-active-migrations=4"],
}


def helm_binary() -> Path:
    """helm of `make tools-bin`; a test that needs it fails (never skips) when it is not built."""
    helm = cache_dir("tools/testtools/build.sh", override="AISO_TOOLS_BIN") / "helm"
    if not helm.is_file():
        pytest.fail(
            f"helm is not built ({helm} is missing): run `make tools-bin` (tools/testtools/build.sh) and pass its"
            " directory as AISO_TOOLS_BIN, as `make test` does",
            pytrace=False,
        )
    return helm


def helm(*args: str | Path) -> str:
    """Run helm; its stderr in the failure when it exits non-zero."""
    done = subprocess.run([str(helm_binary()), *map(str, args)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"helm {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def values_file(directory: Path, values: JSON) -> Path:
    path = directory / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def render(tmp_path: Path, values: JSON | None = None, *, namespace: str = "kube-system") -> list[JSON]:
    """`helm template` with the CRDs, as the objects it prints."""
    args: list[str | Path] = ["template", RELEASE, CHART, "--namespace", namespace, "--include-crds"]
    if values is not None:
        args += ["--values", values_file(tmp_path, values)]
    return [doc for doc in yaml.safe_load_all(helm(*args)) if doc]


def kustomize(directory: str) -> list[JSON]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (for its built-in kustomize) is not on PATH", pytrace=False)
    rendered = subprocess.run(
        [kubectl, "kustomize", str(ROOT / directory)], check=True, capture_output=True, text=True, timeout=60
    )
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def key(obj: JSON) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def without_helm_labels(obj: JSON) -> JSON:
    """The object as k8s/ would have it: Helm's standard labels dropped (each of them checked to be there)."""
    stripped = copy.deepcopy(obj)
    labels = stripped["metadata"].get("labels", {})
    if obj["kind"] != "CustomResourceDefinition":  # crds/ is copied verbatim, not templated
        assert set(labels) >= HELM_LABELS, f"{key(obj)} lacks Helm's labels: {labels}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
    for label in HELM_LABELS:
        labels.pop(label, None)
    return stripped


def collapsed(value: Any) -> Any:
    """Every string with its runs of white space made one space."""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list):
        return [collapsed(v) for v in value]
    if isinstance(value, dict):
        return {k: collapsed(v) for k, v in value.items()}
    return value


def comparable(obj: JSON) -> JSON:
    """kustomize re-emits a folded (>-) CEL expression whose next line is more indented with an extra blank line
    ("(\n\n  authorizer..." where the file has "(\n  authorizer..."); CEL ignores white space outside its string
    literals (which have none of these line breaks), so the admission policy's spec is compared with white space
    collapsed. Every other object is compared as it is."""
    if obj["kind"] != "ValidatingAdmissionPolicy":
        return obj
    return {**obj, "spec": collapsed(obj["spec"])}


def assert_same_objects(chart: list[JSON], kustomized: list[JSON]) -> None:
    by_key = {key(o): comparable(without_helm_labels(o)) for o in chart}
    expected = {key(o): comparable(o) for o in kustomized}
    assert len(by_key) == len(chart), "the chart renders an object twice"
    assert sorted(by_key) == sorted(expected), "the chart and kustomize render different objects"
    for name, obj in expected.items():
        assert by_key[name] == obj, f"{name} differs between the chart and kustomize"


def one(objects: list[JSON], kind: str, name: str | None = None) -> JSON:
    [found] = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found


def container(objects: list[JSON]) -> JSON:
    [found] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert isinstance(found, dict)
    return found


def test_helm_lint_strict_passes_with_the_default_and_the_namespace_scoped_tls_values(tmp_path: Path) -> None:
    helm("lint", "--strict", CHART)
    out = helm(
        "lint", "--strict", CHART, "--namespace", "ml-platform", "--values", values_file(tmp_path, SCOPED_TLS_VALUES)
    )
    assert "0 chart(s) failed" in out


def test_the_default_values_render_what_kustomize_renders_from_k8s(tmp_path: Path) -> None:
    chart, kustomized = render(tmp_path), kustomize("k8s")
    assert_same_objects(chart, kustomized)
    # The fields the two must above all agree on, spelled out (assert_same_objects compares every field).
    assert container(chart)["args"] == container(kustomized)["args"]
    assert container(chart)["ports"] == container(kustomized)["ports"] == [{"name": "https", "containerPort": 8080}]
    assert container(chart)["image"] == "ai-storage-orchestrator:0.1.0"
    assert one(chart, "ClusterRole")["rules"] == one(kustomized, "ClusterRole")["rules"]
    crd = one(chart, "CustomResourceDefinition")
    assert crd["spec"]["versions"] == one(kustomized, "CustomResourceDefinition")["spec"]["versions"]


def test_the_chart_ships_the_crd_of_k8s_unchanged() -> None:
    assert (CHART / "crds" / "podmigrations.yaml").read_text() == (ROOT / "k8s/crds/podmigrations.yaml").read_text(), (
        "copy k8s/crds/podmigrations.yaml to charts/ai-storage-orchestrator/crds/"
    )


def test_the_chart_ships_the_admission_policy_of_k8s_unchanged(tmp_path: Path) -> None:
    """Exactly as the file in k8s/admission has it (no white space normalised, unlike the kustomize comparison)."""
    shipped = [d for d in yaml.safe_load_all((ROOT / "k8s/admission/annotation-policy.yaml").read_text()) if d]
    chart = render(tmp_path)
    for document in shipped:
        assert one(chart, document["kind"])["spec"] == document["spec"], document["kind"]


def test_the_namespace_scoped_mode_renders_what_kustomize_renders_from_k8s_namespaced(tmp_path: Path) -> None:
    chart = render(tmp_path, {"namespaceScope": {"namespaces": ["ml-team-a", "ml-team-b"]}})
    assert_same_objects(chart, kustomize("k8s/namespaced"))


def test_node_selector_and_tolerations_render_the_control_plane_overlay(tmp_path: Path) -> None:
    overlay = kustomize("k8s/overlays/control-plane")
    pod = one(overlay, "Deployment")["spec"]["template"]["spec"]
    chart = render(tmp_path, {"nodeSelector": pod["nodeSelector"], "tolerations": pod["tolerations"]})
    assert_same_objects(chart, overlay)


def test_namespace_scoped_tls_values_in_another_namespace(tmp_path: Path) -> None:
    chart = render(tmp_path, SCOPED_TLS_VALUES, namespace="ml-platform")
    assert container(chart)["args"] == [
        "serve",
        "--host=0.0.0.0",
        "--port=8080",
        "--auth=kubernetes",
        "--token-audience=migrations.example",
        "--tls-cert-file=/tls/tls.crt",
        "--tls-key-file=/tls/tls.key",
        "--log-format=json",
        "--lease-namespace=ml-platform",  # the leader-election Role is in the release's namespace
        "--namespaces=ml-team-a,ml-team-b",
        "--max-active-migrations=4",
    ]
    pod = one(chart, "Deployment")["spec"]["template"]["spec"]
    [tls] = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert tls["secret"] == {"secretName": "orchestrator-cert", "defaultMode": 0o440}

    # Roles in the managed namespaces and the Lease's; no cluster-wide rights on pods.
    assert sorted(o["metadata"]["namespace"] for o in chart if o["kind"] == "Role") == [
        "ml-platform",
        "ml-team-a",
        "ml-team-b",
    ]
    lease_role = one(chart, "Role", "ai-storage-orchestrator-leader-election")
    assert lease_role["metadata"]["namespace"] == "ml-platform"
    [cluster_role] = [o for o in chart if o["kind"] == "ClusterRole"]
    assert cluster_role["metadata"]["name"] == "ai-storage-orchestrator-cluster-read"
    assert not [r for r in cluster_role["rules"] if "pods" in r["resources"]]
    subject = {"kind": "ServiceAccount", "name": "ai-storage-orchestrator", "namespace": "ml-platform"}
    for binding in (o for o in chart if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert binding["subjects"] == [subject], binding["metadata"]
    namespaced = {key(o)[:2] for o in chart if o["metadata"].get("namespace")}
    assert {namespace for _kind, namespace in namespaced} == {"ml-platform", "ml-team-a", "ml-team-b"}


def test_without_tls_the_api_is_plain_http_behind_insecure_http(tmp_path: Path) -> None:
    chart = render(tmp_path, {"tls": {"secretName": ""}})
    served = container(chart)
    assert "--insecure-http" in served["args"]
    assert not [a for a in served["args"] if a.startswith("--tls-")]
    assert served["ports"] == [{"name": "http", "containerPort": 8080}]
    assert served["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "scheme": "HTTP"}
    assert [m["name"] for m in served["volumeMounts"]] == ["tmp"]
    assert one(chart, "Service")["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]


def test_an_empty_token_audience_is_passed_as_such(tmp_path: Path) -> None:
    """null (the default) leaves the orchestrator's own default; "" is the documented 'API server tokens' choice."""
    assert "--token-audience=" in container(render(tmp_path, {"auth": {"tokenAudience": ""}}))["args"]


def test_image_replicas_resources_affinity_and_optional_objects(tmp_path: Path) -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}}  # fmt: skip
    values = {
        "image": {"repository": "registry.example/aiso", "tag": "0.2.0", "pullPolicy": "Always"},
        "replicas": 3,
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": None},  # null drops a default
        "affinity": affinity,
        "podAnnotations": {"example.com/team": "ml"},
        "admissionPolicy": {"enabled": False},
        "comparisonClient": {"create": False},
        "podDisruptionBudget": {"enabled": False},
        "networkPolicy": {"apiServerCIDRs": ["10.0.0.10/32"], "apiServerPorts": [6443]},
    }
    chart = render(tmp_path, values)
    deployment = one(chart, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert container(chart)["image"] == "registry.example/aiso:0.2.0"
    assert container(chart)["imagePullPolicy"] == "Always"
    assert container(chart)["resources"] == {"requests": {"cpu": "200m", "memory": "256Mi"}}
    assert deployment["spec"]["template"]["spec"]["affinity"] == affinity, "a set affinity replaces the default"
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"example.com/team": "ml"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {**APP, "app": "ai-storage-orchestrator"}
    assert deployment["spec"]["selector"]["matchLabels"] == APP, "the seed's `app` label is not in the selector"
    kinds = {o["kind"] for o in chart}
    assert not kinds & {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "PodDisruptionBudget"}
    assert [o["metadata"]["name"] for o in chart if o["kind"] == "ServiceAccount"] == ["ai-storage-orchestrator"]
    [egress] = one(chart, "NetworkPolicy")["spec"]["egress"]
    assert egress == {"ports": [{"protocol": "TCP", "port": 6443}], "to": [{"ipBlock": {"cidr": "10.0.0.10/32"}}]}


def test_a_cluster_older_than_1_30_is_refused() -> None:
    """ValidatingAdmissionPolicy v1 needs 1.30 (Chart.yaml's kubeVersion)."""
    done = subprocess.run(
        [str(helm_binary()), "template", RELEASE, str(CHART), "--kube-version", "1.29.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "kubeVersion" in done.stderr or "incompatible" in done.stderr, done.stderr
