"""`ai-storage-orchestrator serve` as a child process of the bench, optionally under cProfile, with its readiness
time, memory (VmRSS / VmHWM) and CPU time read from /proc."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.clock import epoch
from bench.cluster import poll_until
from tests.cluster.processes import ManagedProcess, free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (None when it is gone: not measured, not 0)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_ticks() -> dict[str, int]:
    """Clock ticks the whole machine spent busy, idle and stolen by the hypervisor (first line of /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = values
    return {"busy": user + nice + system + irq + softirq, "idle": idle + iowait, "steal": steal}


class CpuMeter:
    """CPU seconds each named process (and this one, "bench") used between construction and `used()`, and how the
    whole machine spent the same window: busy, idle, stolen, and busy time none of those processes account for.
    A process gone before either reading is None (not measured), and then so is the unattributed time."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = {**pids, "bench": os.getpid()}
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.machine_before = machine_ticks()

    def used(self) -> dict[str, float | None]:
        used: dict[str, float | None] = {}
        for name, pid in self.pids.items():
            now, before = cpu_seconds(pid), self.before[name]
            used[name] = None if now is None or before is None else round(now - before, 2)
        ticks = machine_ticks()
        machine = {key: (ticks[key] - self.machine_before[key]) / CLOCK_TICKS for key in ticks}
        used["machine_busy"] = round(machine["busy"], 2)
        used["machine_idle"] = round(machine["idle"], 2)
        used["machine_steal"] = round(machine["steal"], 2)
        processes = [used[name] for name in self.pids]
        used["unattributed"] = (
            None if None in processes else round(machine["busy"] - sum(v for v in processes if v is not None), 2)
        )
        return used


class OrchestratorChild:
    def __init__(
        self,
        workdir: Path,
        *,
        kubeconfig: Path,
        name: str,
        extra_args: Sequence[str] = (),
        profile_to: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.profile_to = profile_to
        profiler = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
        self.argv = [
            sys.executable, *profiler, "-m", "ai_storage_orchestrator.cli", "serve",
            f"--kubeconfig={kubeconfig}", "--host=127.0.0.1", f"--port={self.port}",
            "--install-crd", "--no-leader-election", "--log-format=json", *extra_args,
        ]  # fmt: skip
        self.process = ManagedProcess(name, self.argv, workdir)
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    @property
    def command(self) -> str:
        """The serve command line, without this run's temporary kubeconfig path and port."""
        text = "ai-storage-orchestrator " + " ".join(self.argv).split(" -m ai_storage_orchestrator.cli ", 1)[-1]
        text = re.sub(r"--kubeconfig=\S+", "--kubeconfig=<kubeconfig>", text)
        return re.sub(r"--port=\d+", "--port=<free port>", text)

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.process.start()

    async def wait_ready(self, timeout: float = 300.0) -> float:
        """Seconds from process start to the first 200 of /readyz (polled every 50 ms)."""
        ready_at = 0.0

        async def ready() -> bool:
            nonlocal ready_at
            if not self.process.running():
                raise RuntimeError(f"orchestrator exited during start-up:\n{self.process.log_tail()}")
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
                    http.get(f"{self.url}/readyz") as response,
                ):
                    ready_at = time.monotonic()
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        if not await poll_until(ready, timeout=timeout, interval=0.05):
            raise TimeoutError(f"orchestrator not ready within {timeout}s:\n{self.process.log_tail()}")
        return ready_at - self.started_at

    def memory_mib(self) -> dict[str, float]:
        """Resident set now (VmRSS) and its peak so far (VmHWM), MiB."""
        found: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = round(int(value.split()[0]) / 1024, 1)
        return {"rss_mib": found["VmRSS"], "hwm_mib": found["VmHWM"]}

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid)

    def log_events(self, event: str) -> list[dict[str, Any]]:
        found = []
        with self.process.log_path.open(errors="replace") as log:
            for line in log:
                if line.startswith("{") and f'"{event}"' in line:
                    try:
                        parsed = json.loads(line)
                    except ValueError:
                        continue
                    if parsed.get("event") == event:
                        found.append(parsed)
        return found

    def stop(self) -> None:
        """SIGTERM (a clean shutdown: the profiler writes its file), SIGKILL after 60 s."""
        self.process.stop(timeout=60.0)


def log_time(event: dict[str, Any]) -> float:
    """The wall-clock time (time.time()) of a JSON log line's ISO time stamp."""
    return epoch(str(event["timestamp"]))
