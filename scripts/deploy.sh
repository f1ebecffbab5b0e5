#!/usr/bin/env bash
# Deploy the orchestrator into kube-system (kubectl apply -k k8s/), wait for the rollout, print the Service URL.
# Its output ends as the certification procedure's does: the objects kubectl created, then
# `✓ AI Storage Orchestrator deployed to kube-system` once the Deployment has rolled out.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/deploy.sh [--kubeconfig PATH] [--kustomize DIR] [--image NAME:TAG] [--timeout 180s] [--ca-out FILE]

  --kubeconfig PATH   kubeconfig to use (default: kubectl's own resolution)
  --kustomize DIR     the kustomization to apply (default k8s/; k8s/overlays/control-plane runs the orchestrator on
                      the control-plane node, as the certification procedure's set-up has it)
  --image NAME:TAG    image to run (default: the one in k8s/deploy/deployment.yaml)
  --timeout DURATION  how long to wait for the rollout (default 180s)
  --ca-out FILE       where to write the CA that signed the API's certificate (default ./ai-storage-orchestrator-ca.crt)
  -h, --help          this help

The API speaks TLS. Its certificate comes from the Secret kube-system/ai-storage-orchestrator-tls; when that Secret
is missing, this script creates one signed by a new self-signed CA (openssl), for the Service's names and its
cluster IP, and keeps the CA in the ConfigMap kube-system/ai-storage-orchestrator-ca for clients.
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kubectl_args=()
kustomization="$root/k8s"
image=""
timeout="180s"
ca_out="$PWD/ai-storage-orchestrator-ca.crt"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kubeconfig) kubectl_args+=(--kubeconfig "$2"); shift 2 ;;
    --kustomize) kustomization="$2"; shift 2 ;;
    --image) image="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --ca-out) ca_out="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

command -v kubectl >/dev/null 2>&1 || { echo "kubectl is required (it was not found on PATH)" >&2; exit 1; }
[[ -f "$kustomization/kustomization.yaml" ]] || { echo "no kustomization.yaml in $kustomization" >&2; exit 2; }
echo "Deploying AI Storage Orchestrator to Kubernetes..."
k() { kubectl "${kubectl_args[@]}" "$@"; }
secret="ai-storage-orchestrator-tls"
ca_map="ai-storage-orchestrator-ca"

# A certificate for the Service's names and cluster IP, signed by a CA made here, unless the Secret already exists.
create_tls() {
  command -v openssl >/dev/null 2>&1 || { echo "openssl is required to create the TLS certificate" >&2; exit 1; }
  k apply -f "$root/k8s/deploy/service.yaml"  # first: its cluster IP goes into the certificate
  local ip work svc="ai-storage-orchestrator"
  ip="$(k -n kube-system get service "$svc" -o jsonpath='{.spec.clusterIP}')"
  work="$(mktemp -d)"
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=ai-storage-orchestrator CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$svc.kube-system.svc" \
    -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
    "DNS:$svc,DNS:$svc.kube-system,DNS:$svc.kube-system.svc,DNS:$svc.kube-system.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$ip" \
    >"$work/ext"
  openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial -days 825 \
    -extfile "$work/ext" -out "$work/tls.crt" 2>/dev/null
  k -n kube-system create secret tls "$secret" --cert "$work/tls.crt" --key "$work/tls.key" >/dev/null
  k -n kube-system create configmap "$ca_map" --from-file=ca.crt="$work/ca.crt" --dry-run=client -o yaml | k apply -f - >/dev/null
  rm -rf "$work"  # the CA's key goes: a new certificate means a new CA (delete the Secret and run this again)
  echo "✓ TLS certificate for $svc.kube-system.svc and $ip, signed by a new CA (Secret kube-system/$secret)"
}

