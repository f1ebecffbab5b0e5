#!/usr/bin/env bash
# The orchestrator's container image without a container engine (scripts/build.sh uses it when no docker, buildah or
# podman works): an OCI image-layout archive of three layers, packed by tools/image/oci_image.py.
#
#   base  Debian bookworm minbase + python3 (3.11) + python3-venv, by debootstrap       cached, key BASE_VERSION
#         (slim: no manuals, info pages, translations, docs but the copyright files)
#   deps  user and group 10001 'orchestrator' (as the Dockerfile makes them); the virtual cached, key DEPS_VERSION
#         environment /opt/ai-storage-orchestrator with exactly the files of            + requirements.lock's
#         requirements.lock (pip --require-hashes --only-binary=:all: --no-deps)        sha256
#   app   the project's wheel in that environment (--no-index --no-deps), then pip check  every build
#
# A layer above the base is what its step changed: the upper directory of an overlay mount over the layers below, the
# step run in a chroot, every mount in a private mount namespace that goes with it. Deleting a file of a lower layer
# is refused (the packer does not write whiteouts). Python files are compiled to checked-hash pycs: the packer fixes
# every mtime, which would make timestamp pycs stale. The runtime configuration (ENTRYPOINT, CMD, ENV, USER, WORKDIR,
# EXPOSE) is the Dockerfile final stage's (tools/image/dockerfile_config.py), with PATH (the environment's bin first)
# and LANG=C.UTF-8 as python:3.11-slim has them.
#
#   tools/image/rootfs-image.sh --wheel WHEEL --name NAME:TAG --archive ARCHIVE [--report FILE]
#
# Prints one line per step on stdout; the report (default ARCHIVE.txt) records the manifest digest, each layer's
# digest, the Debian release the base came from (its InRelease Date and sha256) and every package version in it.
# Bump BASE_VERSION or DEPS_VERSION when what their step does changes: a cached layer is never rebuilt otherwise.
#
# Needs root (debootstrap, mount, chroot) and debootstrap; the first build needs the Debian mirror and PyPI.
# Environment: AISO_CACHE_DIR (default ~/.cache/ai-storage-orchestrator), AISO_DEBIAN_MIRROR (default
# http://deb.debian.org/debian; a snapshot.debian.org URL pins the base to a date), PYTHON (the python3 that runs pip
# download and the packer; default python3).
set -euo pipefail

