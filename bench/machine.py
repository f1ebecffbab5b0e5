"""The machine a benchmark ran on: cores, memory, CPU model, Python, kernel, control-plane build."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _nproc() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count()  # None when unknown, not 0


def describe(binaries: Path | None = None) -> dict[str, Any]:
    return {
        "nproc": _nproc(),
        "memory_gib": _memory_gib(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "control_plane_build": binaries.name if binaries else None,
    }


def one_line(machine: dict[str, Any]) -> str:
    cpus = "CPUs not measured" if machine.get("nproc") is None else f"{machine['nproc']} CPUs"
    memory = "RAM not measured" if machine.get("memory_gib") is None else f"{machine['memory_gib']} GiB RAM"
    return (
        f"{cpus} ({machine.get('cpu_model')}), {memory}, Python {machine.get('python')}, Linux {machine.get('kernel')}"
        + (f", control plane {machine['control_plane_build']}" if machine.get("control_plane_build") else "")
    )
