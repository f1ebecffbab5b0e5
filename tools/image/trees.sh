# Shared by tools/nodes/images.sh and tools/image/rootfs-image.sh (sourced).
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
