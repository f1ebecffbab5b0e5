"""Faults inside a combined ``sh`` script: the local fake exec runs it for real, so a fault is a tool on PATH that
stands in for the real one (``rm``, ``mkdir``, ``tar``, ``mv``, ``wc``, ``find``...) and fails, or does something
more, then hands over to the real one."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import pytest


class Shims:
    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        directory.mkdir()
        self.directory = directory
        self.count = 0
        monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")

    def _write(self, tool: str, body: str) -> None:
        real = shutil.which(tool, path=os.environ["PATH"].split(os.pathsep, 1)[1])
        assert real is not None, tool
        path = self.directory / tool
        script = f'#!/bin/sh\nfor last do :; done\n{body}\nexec REAL "$@"\n'
        path.write_text(script.replace("REAL", shlex.quote(real)))
        path.chmod(0o755)

    def fail_once(self, tool: str, stderr: str = "disk error", *, code: int = 1, when: str = "true") -> None:
        """``tool`` fails (``stderr``, exit ``code``) the first time shell condition ``when`` holds (``$last`` is its
        last argument); it is the real one otherwise -- the clean-up after the failure too."""
        self.count += 1
        flag = shlex.quote(str(self.directory / f"{tool}.{self.count}.failed"))
        self._write(
            tool,
            f"if [ ! -e {flag} ] && {when}; then\n"
            f"  : > {flag}\n  printf '%s\\n' {shlex.quote(stderr)} >&2\n  exit {code}\nfi",
        )

    def after(self, tool: str, then: str) -> None:
        """``tool`` runs, then shell commands ``then`` (``$last`` is its last argument)."""
        self._write(tool, f'REAL "$@" || exit\n{then}\nexit 0')
