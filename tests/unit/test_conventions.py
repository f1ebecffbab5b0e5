"""Every ``ai-storage.io`` key (annotation, label, finalizer, selector, the API group) is written in
``conventions.py`` only: the rest of ``src`` imports it from there.

A string literal in code counts (f-strings too); docstrings and comments are prose and do not."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

from ai_storage_orchestrator import conventions

pytestmark = pytest.mark.unit

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "ai_storage_orchestrator"
CONVENTIONS = PACKAGE / "conventions.py"

# Modules that still write ai-storage.io keys as literals, relative to src/ai_storage_orchestrator. Their owners are
# moving them to `conventions` imports; remove a file from this set once it is converted (and empty the set at last).
NOT_YET_CONVERTED: set[str] = set()  # every module converted; keep it empty

_KEY = re.compile(r"ai-storage\.io/")  # any key: "ai-storage.io/...", "sim.ai-storage.io/...", in an f-string too
_GROUP = re.compile(r"""^[A-Za-z]*("|')ai-storage\.io\1$""")  # the bare API group "ai-storage.io"
_BEFORE_STATEMENT = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
_IGNORED = {tokenize.NL, tokenize.COMMENT}


def key_literals(source: str) -> list[tuple[int, str]]:
    """(line, token) of every string literal in ``source`` that holds an ai-storage.io key or is the API group,
    leaving out docstrings (a string that is a statement of its own: module, class, function or attribute
    docstring)."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in _IGNORED]
    found = []
    for index, token in enumerate(tokens):
        if token.type != tokenize.STRING:
            continue
        before = tokens[index - 1].type if index else tokenize.NEWLINE
        after = tokens[index + 1].type if index + 1 < len(tokens) else tokenize.NEWLINE
        if before in _BEFORE_STATEMENT and after in {tokenize.NEWLINE, tokenize.ENDMARKER}:
            continue  # a docstring: prose
        if _KEY.search(token.string) or _GROUP.match(token.string):
            found.append((token.start[0], token.string))
    return found


def _modules() -> list[str]:
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p != CONVENTIONS)


@pytest.mark.parametrize("module", [m for m in _modules() if m not in NOT_YET_CONVERTED])
def test_no_ai_storage_keys_outside_conventions(module: str) -> None:
    literals = key_literals((PACKAGE / module).read_text())
    assert not literals, (
        f"{module} writes ai-storage.io keys as literals; import them from ai_storage_orchestrator.conventions "
        f"(add one there if it is new): {literals}"
    )


def test_conventions_holds_the_keys() -> None:
    literals = {token.strip("'\"") for _, token in key_literals(CONVENTIONS.read_text())}
    assert {"ai-storage.io", "ai-storage.io/migrate-to", "ai-storage.io/migration-protection"} <= literals
    assert conventions.MIGRATION_FINALIZER == "ai-storage.io/migration-protection"
    assert conventions.NAMESPACE_OPT_IN_LABEL == "ai-storage.io/migrations"
    assert conventions.NAMESPACE_OPT_IN_VALUE == "enabled"
    selector = f"{conventions.NAMESPACE_OPT_IN_LABEL}={conventions.NAMESPACE_OPT_IN_VALUE}"
    assert selector == conventions.NAMESPACE_OPT_IN_SELECTOR


def test_conventions_keys_are_valid_kubernetes_keys() -> None:
    """Annotation/label/finalizer keys are ``<DNS subdomain prefix>/<name>`` with a name of at most 63 characters
    (a prefix is completed by a container name)."""
    name = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
    for attribute, value in vars(conventions).items():
        if attribute.endswith(("_ANNOTATION", "_LABEL", "_PREFIX", "_FINALIZER")):
            prefix, _, key_name = value.partition("/")
            assert prefix.endswith("ai-storage.io"), attribute
            if attribute.endswith("_PREFIX"):
                key_name += "c"  # completed by a (short) container name
            assert name.match(key_name), f"{attribute} = {value!r}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('X = "ai-storage.io/a"\n', ['"ai-storage.io/a"']),
        ("X = 'ai-storage.io/a'\n", ["'ai-storage.io/a'"]),
        ('key = f"ai-storage.io/a.{name}"\n', ['f"ai-storage.io/a.{name}"']),
        ('X = "sim.ai-storage.io/b"\n', ['"sim.ai-storage.io/b"']),
        ('R = Resource("ai-storage.io", "v1")\n', ['"ai-storage.io"']),
        ('"""Module docstring: ai-storage.io/a is prose."""\n', []),
        ('def f():\n    """Docstring ``ai-storage.io/a``."""\n    return 1\n', []),
        ('X = 1\n"""Attribute docstring: "ai-storage.io/a"."""\n', []),
        ('raise ValueError("not an ai-storage.io checkpoint manifest")\n', []),
        ('X = "ai-storage.io/a"  # ai-storage.io/b in a comment\n', ['"ai-storage.io/a"']),
        ('f(\n    "ai-storage.io/a"\n)\n', ['"ai-storage.io/a"']),
    ],
)
def test_key_literals(source: str, expected: list[str]) -> None:
    assert [token for _, token in key_literals(source)] == expected
