#!/usr/bin/env bash
# Build the orchestrator: a wheel in dist/, and a container image with whichever of docker, buildah or podman
# exists (none: the wheel only, and a clear note). Optionally import the image into containerd.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/build.sh [--image NAME:TAG] [--import-containerd [--namespace k8s.io]] [--wheel-only]

  --image NAME:TAG        image reference (default ai-storage-orchestrator:<version>)
  --import-containerd     also import the image into the local containerd (ctr -n NAMESPACE images import)
  --namespace NS          containerd namespace for the import (default k8s.io)
  --wheel-only            build only the wheel
  -h, --help              this help
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
version="$(sed -n 's/^version = //p' setup.cfg)"
image="ai-storage-orchestrator:${version}"
import_containerd=false
ctr_namespace="k8s.io"
wheel_only=false

while [[ $# -gt 0 ]]; do
  case "$1" in
    --image) image="$2"; shift 2 ;;
    --import-containerd) import_containerd=true; shift ;;
    --namespace) ctr_namespace="$2"; shift 2 ;;
    --wheel-only) wheel_only=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

python="${PYTHON:-python3}"
"$python" -m pip wheel --quiet --no-deps --wheel-dir dist .
echo "wheel: $(ls -1 dist/ai_storage_orchestrator-"${version}"-*.whl)"
if [[ "$wheel_only" == true ]]; then
  exit 0
fi

builder=""
for candidate in docker buildah podman; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then
    builder="$candidate"
    break
  fi
done
if [[ -z "$builder" ]]; then
  echo "no working container builder (docker, buildah or podman with a running engine): built the wheel only" >&2
  exit 1
fi

case "$builder" in
  buildah) buildah bud --tag "$image" . ;;
  *) "$builder" build --tag "$image" . ;;
esac
echo "image: $image (built with $builder)"

if [[ "$import_containerd" == true ]]; then
  archive="$(mktemp --suffix=.tar)"
  trap 'rm -f "$archive"' EXIT
  "$builder" save --output "$archive" "$image"
  ctr --namespace "$ctr_namespace" images import "$archive"
  echo "imported $image into containerd namespace $ctr_namespace"
fi
