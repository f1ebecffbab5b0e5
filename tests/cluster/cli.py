"""`python -m tests.cluster.cli up|down|env`: the local control plane for a person (scripts/local-cluster.sh)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from tests.cluster.local_cluster import LocalCluster
from tests.cluster.processes import kill_group

DEFAULT_STATE_DIR = Path(
    os.environ.get("AISO_CLUSTER_DIR", Path.home() / ".cache" / "ai-storage-orchestrator" / "local-cluster")
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # another session's process: no child handle to wait on


def up(state_dir: Path, nodes: int) -> int:
    if (state_dir / "cluster.json").exists():
        print(f"a local cluster is already recorded in {state_dir}; run 'down' first", file=sys.stderr)
        return 1
    shutil.rmtree(state_dir, ignore_errors=True)
    cluster = LocalCluster(state_dir, node_names=[f"sim-node-{i}" for i in range(nodes)], detach=True)
    cluster.start()
    state_file = cluster.write_state()
    print(f"control plane up: {cluster.server}")
    print(f"nodes: {', '.join(cluster.node_names)}")
    print(f"kubeconfig: {cluster.kubeconfig}")
    print(f"state: {state_file}")
    print(f"try: kubectl --kubeconfig {cluster.kubeconfig} get nodes")
    return 0


def down(state_dir: Path) -> int:
    state_file = state_dir / "cluster.json"
    if not state_file.exists():
        print(f"no local cluster recorded in {state_dir}")
        return 0
    pids = json.loads(state_file.read_text()).get("pids", {})
    for name, pid in reversed(list(pids.items())):
        if pid and _alive(pid):
            kill_group(pid)
            _wait_gone(pid)
            print(f"stopped {name} (pid {pid})")
    shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def env(state_dir: Path) -> int:
    state_file = state_dir / "cluster.json"
    if not state_file.exists():
        print("no local cluster is up", file=sys.stderr)
        return 1
    state = json.loads(state_file.read_text())
    print(f"export KUBECONFIG={state['kubeconfig']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local-cluster")
    parser.add_argument("command", choices=["up", "down", "env"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_STATE_DIR, help="state directory (default %(default)s)")
    parser.add_argument("--nodes", type=int, default=2, help="simulated worker nodes (default %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.dir, args.nodes)
    if args.command == "down":
        return down(args.dir)
    return env(args.dir)


if __name__ == "__main__":
    sys.exit(main())
