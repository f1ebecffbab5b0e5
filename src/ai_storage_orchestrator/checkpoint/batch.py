"""The checkpoint's plain file operations on the volume, several in one exec: one ``sh`` script, fixed text, whose
only inputs are its positional arguments (paths) and its stdin (the manifest's tar archive) -- no string from the pod,
the annotations or the volume is ever part of the script's text.

Each exec into the source pod is a round-trip through the API server and the kubelet (≈ 80 ms on real nodes), so
the steps that are only file operations run in one script rather than one exec each:

* ``reset``: ``rm -rf <dir>``, then ``mkdir -p`` of ``<dir>/artifacts`` and of each artifact's parent in the store;
* ``manifest``: ``tar -x`` of ``manifest.json.tmp`` from stdin into ``<dir>``, ``mv -f`` it to ``manifest.json``,
  re-read its size and sha256 (printed), then -- only when retention runs -- list the workload's checkpoints:
  ``ls -1t <root>``, and when that succeeded ``find <root> -mindepth 2 -maxdepth 2 -type f -name manifest.json``.

Before each step the script writes a marker on stdout -- a NUL byte (which no file name and no tool output here
holds), the step's name, a newline -- and a failing step ends the script with that tool's own exit status and its
own stderr. So the last marker names the step that failed, ``status`` and ``stderr`` are that tool's, and each step's
stdout is what follows its marker: the caller reports a failure exactly as it would for that command run alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ai_storage_orchestrator.checkpoint.transport import CommandResult, ExecStatus

GUARD = "guard"
RESET = "reset"
EXTRACT = "extract"
RENAME = "rename"
VERIFY = "verify"
LIST = "list"
FOUND = "found"


def mkdir_step(index: int) -> str:
    return f"mkdir {index}"


# `real BASE PATH`: fails, naming it, when a directory between BASE (the volume's mount point) and PATH is a symbolic
# link. The shared volume may be written by other namespaces' pods: a link planted in the checkpoint's path would
# send the reset, the writes and retention's `rm -rf` to wherever it points inside the writer's container.
# `writable PATH`: makes the directories under PATH that their owner cannot write writable again, so that a non-root
# writer's `rm -rf` can remove a checkpoint holding a read-only directory (an artifact copied with its 0555 mode);
# `find` does not follow links, nor does it take PATH itself for a directory when PATH is a link.
SHELL_FUNCTIONS = """real() {
  p=$1 rest=${2#"$1"}
  while [ -n "$rest" ]; do
    rest=${rest#/}
    c=${rest%%/*}
    rest=${rest#"$c"}
    p=$p/$c
    if [ -n "$c" ] && [ -L "$p" ]; then
      echo "$p is a symbolic link: the checkpoint's path must be real directories" >&2
      return 40
    fi
  done
}
writable() {
  find "$1" -type d ! -perm -200 -exec chmod u+w {} \\; 2>/dev/null
  return 0
}
"""

# argv: checkpoint RESET WRITE BASE DIR TMP MANIFEST ROOT NAME [MKDIR...]
# RESET, WRITE: "1" to run that part; BASE: the volume's mount point in this container ("" unknown: from /);
# ROOT: "" for no listing; NAME: the manifest's file name (for find).
SCRIPT = (
    SHELL_FUNCTIONS
    + """step() { printf '\\0%s\\n' "$1"; }
reset=$1 write=$2 base=$3 dir=$4 tmp=$5 manifest=$6 root=$7 name=$8
shift 8
step guard
real "$base" "$dir" || exit
if [ "$reset" = 1 ]; then
  step reset
  writable "$dir"
  rm -rf "$dir" || exit
  i=0
  for target do
    step "mkdir $i"
    mkdir -p "$target" || exit
    i=$((i + 1))
  done
fi
if [ "$write" = 1 ]; then
  step extract
  tar -x -f - -C "$dir" || exit
  step rename
  mv -f "$tmp" "$manifest" || exit
  step verify
  size=$(wc -c < "$manifest") || exit
  sum=$(sha256sum < "$manifest") || exit
  printf '%s %s\\n' $size "${sum%% *}"
  if [ -n "$root" ]; then
    step list
    if ls -1t "$root"; then
      step found
      find "$root" -mindepth 2 -maxdepth 2 -type f -name "$name" || exit
    fi
  fi
fi
exit 0
"""
)


# argv: remove BASE PATH...: each PATH checked as above, then all removed.
REMOVE_SCRIPT = (
    SHELL_FUNCTIONS
    + """base=$1
shift
for target do
  real "$base" "$(dirname -- "$target")" || exit
done
for target do
  writable "$target"
done
rm -rf -- "$@"
"""
)


def remove_argv(*, base: str, paths: Sequence[str]) -> list[str]:
    """``rm -rf`` of ``paths``, refused when a directory above one of them (below ``base``) is a symbolic link."""
    return ["sh", "-c", REMOVE_SCRIPT, "remove", base.rstrip("/"), *paths]


def argv(
    *,
    base: str,
    directory: str,
    mkdirs: Sequence[str] | None,
    manifest: tuple[str, str] | None,
    root: str | None,
    name: str,
) -> list[str]:
    """The script's argv: first check that nothing between ``base`` and ``directory`` is a symbolic link, then reset
    with ``mkdirs`` (None: no reset), write ``manifest`` = (tmp, final) (None: no write), list ``root`` after the
    write (None: no listing)."""
    tmp, final = manifest or ("", "")
    return [
        "sh",
        "-c",
        SCRIPT,
        "checkpoint",
        "1" if mkdirs is not None else "0",
        "1" if manifest is not None else "0",
        base.rstrip("/"),
        directory,
        tmp,
        final,
        root or "",
        name,
        *(mkdirs or ()),
    ]


@dataclass(frozen=True, slots=True)
class Steps:
    """A script's result read by step: which steps started, in order, with what each wrote on stdout."""

    result: CommandResult
    started: tuple[tuple[str, bytes], ...]

    @classmethod
    def read(cls, result: CommandResult) -> Steps:
        started = []
        for segment in result.stdout.split(b"\0")[1:]:
            name, _, output = segment.partition(b"\n")
            started.append((name.decode(errors="replace"), output))
        return cls(result, tuple(started))

    @property
    def failed(self) -> str | None:
        """The step that failed (the last one started), None when the script succeeded or never started one."""
        if self.result.success or not self.started:
            return None
        return self.started[-1][0]

    def ran(self, step: str) -> bool:
        return any(name == step for name, _ in self.started)

    def output(self, step: str) -> bytes:
        return next((output for name, output in self.started if name == step), b"")

    def alone(self, step: str) -> CommandResult:
        """``step``'s result as if it had been run by itself: the script's status and stderr, the step's stdout."""
        result = self.result
        return CommandResult(result.status, self.output(step), result.stderr, result.stderr, result.stderr_truncated)

    @property
    def status(self) -> ExecStatus:
        return self.result.status
