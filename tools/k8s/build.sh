#!/usr/bin/env bash
# Builds the local test control plane (kube-apiserver, kube-controller-manager, etcd, kwok) from the Go module
# proxy into a version-keyed cache outside the work tree, so every clone (and CI) reuses it.
#
#   tools/k8s/build.sh            build whatever is missing, print the bin directory
#   tools/k8s/build.sh --print    only print the bin directory (no build)
#
# Environment: AISO_CACHE_DIR (default ~/.cache/ai-storage-orchestrator).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/k8s/versions.env
source "$here/versions.env"
# shellcheck source=tools/k8s/stamps.sh
source "$here/stamps.sh"

cache="${AISO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-storage-orchestrator}"
bin="$cache/bin/k8s-${KUBERNETES_VERSION}-kwok-${KWOK_VERSION}"
work="$cache/build"

if [[ "${1:-}" == "--print" ]]; then
  echo "$bin"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$bin" "$work"
log() { echo "[k8s-build] $*" >&2; }

staging_version="v0${KUBERNETES_VERSION#v1}" # v1.37.2 -> v0.37.2

gomod_path() { # module@version -> path of its downloaded go.mod
  (cd "$work" && go mod download -json "$1" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
}

build_kubernetes() {
  local dir="$work/kubernetes-${KUBERNETES_VERSION}"
  mkdir -p "$dir"
  local upstream
  upstream="$(gomod_path "k8s.io/kubernetes@${KUBERNETES_VERSION}")"
  {
    echo "module aiso.local/kubernetes-build"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes ${KUBERNETES_VERSION}"
    echo
    # Every staging module k8s.io/kubernetes requires at v0.0.0 maps to the matching published v0.X.Y.
    awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// { print "replace " $1 " => " $1 " '"$staging_version"'" }' "$upstream"
  } >"$dir/go.mod"
  local targets=()
  is_current "$bin/kube-apiserver" || targets+=(kube-apiserver)
  is_current "$bin/kube-controller-manager" || targets+=(kube-controller-manager)
  for t in "${targets[@]}"; do
    log "building $t ${KUBERNETES_VERSION}"
    (cd "$dir" && go build -trimpath -ldflags="-s -w $(version_ldflags)" -o "$bin/$t.tmp" "k8s.io/kubernetes/cmd/$t")
    mv "$bin/$t.tmp" "$bin/$t"
  done
}

build_etcd() {
  [[ -x "$bin/etcd" ]] && return
  local apiserver_mod etcd_version dir
  apiserver_mod="$(gomod_path "k8s.io/apiserver@${staging_version}")"
  etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$apiserver_mod")"
  dir="$work/etcd-${etcd_version}"
  mkdir -p "$dir"
  printf 'module aiso.local/etcd-build\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$etcd_version" >"$dir/go.mod"
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >"$dir/main.go"
  log "building etcd ${etcd_version}"
  (cd "$dir" && go build -trimpath -ldflags="-s -w" -o "$bin/etcd.tmp" .)
  mv "$bin/etcd.tmp" "$bin/etcd"
}

build_kwok() {
  [[ -x "$bin/kwok" ]] && return
  log "building kwok ${KWOK_VERSION}"
  GOBIN="$work/kwok-${KWOK_VERSION}" GOFLAGS='' go install -trimpath -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  mv "$work/kwok-${KWOK_VERSION}/kwok" "$bin/kwok"
}

build_etcd
build_kwok
build_kubernetes
echo "$bin"
