#!/usr/bin/env bash
# Runs an OCI image-layout archive's own process, without a container engine: unpacks its layers in order (from the
# manifest the index names), then runs ENTRYPOINT + ARGS in a chroot as the image's USER, with exactly the image's Env
# and WorkingDir, /proc and the host's /dev mounted in a private mount namespace. Checks what a container start would
# need from the archive itself (not from the tree it was packed from).
#
#   tools/image/check-image.sh ARCHIVE [ARGS...] [-- ARGS...]...    default ARGS: --help
#
# Each `--` starts another run of the entry point in the same unpacked tree. Exit code: the first failing run's. Needs root (chroot, mounts). Environment: PYTHON (default python3), TMPDIR.
set -euo pipefail

[[ $# -ge 1 ]] || {
  echo "usage: tools/image/check-image.sh ARCHIVE [ARGS...]" >&2
  exit 2
}
archive="$(realpath "$1")"
shift
[[ $# -gt 0 ]] || set -- --help
python="${PYTHON:-python3}"
[[ $(id -u) -eq 0 ]] || {
  echo "check-image: needs root (chroot)" >&2
  exit 1
}

scratch="$(mktemp -d "${TMPDIR:-/tmp}/check-image.XXXXXX")"
trap 'rm -rf --one-file-system "$scratch"' EXIT
mkdir "$scratch/oci" "$scratch/rootfs"
tar -xf "$archive" -C "$scratch/oci"
# One line per item: layer blob paths, then user, workdir, Env entries and Entrypoint elements (NUL-free JSON strings).
mapfile -t plan < <("$python" - "$scratch/oci" <<'EOF'
import json, pathlib, sys

oci = pathlib.Path(sys.argv[1])
blob = lambda digest: oci / "blobs" / digest.replace(":", "/", 1)
[entry] = json.loads((oci / "index.json").read_text())["manifests"]
manifest = json.loads(blob(entry["digest"]).read_text())
config = json.loads(blob(manifest["config"]["digest"]).read_text())["config"]
for layer in manifest["layers"]:
    print("layer", blob(layer["digest"]))
print("user", config.get("User", "0:0") or "0:0")
print("workdir", config.get("WorkingDir") or "/")
for variable in config.get("Env", []):
    print("env", variable)
for item in config.get("Entrypoint") or []:
    print("entrypoint", item)
EOF
)
env=() entrypoint=() user="" workdir=""
for line in "${plan[@]}"; do
  case "${line%% *}" in
    layer) tar -xzpf "${line#* }" --numeric-owner -C "$scratch/rootfs" ;;
    user) user="${line#* }" ;;
    workdir) workdir="${line#* }" ;;
    env) env+=("${line#* }") ;;
    entrypoint) entrypoint+=("${line#* }") ;;
  esac
done
[[ ${#entrypoint[@]} -gt 0 ]] || {
  echo "check-image: the image has no Entrypoint" >&2
  exit 1
}
[[ "$user" == *:* ]] || user="$user:$user"

run() { # ARGS...: the entry point with ARGS, as the image's user, with its Env, in its WorkingDir
  # shellcheck disable=SC2016 # the inner shell's positional parameters
  unshare --mount --propagation private -- /bin/sh -ec '
    root="$1" user="$2" workdir="$3"
    shift 3
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    exec chroot --userspec="$user" "$root" /bin/sh -c "cd \"\$0\" && exec /usr/bin/env -i \"\$@\"" "$workdir" "$@"
  ' check-image "$scratch/rootfs" "$user" "$workdir" "${env[@]}" "${entrypoint[@]}" "$@"
}

group=()
for argument in "$@"; do
  if [[ "$argument" == -- ]]; then
    run "${group[@]}"
    group=()
  else
    group+=("$argument")
  fi
done
run "${group[@]}"
