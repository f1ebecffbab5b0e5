"""The checksum lists of a checkpoint and the ``sh`` function that checks files against one (pure).

A list holds ``sha256sum`` lines (``<sha256>  <name>``) for the regular files of one artifact, names relative to the
artifact's parent directory. The same ``check`` function runs at save time (in the artifact's store on the volume) and
in the restore init container (in the artifact's parent on the target), so a restore checks exactly what the save
verified. Tools: ``sh``, ``sha256sum``.
"""

from __future__ import annotations


def checksum_line(sha256: str, name: str) -> bytes:
    """One ``sha256sum`` line; a name holding a backslash or newline is escaped the way GNU coreutils does."""
    raw = name.encode("utf-8", "surrogateescape")
    if b"\\" not in raw and b"\n" not in raw:
        return sha256.encode() + b"  " + raw + b"\n"
    return b"\\" + sha256.encode() + b"  " + raw.replace(b"\\", b"\\\\").replace(b"\n", b"\\n") + b"\n"


# check DIR LIST: the files LIST names (relative to DIR) have the sha256 it gives; on the first difference a sentence
# on stderr and status 1. sha256sum -c does the work; when it fails, the loop checks each file itself to say which
# differs -- and passes when none does (busybox's sha256sum -c does not read GNU's escaped names).
CHECK_FUNCTION = """check() {
  if [ ! -f "$2" ]; then
    echo "$0: the checksum list $2 is missing" >&2
    return 1
  fi
  if [ ! -s "$2" ] || (cd "$1" && sha256sum -c "$2") >/dev/null 2>&1; then
    return 0
  fi
  while IFS= read -r line; do
    escaped=
    case $line in
      \\\\*) line=${line#?} escaped=1 ;;
    esac
    want=${line%%  *}
    name=${line#*  }
    if [ -n "$escaped" ]; then
      name=$(printf '%b.' "$name")
      name=${name%.}
    fi
    if [ ! -f "$1/$name" ]; then
      echo "$0: $1/$name is missing (the checkpoint manifest lists it with sha256 $want)" >&2
      return 1
    fi
    got=$(sha256sum < "$1/$name")
    got=${got%% *}
    if [ "$got" != "$want" ]; then
      echo "$0: $1/$name has sha256 $got, the checkpoint manifest says $want" >&2
      return 1
    fi
  done < "$2"
}
"""
VERIFY_LIST_SCRIPT = "set -eu\n" + CHECK_FUNCTION + 'check "$1" "$2"\n'  # argv: verify-list DIR LIST
