#!/bin/sh
# The kubelet's --experimental-mounter-path on the real-node tier (tests/cluster/real_nodes.py). The kubelet calls
# it only for network file systems, as `nfs-mounter.sh mount -t nfs [-o OPTIONS] SERVER:/PATH TARGET`. This kernel
# has no NFS client, so the export is a directory both nodes see: $AISO_NFS_EXPORTS/PATH, bind-mounted on TARGET.
# Anything else goes to the real mount(8) unchanged.
set -eu
[ "${1:-}" = "mount" ] && shift
fstype="" previous="" source="" target=""
for arg in "$@"; do
  [ "$previous" = "-t" ] && fstype="$arg"
  source="$target"
  target="$arg"
  previous="$arg"
done
case "$fstype" in
  nfs | nfs4) ;;
  *) exec mount "$@" ;;
esac
export_path="${source#*:}"
exported="${AISO_NFS_EXPORTS:?AISO_NFS_EXPORTS is not set}/${export_path#/}"
if [ ! -d "$exported" ]; then
  echo "nfs-mounter: export $source does not exist (no directory $exported)" >&2
  exit 32
fi
exec mount --bind "$exported" "$target"
