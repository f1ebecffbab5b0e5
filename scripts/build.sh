#!/usr/bin/env bash
# Build the orchestrator: a wheel in dist/, and its container image -- with docker, buildah or podman when one of them
# works (the Dockerfile), otherwise without any container engine (tools/image/rootfs-image.sh: a Debian bookworm root
# filesystem with the same locked dependencies and runtime configuration, written as an OCI image-layout archive
# dist/NAME-TAG.oci.tar). Optionally import the image into one or more containerd instances.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/build.sh [--image NAME:TAG] [--builder auto|engine|rootfs] [--wheel-only]
                        [--import-containerd] [--containerd-address SOCKET]... [--namespace k8s.io]

  --image NAME:TAG            image reference (default ai-storage-orchestrator:<version>)
  --builder auto|engine|rootfs
                              engine: docker, buildah or podman (the Dockerfile); rootfs: no engine, an OCI archive
                              in dist/ (root, debootstrap; the Debian layer is cached in AISO_CACHE_DIR, default
                              ~/.cache/ai-storage-orchestrator); auto (default): engine when one works, else rootfs
  --import-containerd         import the image into the local containerd (ctr -n NAMESPACE images import)
  --containerd-address SOCKET import into the containerd listening on SOCKET instead (repeat for several: e.g. the
                              two nodes of `make e2e`, <workdir>/node-N/containerd/containerd.sock)
  --namespace NS              containerd namespace for the import (default k8s.io)
  --wheel-only                build only the wheel
  -h, --help                  this help

Environment: PYTHON (default python3), CTR (default: ctr on PATH, else the one tools/nodes/build.sh built),
AISO_CACHE_DIR, AISO_DEBIAN_MIRROR.
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
version="$(sed -n 's/^version = //p' setup.cfg)"
image="ai-storage-orchestrator:${version}"
builder_choice=auto
import_containerd=false
addresses=()
ctr_namespace="k8s.io"
wheel_only=false

while [[ $# -gt 0 ]]; do
  case "$1" in
    --image) image="$2"; shift 2 ;;
    --builder) builder_choice="$2"; shift 2 ;;
    --import-containerd) import_containerd=true; shift ;;
    --containerd-address) addresses+=("$2"); import_containerd=true; shift 2 ;;
    --namespace) ctr_namespace="$2"; shift 2 ;;
    --wheel-only) wheel_only=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$builder_choice" in
  auto | engine | rootfs) ;;
  *) echo "unknown builder: $builder_choice (auto, engine or rootfs)" >&2; exit 2 ;;
esac

step() { printf '  %-9s %s\n' "$1" "$2"; }
finished=false
trap '[[ "$finished" == true ]] || echo "✗ Build failed" >&2' EXIT
start=$SECONDS

echo "Building AI Storage Orchestrator..."

python="${PYTHON:-python3}"
wheel="dist/ai_storage_orchestrator-${version}-py3-none-any.whl"
rm -f "$wheel"
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir dist .
[[ -f "$wheel" ]] || { echo "pip wheel wrote no $wheel" >&2; exit 1; }
step wheel "$wheel ($((SECONDS - start)) s)"

if [[ "$wheel_only" == false ]]; then
  builder=""
  if [[ "$builder_choice" != rootfs ]]; then
    for candidate in docker buildah podman; do
      if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then
        builder="$candidate"
        break
      fi
    done
  fi
  if [[ -z "$builder" && "$builder_choice" == engine ]]; then
    echo "no working container builder (docker, buildah or podman with a running engine)" >&2
    exit 1
  fi

  archive=""
  if [[ -n "$builder" ]]; then
    step builder "$builder (Dockerfile)"
    case "$builder" in
      buildah) buildah bud --quiet --tag "$image" . >/dev/null ;;
      *) "$builder" build --quiet --tag "$image" . >/dev/null ;;
    esac
    step image "$image (built with $builder)"
  else
    why="no docker, buildah or podman with a running engine"
    [[ "$builder_choice" != rootfs ]] || why="--builder rootfs"
    step builder "rootfs: Debian bookworm root filesystem, OCI archive ($why)"
    name="${image##*/}"
    archive="dist/${name//:/-}.oci.tar"
    tools/image/rootfs-image.sh --wheel "$wheel" --name "$image" --archive "$archive" --report "$archive.txt"
    step archive "$archive (report: $archive.txt)"
    check_start=$SECONDS
    tools/image/check-image.sh "$archive" --help -- serve --help >/dev/null
    step check "ai-storage-orchestrator --help, serve --help: run from the unpacked archive as its user ($((
      SECONDS - check_start)) s)"
  fi

  if [[ "$import_containerd" == true ]]; then
    ctr="${CTR:-}"
    if [[ -z "$ctr" ]]; then
      if command -v ctr >/dev/null 2>&1; then
        ctr=ctr
      else
        ctr="$(tools/nodes/build.sh --print)/ctr"
        [[ -x "$ctr" ]] || { echo "no ctr on PATH nor in $(dirname "$ctr") (set CTR)" >&2; exit 1; }
      fi
    fi
    if [[ -z "$archive" ]]; then # an engine's image: saved to a temporary archive first
      archive="$(mktemp --suffix=.tar)"
      trap 'rm -f "$archive"; [[ "$finished" == true ]] || echo "✗ Build failed" >&2' EXIT
      "$builder" save --output "$archive" "$image"
    fi
    [[ ${#addresses[@]} -gt 0 ]] || addresses=("")
    for address in "${addresses[@]}"; do
      # ctr's output (and containerd v2's cgroup v1 deprecation warning) only when the import fails
      if ! output="$("$ctr" ${address:+--address "$address"} --namespace "$ctr_namespace" images import \
        "$archive" 2>&1)"; then
        echo "$output" >&2
        exit 1
      fi
      step import "$image into containerd ${address:-(default address)}, namespace $ctr_namespace"
    done
  fi
fi

finished=true
echo "✓ Build completed successfully"
