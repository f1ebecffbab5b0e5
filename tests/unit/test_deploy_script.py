"""scripts/deploy.sh against a fake `kubectl` on PATH: on a cluster without admissionregistration.k8s.io/v1
ValidatingAdmissionPolicy (Kubernetes 1.28/1.29) it applies the kustomization without the policy and says what that
means for annotation-triggered migrations; on >= 1.30 it applies `-k` as before; a rollout that does not finish names
the pods' waiting reasons and, for an image the nodes cannot get, where build.sh's image is and how to get it there."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.tools  # runs bash

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "scripts" / "deploy.sh"

FAKE_KUBECTL = r"""#!/bin/sh
echo "$*" >>"$FAKE_DIR/calls"
case "$*" in
  "-n kube-system get secret ai-storage-orchestrator-tls") exit 0 ;;
  "get --raw /apis/admissionregistration.k8s.io/v1") cat "$FAKE_DIR/discovery.json" ;;
  "kustomize "*) cat "$FAKE_DIR/rendered.yaml" ;;
  "apply -k "*)
    if grep -q validatingadmissionpolicies "$FAKE_DIR/discovery.json"; then
      echo "validatingadmissionpolicy.admissionregistration.k8s.io/ai-storage-orchestrator-annotations created"
    else
      echo 'error: resource mapping not found for name: "ai-storage-orchestrator-annotations" namespace: "" from' \
        '"k8s": no matches for kind "ValidatingAdmissionPolicy" in version "admissionregistration.k8s.io/v1"' >&2
      exit 1
    fi ;;
  "apply -f -") cat >"$FAKE_DIR/applied.yaml"; echo "deployment.apps/ai-storage-orchestrator created" ;;
  *"rollout status"*) [ "$FAKE_ROLLOUT" = ok ] || { echo "error: timed out waiting for the condition" >&2; exit 1; } ;;
  *"get service ai-storage-orchestrator -o jsonpath"*) printf 10.96.0.10 ;;
  *"get configmap ai-storage-orchestrator-ca"*) printf 'a CA' ;;
  *"-o wide") echo "NAME                          READY   STATUS              RESTARTS   AGE" ;;
  *"-o go-template="*) cat "$FAKE_DIR/waiting.tsv" ;;
  *) echo "fake kubectl: unexpected arguments: $*" >&2; exit 99 ;;
esac
"""

V1_RESOURCES = (
    '{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"admissionregistration.k8s.io/v1","resources":['
    '{"name":"mutatingwebhookconfigurations","singularName":"mutatingwebhookconfiguration","namespaced":false},'
    '{"name":"validatingwebhookconfigurations","singularName":"validatingwebhookconfiguration","namespaced":false}'
)
DISCOVERY_1_29 = V1_RESOURCES + "]}"
DISCOVERY_1_30 = (
    V1_RESOURCES
    + ',{"name":"validatingadmissionpolicies","singularName":"validatingadmissionpolicy","namespaced":false}'
    ',{"name":"validatingadmissionpolicybindings","singularName":"validatingadmissionpolicybinding"}]}'
)


def _rendered() -> str:
    """What `kubectl kustomize k8s/` prints, near enough: the CRD, the Deployment and k8s/admission's two objects."""
    parts = ["crds/podmigrations.yaml", "deploy/deployment.yaml", "admission/annotation-policy.yaml"]
    return "---\n".join((ROOT / "k8s" / part).read_text() for part in parts)


