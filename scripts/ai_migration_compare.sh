#!/usr/bin/env bash
# The certification comparison (see ../shared/docs/certification-test.md): Kubernetes' native delete-and-recreate
# against the orchestrator's migration of the same workload, CPU and memory measured the same way.
# A thin wrapper: every argument goes to `ai-storage-orchestrator compare` unchanged, and so does its exit code.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/ai_migration_compare.sh [COMPARE OPTIONS]

Runs `ai-storage-orchestrator compare` with the given options, for example
  scripts/ai_migration_compare.sh --source-node worker-1 --target-node worker-2 \
    --orchestrator-url http://127.0.0.1:8080 --pvc training-data --output-dir results

The command is $AISO_CLI if set (split at spaces), else `ai-storage-orchestrator` on PATH, else the
repository's .venv, else `${PYTHON:-python3} -m ai_storage_orchestrator.cli`.
Exit codes: 0 the CPU saving meets --threshold, 1 it does not, 2 error (also: the CLI cannot be run, e.g. it is not
installed), 130 interrupted.

The options of `ai-storage-orchestrator compare`:

USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "${AISO_CLI:-}" ]]; then
  read -r -a cli <<<"$AISO_CLI"
elif command -v ai-storage-orchestrator >/dev/null 2>&1; then
  cli=(ai-storage-orchestrator)
elif [[ -x "$root/.venv/bin/ai-storage-orchestrator" ]]; then
  cli=("$root/.venv/bin/ai-storage-orchestrator")
else
  cli=("${PYTHON:-python3}" -m ai_storage_orchestrator.cli)
fi

# A CLI that cannot run must not exit 1, which means "below the threshold": it is an error (2) that says how to install.
install="install it: python3.11 -m pip install $root/dist/ai_storage_orchestrator-*.whl (scripts/build.sh"
install+=" --wheel-only builds the wheel; Python >= 3.11), or \`make venv\` and put $root/.venv/bin on PATH (or set"
install+=" AISO_CLI)"
cannot_run() {
  echo "scripts/ai_migration_compare.sh: cannot run ai-storage-orchestrator: $1; $install" >&2
  exit 2
}

# The interpreter of a console script pip wrote (`#!/path/to/python3.11`), if it is one.
python_of() {
  local first
  IFS= read -r first <"$1" || return 1
  [[ "$first" =~ ^\#!([^[:space:]]*/python[0-9.]*)[[:space:]]*$ && -x "${BASH_REMATCH[1]}" ]] || return 1
  printf '%s\n' "${BASH_REMATCH[1]}"
}

# Python runs the command through this rather than `-m ai_storage_orchestrator.cli` or the console script (which do
# the same, and exit 1 when the import fails): an import that fails (not installed, a dependency missing, a Python too
# old) exits 2 with the hint. Like the console script, it does not import from the current directory. Kept to what
# every Python compiles.
bootstrap='import sys
hint = sys.argv.pop(1)
if sys.path and sys.path[0] == "":
    del sys.path[0]
try:
    from ai_storage_orchestrator.cli import main
except Exception as error:
    sys.stderr.write(
        "scripts/ai_migration_compare.sh: cannot run ai-storage-orchestrator: %s (Python %s) cannot import"
        " ai_storage_orchestrator.cli: %s: %s; %s\n"
        % (sys.executable, sys.version.split()[0], type(error).__name__, error, hint)
    )
    sys.exit(2)
sys.argv[0] = "ai-storage-orchestrator"
sys.exit(main(["compare"] + sys.argv[1:]))'

python=""
if [[ ${#cli[@]} -eq 3 && "${cli[1]}" == -m && "${cli[2]}" == ai_storage_orchestrator.cli ]]; then
  python="${cli[0]}"
elif [[ ${#cli[@]} -eq 1 ]] && path="$(command -v "${cli[0]}")" && [[ -f "$path" ]]; then
  python="$(python_of "$path")" || python=""
fi
command -v "${python:-${cli[0]}}" >/dev/null 2>&1 || cannot_run "${python:-${cli[0]}} was not found"

compare() {
  if [[ -n "$python" ]]; then
    exec "$python" -c "$bootstrap" "$install" "$@"
  fi
  exec "${cli[@]}" compare "$@"
}

for arg in "$@"; do
  case "$arg" in
    -h | --help)
      usage
      compare --help
      ;;
  esac
done

compare "$@"