BASE_VERSION=1
DEPS_VERSION=1
DEBIAN_SUITE=bookworm
BASE_PACKAGES=python3,python3-venv
VENV=/opt/ai-storage-orchestrator
IMAGE_UID=10001
IMAGE_ENV=("PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "LANG=C.UTF-8")
DEBIAN_MIRROR="${AISO_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
cache="${AISO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-storage-orchestrator}"
[[ "$cache" == /* ]] || cache="$PWD/$cache"
store="$cache/image/orchestrator"

wheel="" name="" archive="" report=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheel) wheel="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --archive) archive="$2"; shift 2 ;;
    --report) report="$2"; shift 2 ;;
    *) echo "rootfs-image: unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ -z "$wheel" || -z "$name" || -z "$archive" ]]; then
  echo "usage: tools/image/rootfs-image.sh --wheel WHEEL --name NAME:TAG --archive ARCHIVE [--report FILE]" >&2
  exit 2
fi
report="${report:-$archive.txt}"

step() { printf '  %-9s %s\n' "$1" "$2"; }
fail() {
  echo "rootfs-image: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || fail "needs root (debootstrap, overlay mounts, chroot)"
command -v debootstrap >/dev/null || fail "needs debootstrap (apt-get install debootstrap)"
[[ -f "$wheel" ]] || fail "no wheel $wheel"
[[ "$name" =~ ^[^@]+:[^:/@]+$ ]] || fail "image name '$name' needs the form [registry/]repository:tag"

mirror_key=""
[[ "$DEBIAN_MIRROR" == "http://deb.debian.org/debian" ]] || mirror_key="-$(printf %s "$DEBIAN_MIRROR" | sha256sum | cut -c1-8)"
base="$store/base-debian-${DEBIAN_SUITE}${mirror_key}-v${BASE_VERSION}"
deps="$store/deps-v${DEPS_VERSION}-$(sha256sum <"$repo/requirements.lock" | cut -c1-16)-on-$(basename "$base")"
mkdir -p "$store"
# One build at a time; the scratch of an interrupted one goes.
exec 9>"$store/.lock"
flock 9
rm -rf "$store"/app.*

# shellcheck source=tools/image/trees.sh
source "$here/trees.sh"

# in_overlay DIR LOWERS MNT SCRIPT: SCRIPT (sh -e, root, in a chroot) on an overlay of DIR/upper over LOWERS (colon
# list, top first), with MNT read-only at /mnt, /proc, the host's /dev and a tmpfs /tmp (none of them in the layer).
in_overlay() {
  local dir="$1" lowers="$2" mnt="$3" script="$4"
  mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
  # shellcheck disable=SC2016 # the inner shell's positional parameters
  unshare --mount --propagation private -- /bin/sh -ec '
    mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/work" "$2/merged"
    mount -t proc proc "$2/merged/proc"
    mount --rbind /dev "$2/merged/dev"
    mount -t tmpfs tmpfs "$2/merged/tmp"
    mount --bind -o ro "$3" "$2/merged/mnt"
    exec chroot "$2/merged" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
      PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -ec "$4"
  ' in_overlay "$lowers" "$dir" "$mnt" "$script" >>"$dir/step.log" 2>&1 || {
    tail -n 30 "$dir/step.log" >&2
    fail "step failed in $dir (log: $dir/step.log)"
  }
  rm -rf "$dir/work"
  rmdir "$dir/merged"
  # Overlay whiteouts (character devices 0/0) and opaque or redirected directories: deletions the packer cannot carry.
  "$python" - "$dir/upper" <<'EOF' || fail "the step in $dir deleted or renamed files of a lower layer"
import os, stat, sys

bad = []
for top, dirs, files in os.walk(sys.argv[1]):
    for name in dirs + files:
        path = os.path.join(top, name)
        if stat.S_ISCHR(os.lstat(path).st_mode):
            bad.append(path)
        elif name in dirs and {"trusted.overlay.opaque", "trusted.overlay.redirect"} & set(
            os.listxattr(path, follow_symlinks=False)
        ):
            bad.append(path)
if bad:
    sys.exit("\n".join(bad))
EOF
}

pack_layer() { # TREE LAYER: LAYER (gzip) and LAYER.txt ("digest diff_id")
  "$python" "$here/oci_image.py" --layer-only "$1" "$2.tmp" >"$2.txt.tmp"
  mv "$2.tmp" "$2"
  mv "$2.txt.tmp" "$2.txt"
}


build_base() {
  local rootfs="$base/rootfs" start=$SECONDS release
  if [[ -f "$base/.done" ]]; then
    step base "$(basename "$base"): cached, layer $(cut -d' ' -f1 "$base/layer.tar.gz.txt")"
    return
  fi
  remove_tree "$base"
  mkdir -p "$base"
  step base "debootstrap $DEBIAN_SUITE minbase + ${BASE_PACKAGES//,/, } from $DEBIAN_MIRROR (log: $base/debootstrap.log)"
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" \
    >"$base/debootstrap.log" 2>&1; then
    tail -n 20 "$base/debootstrap.log" >&2
    remove_tree "$rootfs"
    fail "debootstrap failed (log: $base/debootstrap.log)"
  fi
  # What the base is made of: the signed release file it was installed from, and every package version.
  release="$(find "$rootfs/var/lib/apt/lists" -maxdepth 1 -name "*_dists_${DEBIAN_SUITE}_InRelease" -o \
    -maxdepth 1 -name "*_dists_${DEBIAN_SUITE}_Release" | sort | head -n 1)"
  [[ -n "$release" ]] || fail "debootstrap left no Release file in $rootfs/var/lib/apt/lists"
  # shellcheck disable=SC2016 # dpkg-query's format, not the shell's
  {
    echo "suite: $DEBIAN_SUITE (debootstrap --variant=minbase --include=$BASE_PACKAGES)"
    echo "mirror: $DEBIAN_MIRROR"
    echo "release file: $(basename "$release") sha256:$(sha256sum "$release" | cut -d' ' -f1)"
    echo "release $(grep -m1 '^Date:' "$release")"
    echo "debootstrap: $(dpkg-query -W -f '${Version}' debootstrap 2>/dev/null || echo unknown)"
  } >"$base/debian.txt"
  # shellcheck disable=SC2016 # dpkg-query's format, not the shell's
  chroot "$rootfs" dpkg-query -W -f '${Package}=${Version}\n' >"$base/packages.txt"
  # No package caches or indexes in the image, none of the host's resolv.conf and hostname debootstrap copied.
  rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
  mkdir -p "$rootfs/var/lib/apt/lists/partial"
  # As Debian's slim images: no manuals, info pages, translations, nor documentation other than the copyright files,
  # now and for a package installed later (dpkg's path-exclude).
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$rootfs/usr/share/man" "$rootfs/usr/share/info" -mindepth 1 -delete
  find "$rootfs/usr/share/locale" -mindepth 1 ! -type d ! -name locale.alias -delete
  find "$rootfs/usr/share/locale" -mindepth 1 -type d -empty -delete
  rehash_pycs "$rootfs" 2>>"$base/debootstrap.log"
  chroot "$rootfs" python3 -B -c 'import sys, venv; assert sys.version_info[:2] == (3, 11), sys.version' ||
    fail "the base has no Python 3.11 with venv"
  ls "$rootfs"/usr/share/python-wheels/pip-*.whl >/dev/null || fail "the base has no pip wheel (python3-venv)"
  pack_layer "$rootfs" "$base/layer.tar.gz"
  touch "$base/.done"
  step base "$(basename "$base"): layer $(cut -d' ' -f1 "$base/layer.tar.gz.txt") ($(du -h "$base/layer.tar.gz" |
    cut -f1), $((SECONDS - start)) s)"
}

pip_in_image() { # the pip of Debian's python3-pip-whl, run from its wheel: pip itself never enters the image
  local whl
  whl="$(cd "$base/rootfs" && ls usr/share/python-wheels/pip-*.whl)"
  echo "$VENV/bin/python /$whl/pip"
}

build_deps() {
  local start=$SECONDS platforms=() version pip
  if [[ -f "$deps/.done" ]]; then
    step deps "requirements.lock: cached, layer $(cut -d' ' -f1 "$deps/layer.tar.gz.txt")"
    return
  fi
  remove_tree "$deps"
  mkdir -p "$deps/wheels"
  cp "$repo/requirements.lock" "$deps/wheels/requirements.lock"
  # The wheels pip picks for the image (CPython 3.11, manylinux x86_64, glibc 2.36), as requirements.lock says.
  for version in $(seq 36 -1 5); do platforms+=(--platform "manylinux_2_${version}_x86_64"); done
  step deps "pip download: requirements.lock (--require-hashes --only-binary=:all: --no-deps)"
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes --only-binary=:all: \
    "${platforms[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --python-version 3.11 \
    --implementation cp --abi cp311 --dest "$deps/wheels" -r "$repo/requirements.lock" >"$deps/download.log" 2>&1 ||
    {
      tail -n 20 "$deps/download.log" >&2
      fail "pip download failed (log: $deps/download.log)"
    }
  pip="$(pip_in_image)"
  in_overlay "$deps" "$base/rootfs" "$deps/wheels" "
    groupadd --gid $IMAGE_UID orchestrator
    useradd --uid $IMAGE_UID --gid $IMAGE_UID --no-create-home orchestrator
    python3 -m venv --without-pip $VENV
    $pip install --no-cache-dir --no-index --find-links /mnt --require-hashes --only-binary=:all: --no-deps \
      --no-compile -r /mnt/requirements.lock
    $VENV/bin/python -m compileall -q -j 0 --invalidation-mode checked-hash $VENV/lib >/dev/null
  "
  pack_layer "$deps/upper" "$deps/layer.tar.gz"
  rm -rf "$deps/wheels"
  touch "$deps/.done"
  step deps "requirements.lock: layer $(cut -d' ' -f1 "$deps/layer.tar.gz.txt") ($(du -h "$deps/layer.tar.gz" |
    cut -f1), $((SECONDS - start)) s)"
}

build_image() {
  local start=$SECONDS app pip config=() digest
  app="$(mktemp -d "$store/app.XXXXXX")"
  mkdir "$app/wheels"
  cp "$wheel" "$app/wheels/"
  pip="$(pip_in_image)"
  in_overlay "$app" "$deps/upper:$base/rootfs" "$app/wheels" "
    $pip install --no-cache-dir --no-index --no-deps --no-compile /mnt/$(basename "$wheel")
    $pip check
    $VENV/bin/python -m compileall -q --invalidation-mode checked-hash \
      $VENV/lib/python3.11/site-packages/ai_storage_orchestrator >/dev/null
    test -x $VENV/bin/ai-storage-orchestrator
  "
  step app "$(basename "$wheel") installed, pip check: no broken requirements"
  mapfile -t config < <("$python" "$here/dockerfile_config.py" "$repo/Dockerfile")
  [[ ${#config[@]} -gt 0 ]] || fail "no runtime configuration read from the Dockerfile"
  mkdir -p "$(dirname "$archive")"
  digest="$("$python" "$here/oci_image.py" "$app/upper" "$archive.tmp" --name "$name" \
    --base-layer "$base/layer.tar.gz" --base-layer "$deps/layer.tar.gz" \
    "${IMAGE_ENV[@]/#/--env=}" "${config[@]}")"
  mv "$archive.tmp" "$archive"
  remove_tree "$app"
  write_report "$digest"
  step image "$name $digest ($(du -h "$archive" | cut -f1), $((SECONDS - start)) s)"
}

top_layer() { # MANIFEST_DIGEST: the archive's top layer, as its manifest lists it
  tar -xOf "$archive" "blobs/sha256/${1#sha256:}" | "$python" -c 'import json, sys
print(json.load(sys.stdin)["layers"][-1]["digest"], "(diff_id: last of the config)")'
}

write_report() { # DIGEST
  {
    echo "image: $name"
    echo "manifest: $1"
    echo "archive: $(basename "$archive") $(stat -c %s "$archive") bytes sha256:$(sha256sum "$archive" | cut -d' ' -f1)"
    echo "built by: tools/image/rootfs-image.sh (no container engine), runtime configuration from the Dockerfile"
    echo
    echo "layers (bottom first; digest of the gzip blob, then diff_id):"
    echo "  base $(cat "$base/layer.tar.gz.txt")  $(basename "$base")"
    echo "  deps $(cat "$deps/layer.tar.gz.txt")  requirements.lock sha256:$(sha256sum "$repo/requirements.lock" |
      cut -d' ' -f1)"
    echo "  app  $(top_layer "$1")  $(basename "$wheel") sha256:$(sha256sum "$wheel" | cut -d' ' -f1)"
    echo
    echo "Debian base:"
    sed 's/^/  /' "$base/debian.txt"
    echo "  to rebuild it from the same archive state: AISO_DEBIAN_MIRROR=https://snapshot.debian.org/archive/debian/"
    echo "  <timestamp of the snapshot whose dists/$DEBIAN_SUITE/InRelease has the sha256 above>"
    echo
    echo "Debian packages in the base ($(wc -l <"$base/packages.txt")):"
    sed 's/^/  /' "$base/packages.txt"
  } >"$report"
}

build_base
build_deps
build_image
