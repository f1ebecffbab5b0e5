"""Child processes of the local control plane: started in their own process group, killed with it, and tied to
the lifetime of the process that started them (PR_SET_PDEATHSIG) so nothing outlives an interrupted test run."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """`preexec_fn` of a child that must not outlive this process: its own session, SIGKILL when we die."""
    os.setsid()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ManagedProcess:
    """One control-plane binary with its log file."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, *, detach: bool = False) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self.detach = detach
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # A detached process (local-cluster.sh up) must outlive the script that started it.
                preexec_fn=os.setsid if self.detach else die_with_parent,
            )
        finally:
            log.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        kill_group(self.process.pid, timeout=timeout, wait=self.process.wait)
        self.process = None


def kill_group(pid: int, *, timeout: float = 10.0, wait: object = None) -> None:
    """SIGTERM the process group of `pid`, then SIGKILL whatever is left after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if callable(wait):
        with contextlib.suppress(subprocess.TimeoutExpired):
            wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if callable(wait):
        with contextlib.suppress(subprocess.TimeoutExpired):
            wait(timeout=timeout)


def child_pids() -> list[int]:
    """Living (not zombie) direct children of this process."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces, so split after the closing parenthesis.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == me:
            found.append(int(entry.name))
    return found


async def run_command(
    argv: list[str], *, env: Mapping[str, str] | None = None, timeout: float = 100.0
) -> tuple[int, str, str]:
    """Run `argv` with no stdin to its end: (exit status, stdout, stderr); killed and TimeoutError after `timeout`."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=None if env is None else dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
