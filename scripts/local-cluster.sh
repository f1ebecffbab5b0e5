#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 with simulated (KWOK) worker nodes.
#
#   scripts/local-cluster.sh up [--nodes N]   start etcd, kube-apiserver, kube-controller-manager, kwok; print kubeconfig
#   scripts/local-cluster.sh env              print 'export KUBECONFIG=…'
#   scripts/local-cluster.sh down             stop every process it started and remove its state
#
# The binaries are built from the Go module proxy on first use (tools/k8s/build.sh, ~10 min cold).
# State lives in $AISO_CLUSTER_DIR (default ~/.cache/ai-storage-orchestrator/local-cluster).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

case "${1:-}" in
  -h | --help | "")
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac

if [[ "$1" == "up" ]]; then
  make --no-print-directory venv cluster-bin >&2
fi
AISO_K8S_BIN="$(tools/k8s/build.sh --print)"
export AISO_K8S_BIN
exec .venv/bin/python -m tests.cluster.cli "$@"