def _deploy(
    tmp_path: Path, *, discovery: str, rollout: str = "ok", waiting: str = ""
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    (tmp_path / "discovery.json").write_text(discovery)
    (tmp_path / "rendered.yaml").write_text(_rendered())
    (tmp_path / "waiting.tsv").write_text(waiting)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_DIR": str(tmp_path), "FAKE_ROLLOUT": rollout}
    return subprocess.run(
        ["bash", str(DEPLOY), "--ca-out", str(tmp_path / "ca.crt"), "--timeout", "5s"],
        capture_output=True, text=True, env={**env, "HOME": os.environ.get("HOME", "/tmp")}, cwd=tmp_path,
    )  # fmt: skip


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_without_validating_admission_policy_v1_the_rest_is_applied_and_the_refusal_said(tmp_path: Path) -> None:
    done = _deploy(tmp_path, discovery=DISCOVERY_1_29)
    assert done.returncode == 0, done.stderr
    calls = _calls(tmp_path)
    assert f"kustomize {ROOT}/k8s" in calls
    assert not any(call.startswith("apply -k") for call in calls)
    applied = [doc for doc in yaml.safe_load_all((tmp_path / "applied.yaml").read_text()) if doc]
    assert [doc["kind"] for doc in applied] == ["CustomResourceDefinition", "Deployment"]
    said = [line for line in done.stdout.splitlines() if "ValidatingAdmissionPolicy" in line]
    assert len(said) == 1
    assert "does not serve admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy (Kubernetes < 1.30)" in said[0]
    assert "refuses every annotation-triggered migration" in said[0]
    assert '"Refused (<node>): admission_policy_missing"' in said[0]  # what controller/triggers.py writes
    assert "REST API (POST /api/migrations) are not affected" in said[0]
    assert done.stdout.splitlines()[-1] == "✓ AI Storage Orchestrator deployed to kube-system"


def test_with_validating_admission_policy_v1_the_kustomization_is_applied_as_before(tmp_path: Path) -> None:
    done = _deploy(tmp_path, discovery=DISCOVERY_1_30)
    assert done.returncode == 0, done.stderr
    calls = _calls(tmp_path)
    assert f"apply -k {ROOT}/k8s" in calls
    assert not any(call.startswith(("kustomize", "apply -f")) for call in calls)
    assert "admission_policy_missing" not in done.stdout
    assert done.stdout.splitlines()[-1] == "✓ AI Storage Orchestrator deployed to kube-system"


def test_a_rollout_that_does_not_finish_names_the_waiting_reasons_and_the_image_hint(tmp_path: Path) -> None:
    waiting = (
        "ai-storage-orchestrator-7d-abc\torchestrator\tai-storage-orchestrator:0.1.0\tErrImageNeverPull\t"
        'Container image "ai-storage-orchestrator:0.1.0" is not present with pull policy of Never\n'
        "ai-storage-orchestrator-7d-def\t-\t-\tUnschedulable\t0/3 nodes are available\n"
    )
    done = _deploy(tmp_path, discovery=DISCOVERY_1_30, rollout="timeout", waiting=waiting)
    assert done.returncode == 1
    err = done.stderr
    assert "did not roll out within 5s" in err
    assert (
        "pod ai-storage-orchestrator-7d-abc: container orchestrator (ai-storage-orchestrator:0.1.0) waiting:"
        " ErrImageNeverPull: Container image" in err
    )
    assert "pod ai-storage-orchestrator-7d-def: not scheduled: Unschedulable: 0/3 nodes are available" in err
    hint = " ".join(line for line in err.splitlines() if line.startswith("hint:"))
    assert "only in this machine's local Docker" in hint
    assert "push it to a registry the nodes can pull from" in hint
    assert "--image" in hint
    assert "import it into each node's containerd" in hint


def test_a_rollout_that_waits_for_something_else_gives_no_image_hint(tmp_path: Path) -> None:
    waiting = "\t".join(
        ["ai-storage-orchestrator-7d-abc", "orchestrator", "ai-storage-orchestrator:0.1.0", "CrashLoopBackOff"]
    )
    waiting += "\tback-off\n"
    done = _deploy(tmp_path, discovery=DISCOVERY_1_30, rollout="timeout", waiting=waiting)
    assert done.returncode == 1
    assert "waiting: CrashLoopBackOff: back-off" in done.stderr
    assert "hint:" not in done.stderr
