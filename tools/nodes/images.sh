#!/usr/bin/env bash
# Builds the container images of the real-node tier as OCI image archives, without any registry, into a
# version-keyed cache next to the binaries:
#
#   pause-3.10.oci.tar            aiso.local/pause:3.10           static tools/nodes/pause.c at /pause, the sandbox
#   numpy-workload-1.oci.tar      aiso.local/numpy-workload:1     Debian bookworm minbase + python3 + python3-numpy
#
#   tools/nodes/images.sh               build whatever is missing, print the images directory
#   tools/nodes/images.sh --tensorflow  also tensorflow-workload-2.13.oci.tar (aiso.local/tensorflow-workload:2.13:
#                                       the numpy image plus tensorflow-cpu 2.13.1 from PyPI, ≈ 1.5 GB unpacked)
#   tools/nodes/images.sh --print       only print the images directory (no build)
#
# A node loads them with `ctr -n k8s.io images import "$(tools/nodes/images.sh --print)/pause-3.10.oci.tar"`.
# Bump PAUSE_VERSION / WORKLOAD_VERSION when pause.c or the workload's contents change: an existing archive is
# never rebuilt. The workload needs root (debootstrap, chroot) and the Debian mirror; packing uses the system python3
# (tools/image/oci_image.py is stdlib-only, so no virtual environment is needed).
#
# Environment: AISO_CACHE_DIR (default ~/.cache/ai-storage-orchestrator), AISO_DEBIAN_MIRROR (default
# http://deb.debian.org/debian).
set -euo pipefail

