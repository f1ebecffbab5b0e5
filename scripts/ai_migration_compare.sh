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
Exit codes: 0 the CPU saving meets --threshold, 1 it does not, 2 error, 130 interrupted.

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

for arg in "$@"; do
  case "$arg" in
    -h | --help)
      usage
      exec "${cli[@]}" compare --help
      ;;
  esac
done

exec "${cli[@]}" compare "$@"
