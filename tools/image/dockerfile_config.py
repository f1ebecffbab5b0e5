"""The runtime configuration of the Dockerfile's final stage, as options of tools/image/oci_image.py: the image
scripts/build.sh writes without a container engine runs exactly the process the Dockerfile's image runs.

    python3 tools/image/dockerfile_config.py Dockerfile      # one option a line: --entrypoint=…, --cmd=…, --env=…

Read: ENV, USER, EXPOSE, WORKDIR, ENTRYPOINT and CMD (exec form, JSON arrays) of the stage after the last FROM.
Instructions that would add configuration the packer cannot carry (LABEL, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL,
ONBUILD) are refused rather than dropped. RUN and COPY are the builder's business: scripts/build.sh's rootfs
builder does what the final stage's RUN does (a non-root user 10001, the locked dependencies, the project's wheel).

Stdlib only, like the packer.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

UNSUPPORTED = frozenset({"LABEL", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD"})


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments and blank lines dropped, backslash continuations joined."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def _exec_form(keyword: str, arguments: str) -> list[str]:
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{keyword} must be in exec form (a JSON array of strings): {arguments}")
    return value


def _env(arguments: str) -> list[str]:
    words = shlex.split(arguments)
    if any("=" not in word for word in words):  # the legacy `ENV NAME value` form
        raise ValueError(f"ENV must use the NAME=value form: {arguments}")
    if "$" in arguments:
        raise ValueError(f"ENV with variable substitution is not read: {arguments}")
    return words


def final_stage_options(text: str) -> list[str]:
    """The packer options (`--name=value`, one per element) of the final stage of Dockerfile `text`."""
    instructions = _instructions(text)
    starts = [index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    if not starts:
        raise ValueError("no FROM in the Dockerfile")
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    user = ""
    workdir = "/"
    ports: list[str] = []
    for keyword, arguments in instructions[starts[-1] + 1 :]:
        if keyword in UNSUPPORTED:
            raise ValueError(f"{keyword} in the final stage: the rootfs builder cannot carry it")
        if keyword == "ENV":
            for word in _env(arguments):
                name, _, value = word.partition("=")
                env[name] = value
        elif keyword == "ENTRYPOINT":
            entrypoint, cmd = _exec_form(keyword, arguments), []  # a new ENTRYPOINT resets CMD, as in docker build
        elif keyword == "CMD":
            cmd = _exec_form(keyword, arguments)
        elif keyword == "USER":
            user = arguments
        elif keyword == "WORKDIR":
            workdir = posixpath.join(workdir, arguments)
        elif keyword == "EXPOSE":
            ports += [port if "/" in port else f"{port}/tcp" for port in arguments.split()]
    options = [f"--entrypoint={item}" for item in entrypoint] + [f"--cmd={item}" for item in cmd]
    options += [f"--env={name}={value}" for name, value in env.items()]
    options += [f"--user={user}"] if user else []
    options += [f"--workdir={workdir}"] + [f"--expose={port}" for port in ports]
    return options


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python3 tools/image/dockerfile_config.py DOCKERFILE", file=sys.stderr)
        return 2
    try:
        options = final_stage_options(Path(args[0]).read_text())
    except (OSError, ValueError) as error:
        print(f"dockerfile_config: {error}", file=sys.stderr)
        return 1
    print("\n".join(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