# ValidatingAdmissionPolicy is served as admissionregistration.k8s.io/v1 from Kubernetes 1.30 on; 1.28 and 1.29 serve at
# most a beta (off by default), and `kubectl apply -k` stops at "no matches for kind". A cluster whose discovery cannot
# be read takes the default path: its apply then says what is wrong.
serves_admission_policy() {
  local discovery
  discovery="$(k get --raw /apis/admissionregistration.k8s.io/v1 2>/dev/null)" || return 0
  [[ "$discovery" =~ \"name\":[[:space:]]*\"validatingadmissionpolicies\" ]]
}

# The kustomization without the ValidatingAdmissionPolicy and its binding. kustomize prints one object per document
# with its top-level keys at column 0 (a nested `kind:` is indented), so the two kinds are dropped by their `kind:` line.
apply_without_admission_policy() {
  k kustomize "$kustomization" | awk '
    function flush() { if (doc != "" && !skip) { printf "%s%s", sep, doc; sep = "---\n" } doc = ""; skip = 0 }
    /^---[[:space:]]*$/ { flush(); next }
    /^kind:[[:space:]]*ValidatingAdmissionPolicy(Binding)?[[:space:]]*$/ { skip = 1 }
    { doc = doc $0 "\n" }
    END { flush() }' | k apply -f -
  # What controller/triggers.py does without the policy's binding (it fails closed), in one line:
  echo "⚠ this cluster does not serve admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy (Kubernetes < 1.30):" \
    "deployed without the annotation policy (k8s/admission), so the orchestrator refuses every annotation-triggered" \
    "migration (ai-storage.io/migrate-to -> ai-storage.io/migration-status \"Refused (<node>): admission_policy_missing\"," \
    "unless it runs with --trust-annotations); migrations through the REST API (POST /api/migrations) are not affected"
}

# Why the orchestrator's pods are not ready: each container's waiting reason, an unscheduled pod's reason, and for an
# image the nodes cannot get, where the image built by scripts/build.sh is and how the nodes can get it.
# shellcheck disable=SC2016 # $pod is the go-template's variable, not the shell's
explain_rollout() {
  local template reasons pod container pod_image reason message image_hint="" name_hint=""
  template='{{range .items}}{{$pod := .metadata.name}}'
  template+='{{range .status.conditions}}{{if and (eq .type "PodScheduled") (eq .status "False")}}'
  template+='{{$pod}}{{"\t-\t-\t"}}{{.reason}}{{"\t"}}{{.message}}{{"\n"}}{{end}}{{end}}'
  template+='{{range .status.initContainerStatuses}}{{if .state.waiting}}{{$pod}}{{"\t"}}{{.name}}{{"\t"}}{{.image}}'
  template+='{{"\t"}}{{.state.waiting.reason}}{{"\t"}}{{.state.waiting.message}}{{"\n"}}{{end}}{{end}}'
  template+='{{range .status.containerStatuses}}{{if .state.waiting}}{{$pod}}{{"\t"}}{{.name}}{{"\t"}}{{.image}}'
  template+='{{"\t"}}{{.state.waiting.reason}}{{"\t"}}{{.state.waiting.message}}{{"\n"}}{{end}}{{end}}{{end}}'
  reasons="$(k -n kube-system get pods -l app.kubernetes.io/name=ai-storage-orchestrator \
    -o go-template="$template")" || return 0
  [[ -n "$reasons" ]] || { echo "no pod of the orchestrator reports a waiting container"; return 0; }
  while IFS=$'\t' read -r pod container pod_image reason message; do
    if [[ "$container" == - ]]; then
      echo "  pod $pod: not scheduled: $reason${message:+: $message}"
      continue
    fi
    echo "  pod $pod: container $container ($pod_image) waiting: $reason${message:+: $message}"
    case "$reason" in
      ErrImagePull | ImagePullBackOff | ErrImageNeverPull) image_hint="$pod_image" ;;
      InvalidImageName) name_hint="$pod_image" ;;
    esac
  done <<<"$reasons"
  if [[ -n "$image_hint" ]]; then
    echo "hint: the nodes cannot get the image $image_hint. The image scripts/build.sh builds is only in this" \
      "machine's local Docker (or the OCI archive in dist/): push it to a registry the nodes can pull from and pass" \
      "that name with --image (scripts/deploy.sh --image REGISTRY/ai-storage-orchestrator:TAG), or import it into" \
      "each node's containerd (scripts/build.sh --import-containerd on the node, or ctr -n k8s.io images import)"
  fi
  if [[ -n "$name_hint" ]]; then
    echo "hint: $name_hint is not a valid image reference: pass a valid one with --image"
  fi
}

if k -n kube-system get secret "$secret" >/dev/null 2>&1; then
  echo "✓ TLS: using the existing Secret kube-system/$secret"
else
  create_tls
fi
if serves_admission_policy; then
  k apply -k "$kustomization"
else
  apply_without_admission_policy
fi
if [[ -n "$image" ]]; then
  k -n kube-system set image deployment/ai-storage-orchestrator "orchestrator=$image"
fi
if ! k -n kube-system rollout status deployment/ai-storage-orchestrator --timeout "$timeout"; then
  echo "the Deployment kube-system/ai-storage-orchestrator did not roll out within $timeout:" >&2
  k -n kube-system get pods -l app.kubernetes.io/name=ai-storage-orchestrator -o wide >&2 || true
  explain_rollout >&2 || true
  exit 1
fi
ip="$(k -n kube-system get service ai-storage-orchestrator -o jsonpath='{.spec.clusterIP}')"
if k -n kube-system get configmap "$ca_map" -o jsonpath='{.data.ca\.crt}' >"$ca_out" 2>/dev/null && [[ -s "$ca_out" ]]; then
  echo "CA of the API's certificate: $ca_out (export AI_STORAGE_ORCHESTRATOR_CA_FILE=$ca_out)"
else
  rm -f "$ca_out"
  echo "the certificate's CA is not in ConfigMap kube-system/$ca_map: pass your own with --ca-file"
fi
echo "orchestrator: https://${ip}:8080 (in-cluster: https://ai-storage-orchestrator.kube-system.svc:8080)"
echo "✓ AI Storage Orchestrator deployed to kube-system"
