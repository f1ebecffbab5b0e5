"""The image build installs what was tested: an exact base image release and exact dependency versions."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
CONSTRAINTS = ROOT / "constraints.txt"


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+!-]+", line), f"not an exact pin: {line!r}"
        name, _, version = line.partition("==")
        pins[name.lower().replace("_", "-")] = version
    return pins


def test_the_base_image_is_an_exact_release_used_by_every_stage() -> None:
    [default] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", default), default
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert stages, "no FROM"
    assert set(stages) == {"${PYTHON_IMAGE}"}, stages


def test_the_image_installs_under_the_constraints_and_from_its_own_wheels_only() -> None:
    assert "PIP_CONSTRAINT=/src/constraints.txt" in DOCKERFILE
    assert re.search(r"^COPY constraints\.txt .*\./$", DOCKERFILE, re.MULTILINE)
    assert "pip wheel --no-cache-dir --wheel-dir /wheels ." in DOCKERFILE
    assert re.search(r"pip install [^\n]*--no-index [^\n]*/wheels/\*\.whl", DOCKERFILE)


def test_every_runtime_dependency_is_pinned_within_its_declared_range() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    declared = [Requirement(line) for line in config["options"]["install_requires"].split("\n") if line.strip()]
    pins = _pins()
    assert declared
    for requirement in declared:
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement}"