PAUSE_VERSION=3.10
WORKLOAD_VERSION=1
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${AISO_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TENSORFLOW_TAG=2.13
TENSORFLOW_PACKAGE=tensorflow-cpu==2.13.1 # the newest 2.13 release; its wheels cover Debian bookworm's Python 3.11
WORKLOAD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${AISO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-storage-orchestrator}"
[[ "$cache" == /* ]] || cache="$PWD/$cache" # absolute, whatever directory a step runs in
images="$cache/images"
work="$cache/build/images"

if [[ "${1:-}" == "--print" ]]; then
  echo "$images"
  exit 0
fi

log() { echo "[nodes-images] $*" >&2; }
mkdir -p "$images" "$work"
# One build at a time; what an interrupted build left behind (packer scratch, unfinished archives) goes.
exec 9>"$images/.lock"
flock 9
rm -rf "$images"/.oci-* "$images"/*.tmp

pack() { # ROOTFS ARCHIVE NAME [packer options...]: write ARCHIVE.tmp, move it into place once complete
  local rootfs="$1" archive="$2" name="$3" digest start=$SECONDS
  shift 3
  log "packing $name"
  digest="$(python3 "$repo/tools/image/oci_image.py" "$rootfs" "$archive.tmp" --name "$name" "$@")"
  mv "$archive.tmp" "$archive"
  log "$name $digest ($(du -h "$archive" | cut -f1), $((SECONDS - start)) s)"
}

# shellcheck source=tools/image/trees.sh
source "$here/../image/trees.sh"

build_pause() {
  local archive="$images/pause-${PAUSE_VERSION}.oci.tar" dir="$work/pause-${PAUSE_VERSION}"
  [[ -f "$archive" ]] && return
  rm -rf "$dir"
  mkdir -p "$dir/rootfs"
  log "compiling pause"
  gcc -static -Os -s -Wall -Wextra -Werror -o "$dir/rootfs/pause" "$here/pause.c"
  chmod 0755 "$dir/rootfs/pause"
  pack "$dir/rootfs" "$archive" "aiso.local/pause:${PAUSE_VERSION}" --cmd /pause
  rm -rf "$dir"
}


build_workload_rootfs() { # ROOTFS: debootstrap once; a rootfs without its .done stamp is a failed attempt
  local rootfs="$1" start=$SECONDS
  [[ -f "$rootfs.done" ]] && return
  if [[ $(id -u) -ne 0 ]]; then
    log "the workload image needs root (debootstrap, chroot)"
    exit 1
  fi
  command -v debootstrap >/dev/null || "$here/install-deps.sh"
  remove_tree "$rootfs"
  log "debootstrap $DEBIAN_SUITE (minbase + python3, python3-numpy) from $DEBIAN_MIRROR, log in $rootfs.log"
  if ! debootstrap --variant=minbase --include=python3,python3-numpy "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" \
    >"$rootfs.log" 2>&1; then
    tail -n 20 "$rootfs.log" >&2
    remove_tree "$rootfs"
    log "debootstrap failed (full log: $rootfs.log)"
    exit 1
  fi
  log "debootstrap done in $((SECONDS - start)) s"
  # No package caches or indexes in the image (apt recreates them on `apt-get update`), and none of the host's
  # resolv.conf and hostname that debootstrap copied: the runtime mounts the pod's own over those paths.
  rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
  mkdir -p "$rootfs/var/lib/apt/lists/partial"
  rehash_pycs "$rootfs"
  # -B: checking must not leave mtime-based pycs behind.
  if ! chroot "$rootfs" /bin/sh -c 'cat /etc/debian_version >/dev/null && date >/dev/null' ||
    ! chroot "$rootfs" python3 -B -c 'import numpy; numpy.arange(4).sum()'; then
    log "the workload root filesystem lacks sh, cat, date or an importable numpy"
    exit 1
  fi
  touch "$rootfs.done"
}

build_workload() {
  local archive="$images/numpy-workload-${WORKLOAD_VERSION}.oci.tar" rootfs="$work/numpy-workload-${WORKLOAD_VERSION}"
  [[ -f "$archive" ]] && return
  build_workload_rootfs "$rootfs"
  pack "$rootfs" "$archive" "aiso.local/numpy-workload:${WORKLOAD_VERSION}" --cmd python3 \
    --env "PATH=$WORKLOAD_PATH" --env PYTHONUNBUFFERED=1
}

build_tensorflow() { # the numpy root filesystem plus TensorFlow's wheels, compiled to checked-hash pycs in place
  local archive="$images/tensorflow-workload-${TENSORFLOW_TAG}.oci.tar" rootfs="$work/tensorflow-workload-${TENSORFLOW_TAG}"
  local base="$work/numpy-workload-${WORKLOAD_VERSION}" site=/usr/local/lib/python3.11/dist-packages
  [[ -f "$archive" ]] && return
  build_workload_rootfs "$base"
  remove_tree "$rootfs"
  cp -a "$base" "$rootfs"
  log "pip: $TENSORFLOW_PACKAGE and its dependencies into the image (manylinux wheels for CPython 3.11)"
  python3 -m pip install --quiet --no-cache-dir --no-compile --target "$rootfs$site" --implementation cp \
    --python-version 3.11 --platform manylinux2014_x86_64 --only-binary=:all: "$TENSORFLOW_PACKAGE"
  chroot "$rootfs" python3 -m compileall -q -j 0 --invalidation-mode checked-hash "$site" >/dev/null
  # TensorFlow reads /proc/self/exe at import: check it in a mount namespace of its own, with /proc mounted.
  # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
  if ! unshare --mount --fork sh -c 'mount -t proc proc "$1/proc" && exec chroot "$1" python3 -B -c "$2"' check \
    "$rootfs" 'import tensorflow as tf; assert float(tf.constant(1.0) + 1) == 2.0'; then
    log "TensorFlow does not import in the image"
    exit 1
  fi
  pack "$rootfs" "$archive" "aiso.local/tensorflow-workload:${TENSORFLOW_TAG}" --cmd python3 \
    --env "PATH=$WORKLOAD_PATH" --env PYTHONUNBUFFERED=1 --env TF_CPP_MIN_LOG_LEVEL=1
  remove_tree "$rootfs"
}

build_pause
build_workload
if [[ "${1:-}" == "--tensorflow" ]]; then
  build_tensorflow
fi
echo "$images"
