# Shared by tools/nodes/images.sh and tools/image/rootfs-image.sh (sourced): root filesystem chores.
# shellcheck shell=bash

# remove_tree DIR: a possibly half-built root filesystem: detach anything still mounted inside it, then delete it.
remove_tree() {
  [[ -e "$1" ]] || return 0
  local dir mounts=() mount
  dir="$(realpath "$1")"
  mapfile -t mounts < <(awk -v dir="$dir" '$5 == dir || index($5, dir "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r)
  for mount in "${mounts[@]}"; do
    umount -l "$mount"
  done
  rm -rf --one-file-system "$dir"
}

# rehash_pycs ROOTFS: Debian's pyc files record their source's mtime, and the packer sets every mtime to 0, which would
# make them all stale (each container start would recompile). Rewrite exactly the existing ones as checked-hash pycs,
# valid whatever the mtime.
rehash_pycs() {
  chroot "$1" python3 -B - <<'EOF'
import importlib.util, pathlib, py_compile, sys

count = 0
for pyc in pathlib.Path("/usr").rglob(f"__pycache__/*.{sys.implementation.cache_tag}.pyc"):
    source = importlib.util.source_from_cache(str(pyc))
    if pathlib.Path(source).is_file():
        py_compile.compile(source, cfile=str(pyc), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        count += 1
print(f"{count} pyc files rewritten as checked-hash", file=sys.stderr)
EOF
}
