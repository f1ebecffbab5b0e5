#!/usr/bin/env bash
# Deploy the orchestrator into kube-system (kubectl apply -k k8s/), wait for the rollout, print the Service URL.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/deploy.sh [--kubeconfig PATH] [--image NAME:TAG] [--timeout 180s]

  --kubeconfig PATH   kubeconfig to use (default: kubectl's own resolution)
  --image NAME:TAG    image to run (default: the one in k8s/deploy/deployment.yaml)
  --timeout DURATION  how long to wait for the rollout (default 180s)
  -h, --help          this help
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kubectl_args=()
image=""
timeout="180s"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kubeconfig) kubectl_args+=(--kubeconfig "$2"); shift 2 ;;
    --image) image="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

command -v kubectl >/dev/null 2>&1 || { echo "kubectl is required" >&2; exit 1; }
kubectl "${kubectl_args[@]}" apply -k "$root/k8s"
if [[ -n "$image" ]]; then
  kubectl "${kubectl_args[@]}" -n kube-system set image deployment/ai-storage-orchestrator "orchestrator=$image"
fi
kubectl "${kubectl_args[@]}" -n kube-system rollout status deployment/ai-storage-orchestrator --timeout "$timeout"
ip="$(kubectl "${kubectl_args[@]}" -n kube-system get service ai-storage-orchestrator -o jsonpath='{.spec.clusterIP}')"
echo "orchestrator: http://${ip}:8080 (in-cluster: http://ai-storage-orchestrator.kube-system.svc:8080)"
