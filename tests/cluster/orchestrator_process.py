"""The orchestrator as a separate process (`ai-storage-orchestrator serve`), for tests that kill it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.cluster.processes import ManagedProcess, free_port


class OrchestratorProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        kubeconfig: Path,
        namespace: str,
        env: dict[str, str] | None = None,
        election: list[str] | None = None,
    ) -> None:
        """`election`: leader-election flags (e.g. --lease-name=…); without them the process leads alone."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.process = ManagedProcess(
            f"orchestrator-{self.port}",
            [
                sys.executable, "-m", "ai_storage_orchestrator.cli", "serve",
                f"--kubeconfig={kubeconfig}", "--host=127.0.0.1", f"--port={self.port}",
                f"--namespace={namespace}", "--log-format=json",
                *(["--leader-election", *election] if election else ["--no-leader-election"]),
            ],
            workdir,
        )  # fmt: skip

    async def start(self, timeout: float = 60.0) -> None:
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            self.process.start()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        await self.wait_for(self._ready, timeout=timeout, what="orchestrator ready")

    async def _ready(self) -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(f"{self.url}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.process.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    async def wait_for_log_event(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        async def seen() -> bool:
            found[:] = [e for e in self.log_events() if e.get("event") == event]
            return bool(found)

        await self.wait_for(seen, timeout=timeout, what=f"log event {event}")
        return found[0]

    async def wait_for(self, check: Any, *, timeout: float, what: str) -> None:
        """Poll an out-of-process condition (a child's HTTP endpoint or log file) until a deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.running():
                raise RuntimeError(f"orchestrator exited while waiting for {what}:\n{self.process.log_tail()}")
            if await check():
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{what} not reached within {timeout}s:\n{self.process.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a node or OOM kill."""
        assert self.process.process is not None
        self.process.process.kill()
        self.process.process.wait()
        self.process.process = None

    def stop(self) -> None:
        if self.process.process is not None:
            self.process.process.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
        self.process.stop()

    def resume(self) -> None:
        assert self.process.process is not None
        self.process.process.send_signal(signal.SIGCONT)
