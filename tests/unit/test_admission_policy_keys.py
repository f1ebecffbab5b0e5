"""The admission policy covers every checkpoint annotation the orchestrator reads.

The policy (k8s/admission/annotation-policy.yaml, and its copy in the Helm chart) lists the checkpoint annotation
keys and key prefixes whose setting on an existing pod needs ``create pods/exec``. Every ``ai-storage.io`` key is
defined in ``conventions`` (tests/unit/test_conventions.py sees to it), so the checkpoint keys the code reads are the
``ai-storage.io/checkpoint-*`` constants there: a key added to the code without the policy fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_storage_orchestrator import conventions

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "k8s/admission/annotation-policy.yaml"
CHART_POLICY = ROOT / "charts/ai-storage-orchestrator/templates/admission-policy.yaml"
PACKAGE = ROOT / "src/ai_storage_orchestrator"
CHECKPOINT_KEY = "ai-storage.io/checkpoint-"  # not the manifest's kind "ai-storage.io/checkpoint"


def _variables() -> dict[str, str]:
    [policy] = [d for d in yaml.safe_load_all(POLICY.read_text()) if d and d["kind"] == "ValidatingAdmissionPolicy"]
    return {v["name"]: v["expression"] for v in policy["spec"]["variables"]}


def _cel_string_list(expression: str) -> list[str]:
    """A CEL list of string literals (the same syntax as Python's, for these): refused when it is anything else."""
    value: Any = ast.literal_eval(expression.strip())
    assert isinstance(value, list), expression
    assert all(isinstance(v, str) for v in value), expression
    return list(value)


def _checkpoint_conventions() -> dict[str, str]:
    """Constant name -> key, for every checkpoint annotation key (or prefix) conventions defines."""
    return {
        name: value
        for name, value in vars(conventions).items()
        if name.isupper() and isinstance(value, str) and value.startswith(CHECKPOINT_KEY)
    }


def _read_in_src(name: str) -> bool:
    return any(
        re.search(rf"\b{name}\b", path.read_text()) for path in PACKAGE.rglob("*.py") if path.name != "conventions.py"
    )


def test_the_policy_guards_every_checkpoint_annotation_the_orchestrator_reads() -> None:
    variables = _variables()
    keys = _cel_string_list(variables["checkpointKeys"])
    prefixes = _cel_string_list(variables["checkpointPrefixes"])
    read = _checkpoint_conventions()
    assert read, "conventions defines no checkpoint annotation: the scan is broken"
    assert all(_read_in_src(name) for name in read), "every checkpoint key is read somewhere in src"
    expected = {value for value in read.values() if not value.endswith(".")}
    expected_prefixes = {value for value in read.values() if value.endswith(".")}
    assert set(keys) == expected, "the policy's checkpointKeys are the checkpoint keys of conventions"
    assert set(prefixes) == expected_prefixes, "the policy's checkpointPrefixes are the per-container prefixes"
    # Named, so that dropping one from conventions and the policy together does not pass unnoticed.
    assert {conventions.CHECKPOINT_VOLUME_ANNOTATION, conventions.CHECKPOINT_HOOK_TIMEOUT_ANNOTATION} <= set(keys)
    assert {conventions.CHECKPOINT_HOOK_PREFIX, conventions.CHECKPOINT_ARTIFACTS_PREFIX} <= set(prefixes)


def test_sets_checkpoint_matches_the_listed_keys_and_prefixes() -> None:
    """setsCheckpoint decides with the two lists (the API server evaluates it: tests/integration)."""
    expression = " ".join(_variables()["setsCheckpoint"].split())
    assert "variables.changed.exists(k, k in variables.checkpointKeys ||" in expression
    assert "variables.checkpointPrefixes.exists(p, k.startsWith(p)))" in expression
    assert "'ai-storage.io/" not in expression, "no key written in setsCheckpoint itself: it goes in the lists"


def test_the_chart_has_the_same_variables() -> None:
    def variables(path: Path) -> str:
        text = path.read_text()
        return text[text.index("\n  variables:\n") : text.index("\n  validations:\n")]

    assert variables(CHART_POLICY) == variables(POLICY), "copy the policy's variables to the chart"
