"""The image build installs what was tested: an exact base image release and exact dependency versions, each
dependency file verified by its hash (requirements.lock)."""

from __future__ import annotations

import configparser
import importlib.metadata
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
CONSTRAINTS = ROOT / "constraints.txt"
LOCK = ROOT / "requirements.lock"
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


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


def test_the_image_installs_the_locked_files_only_and_its_own_wheel_without_dependencies() -> None:
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in DOCKERFILE
    assert re.search(r"^COPY requirements\.lock ", DOCKERFILE, re.MULTILINE)
    installs = re.findall(r"pip install [^\n]*", DOCKERFILE)
    locked = [i for i in installs if "-r /wheels/requirements.lock" in i]
    assert len(locked) == 1, installs
    assert {"--require-hashes", "--only-binary=:all:", "--no-deps"} <= set(locked[0].split())
    own = [i for i in installs if "/wheels/*.whl" in i]
    assert len(own) == 1, installs
    assert {"--no-index", "--no-deps"} <= set(own[0].split())
    assert all(i in locked + own for i in installs), f"an install outside the lock: {installs}"
    assert "pip check" in DOCKERFILE


def _lock_entries() -> dict[str, tuple[str, list[str]]]:
    """name → (version as pinned, its hashes), from requirements.lock's entries (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in LOCK.read_text().splitlines() if not line.startswith("#")))
    entries: dict[str, tuple[str, list[str]]] = {}
    for entry in filter(None, (line.strip() for line in text.splitlines())):
        requirement, *options = entry.split()
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+!-]+", requirement), f"not an exact pin: {entry!r}"
        assert options, f"an entry without a hash: {entry!r}"
        assert all(HASH.fullmatch(o) for o in options), f"not a sha256 hash: {entry!r}"
        name, _, version = requirement.partition("==")
        assert canonicalize_name(name) not in entries, f"{name} twice"
        entries[canonicalize_name(name)] = (version, options)
    return entries


def test_every_locked_entry_carries_a_hash_and_the_version_of_constraints() -> None:
    entries = _lock_entries()
    assert entries
    pins: dict[str, str] = {canonicalize_name(name): version for name, version in _pins().items()}
    for name, (version, _hashes) in entries.items():
        assert name in pins, f"{name} is locked but not pinned in constraints.txt"
        assert version == pins[name], f"{name}: locked {version}, constraints.txt pins {pins[name]}"


def _install_requires() -> list[Requirement]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return [Requirement(line) for line in config["options"]["install_requires"].split("\n") if line.strip()]


def test_the_lock_holds_exactly_the_runtime_closure_of_install_requires() -> None:
    """Walked through the metadata of the virtualenv, whose versions constraints.txt was generated from."""
    closure: set[str] = set()
    todo = _install_requires()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in closure or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        closure.add(name)
        todo += [Requirement(r) for r in importlib.metadata.distribution(name).requires or []]
    assert set(_lock_entries()) == closure


def test_every_runtime_dependency_is_pinned_within_its_declared_range() -> None:
    declared = _install_requires()
    pins = _pins()
    assert declared
    for requirement in declared:
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement}"
