"""cgroup v1 housekeeping for the real-node tier: create a cgroup in every mounted hierarchy, and remove one with
whatever still runs in it."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from tests.cluster.local_cluster import ClusterError

CGROUP_V1 = Path("/sys/fs/cgroup")


def cgroup_hierarchies() -> list[Path]:
    """The mounted cgroup v1 hierarchies (cpu, cpuacct, memory, …, and the named systemd one)."""
    if (CGROUP_V1 / "cgroup.controllers").exists():
        raise ClusterError("this host has a unified cgroup v2 layout; the node tier is written for cgroup v1")
    return sorted(p for p in CGROUP_V1.iterdir() if p.is_dir() and p.name != "unified" and not p.is_symlink())


def make_cgroup(name: str) -> None:
    for hierarchy in cgroup_hierarchies():
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            # A new cpuset cgroup starts with no CPUs and no memory nodes: inherit the parent's.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (path / knob).write_text((hierarchy / knob).read_text())


def _cgroup_dirs(name: str) -> list[Path]:
    """Every directory of cgroup `name` in every hierarchy, deepest first."""
    found: list[Path] = []
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / name
        if top.is_dir():
            found.extend(sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True))
            found.append(top)
    return found


def _pids_in(name: str) -> set[int]:
    pids: set[int] = set()
    for directory in _cgroup_dirs(name):
        with contextlib.suppress(OSError):
            pids.update(int(line) for line in (directory / "cgroup.procs").read_text().split())
    return pids


def remove_cgroup(name: str, *, timeout: float = 30.0) -> None:
    """Kill every process left in cgroup `name` (shims and containers escape their parents' process groups, not
    their cgroups), then remove its directories bottom-up."""
    deadline = time.monotonic() + timeout
    while pids := _pids_in(name):
        if time.monotonic() > deadline:
            raise ClusterError(f"processes {sorted(pids)} survive in cgroup {name}")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)  # the kernel empties cgroup.procs once the killed processes are reaped
    for directory in _cgroup_dirs(name):
        while directory.exists():
            try:
                directory.rmdir()
            except OSError as error:
                if time.monotonic() > deadline:
                    raise ClusterError(f"cannot remove cgroup {directory}: {error}") from error
                time.sleep(0.1)  # a cgroup whose last task just exited is busy for a moment


def leftover_cgroups(prefix: str) -> list[str]:
    """Node cgroups of an earlier run that was killed before it could tear down."""
    names = {p.name for h in cgroup_hierarchies() for p in h.iterdir() if p.name.startswith(prefix)}
    return sorted(names)
