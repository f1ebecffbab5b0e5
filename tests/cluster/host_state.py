"""Host settings the real-node tier changes without owning them: kernel settings a kubelet or the CNI bridge plugin
writes at start, and the iptables chains a kubelet installs (KUBE-FIREWALL, KUBE-KUBELET-CANARY, …). Taken before
the tier starts, put back after it stops, and compared so a run fails when something was not put back."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SYSCTLS = (
    # the kubelet (protectKernelDefaults off)
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    # the CNI bridge plugin with isGateway
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
)
IPTABLES = ("iptables", "ip6tables")


def _sysctls() -> dict[Path, str]:
    paths = (Path("/proc/sys") / name for name in SYSCTLS)
    return {path: path.read_text() for path in paths if path.exists()}


def _rules(command: str) -> str:
    if shutil.which(f"{command}-save") is None:
        return ""
    return normalize(subprocess.run([f"{command}-save"], capture_output=True, text=True, check=True).stdout)


def normalize(saved: str) -> str:
    """An `iptables-save` output without its comments and counters, and without tables that hold nothing (only
    built-in chains with policy ACCEPT and no rule), so an emptied table compares equal to one never created."""
    kept: list[str] = []
    table: list[str] = []
    for line in saved.splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("*"):
            table = [line]
        elif line == "COMMIT":
            holds_something = any(not (entry.startswith(":") and entry.split()[1] == "ACCEPT") for entry in table[1:])
            if holds_something:
                kept.extend([*table, line])
        else:
            table.append(line.split(" [")[0] if line.startswith(":") else line)
    return "\n".join(kept)


def _tables(command: str) -> list[str]:
    saved = subprocess.run([f"{command}-save"], capture_output=True, text=True, check=True).stdout
    return [line[1:] for line in saved.splitlines() if line.startswith("*")]


@dataclass
class HostSnapshot:
    sysctls: dict[Path, str] = field(default_factory=_sysctls)
    rules: dict[str, str] = field(default_factory=lambda: {command: _rules(command) for command in IPTABLES})

    def restore(self) -> list[str]:
        """Put everything back; returns what could not be."""
        errors = []
        for path, value in self.sysctls.items():
            try:
                path.write_text(value)
            except OSError as error:
                errors.append(f"cannot restore {path}: {error}")
        for command, before in self.rules.items():
            if shutil.which(command) is None or _rules(command) == before:
                continue
            # Empty every table, then load what was there before (nothing, on a machine that had no rules).
            for table in _tables(command):
                for flag in ("-F", "-X"):
                    subprocess.run([command, "-t", table, flag], capture_output=True, check=False)
            if before:
                done = subprocess.run(
                    [f"{command}-restore"], input=before + "\n", capture_output=True, text=True, check=False
                )
                if done.returncode != 0:
                    errors.append(f"{command}-restore: {done.stderr.strip()}")
        return errors

    def differences(self) -> list[str]:
        """What differs from the snapshot now."""
        found = [f"sysctl {path}" for path, value in self.sysctls.items() if path.read_text() != value]
        found += [f"{command} rules" for command, before in self.rules.items() if _rules(command) != before]
        return found
