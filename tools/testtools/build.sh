#!/usr/bin/env bash
# Builds the test tools (helm, promtool) from the Go module proxy into a version-keyed cache outside the work tree.
#
#   tools/testtools/build.sh            build whatever is missing, print the bin directory
#   tools/testtools/build.sh --print    only print the bin directory (no build)
#
# Environment: AISO_CACHE_DIR (default ~/.cache/ai-storage-orchestrator).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/testtools/versions.env
source "$here/versions.env"

cache="${AISO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-storage-orchestrator}"
bin="$cache/bin/testtools-helm-${HELM_VERSION}-prometheus-${PROMETHEUS_VERSION}"

if [[ "${1:-}" == "--print" ]]; then
  echo "$bin"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$bin" "$cache/build"
log() { echo "[testtools-build] $*" >&2; }
# One file per tool; each defines build_<tool>, which builds into "$bin" only what is missing.
for tool in helm promtool; do
  if [[ -f "$here/$tool.sh" ]]; then
    # shellcheck source=/dev/null
    source "$here/$tool.sh"
    "build_$tool"
  fi
done
echo "$bin"
