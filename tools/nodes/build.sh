#!/usr/bin/env bash
# Builds the binaries of the real-node tier from the Go module proxy into the same version-keyed cache as the control
# plane: kubelet (k8s.io/kubernetes, cgo on), kube-scheduler, kubectl (the same module, the client scripts/deploy.sh
# needs) and containerd v2 with its runc shim and ctr. Adding a binary keeps the directory's key: what is already built stays.
#
#   tools/nodes/build.sh            build whatever is missing, print the bin directory
#   tools/nodes/build.sh --print    only print the bin directory (no build)
#
# Environment: AISO_CACHE_DIR (default ~/.cache/ai-storage-orchestrator).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/k8s/versions.env
source "$here/../k8s/versions.env"
# shellcheck source=tools/k8s/stamps.sh
source "$here/../k8s/stamps.sh"
# shellcheck source=tools/nodes/versions.env
source "$here/versions.env"

cache="${AISO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-storage-orchestrator}"
bin="$cache/bin/nodes-${KUBERNETES_VERSION}-containerd-${CONTAINERD_VERSION}"
work="$cache/build"

if [[ "${1:-}" == "--print" ]]; then
  echo "$bin"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod
mkdir -p "$bin" "$work"
log() { echo "[nodes-build] $*" >&2; }

build_kubelet() {
  is_current "$bin/kubelet" && return
  # The control-plane build prepares the module that pins k8s.io/kubernetes and its staging modules.
  "$here/../k8s/build.sh" >/dev/null
  log "building kubelet ${KUBERNETES_VERSION} (cgo)"
  (cd "$work/kubernetes-${KUBERNETES_VERSION}" &&
    CGO_ENABLED=1 go build -trimpath -ldflags="-s -w $(version_ldflags)" -o "$bin/kubelet.tmp" k8s.io/kubernetes/cmd/kubelet)
  mv "$bin/kubelet.tmp" "$bin/kubelet"
}

# kubectl has no --version: `kubectl version --client` says which release it is.
kubectl_is_current() {
  # Not `| grep -q`: grep quits at the match, kubectl dies of SIGPIPE on its next line, and pipefail says "stale".
  [[ -x "$1" ]] && [[ "$("$1" version --client 2>/dev/null)" == *"Client Version: ${KUBERNETES_VERSION}"* ]]
}

build_kubectl() {
  kubectl_is_current "$bin/kubectl" && return
  "$here/../k8s/build.sh" >/dev/null
  log "building kubectl ${KUBERNETES_VERSION}"
  (cd "$work/kubernetes-${KUBERNETES_VERSION}" &&
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w $(version_ldflags)" -o "$bin/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl)
  mv "$bin/kubectl.tmp" "$bin/kubectl"
}

build_containerd() {
  local dir="$work/containerd-${CONTAINERD_VERSION}" cmd
  mkdir -p "$dir"
  for cmd in containerd containerd-shim-runc-v2 ctr; do
    [[ -x "$bin/$cmd" ]] && continue
    log "building $cmd ${CONTAINERD_VERSION}"
    # btrfs needs cgo and its headers; the tier uses the overlayfs snapshotter.
    GOBIN="$dir" CGO_ENABLED=0 GOFLAGS='' go install -trimpath -tags "no_btrfs no_devmapper" \
      -ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}" \
      "github.com/containerd/containerd/v2/cmd/$cmd@${CONTAINERD_VERSION}"
    mv "$dir/$cmd" "$bin/$cmd"
  done
}

# A Deployment's pods need a scheduler: the certification deploys the orchestrator as one (tests/cluster/certification.py).
build_scheduler() {
  is_current "$bin/kube-scheduler" && return
  "$here/../k8s/build.sh" >/dev/null
  log "building kube-scheduler ${KUBERNETES_VERSION}"
  (cd "$work/kubernetes-${KUBERNETES_VERSION}" &&
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w $(version_ldflags)" -o "$bin/kube-scheduler.tmp" \
      k8s.io/kubernetes/cmd/kube-scheduler)
  mv "$bin/kube-scheduler.tmp" "$bin/kube-scheduler"
}

build_kubelet
build_kubectl
build_scheduler
build_containerd
echo "$bin"
