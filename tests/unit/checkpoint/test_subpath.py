"""subPathExpr: the env a restore container needs to expand it as its container does, or a clear refusal."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.checkpoint.subpath import SubPathExprUnsupported, references, restore_env

POD_NAME = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def container(env: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "trainer", "image": "i", "env": env, **extra}


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("$(POD_NAME)/opt", ["POD_NAME"]),
        ("$(A)-$(B)", ["A", "B"]),
        ("$$(A)", []),  # an escaped $: the literal text $(A)
        ("$$$(A)", ["A"]),
        ("$(A", []),  # no closing parenthesis: literal
        ("a$b/$", []),
        ("$()", [""]),
    ],
)
def test_references_are_read_as_the_kubelet_reads_them(text: str, names: list[str]) -> None:
    assert references(text) == names


def test_literal_and_field_ref_entries_are_copied_with_what_they_reference() -> None:
    env: list[dict[str, Any]] = [
        {"name": "UNRELATED", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        POD_NAME,
        {"name": "RUN", "value": "run-$(POD_NAME)"},
        {"name": "OTHER", "value": "x"},
    ]
    assert restore_env(container(env), ["$(RUN)/opt"]) == [POD_NAME, {"name": "RUN", "value": "run-$(POD_NAME)"}]
    assert restore_env(container(env), ["fixed"]) == []


def test_a_redefined_variable_keeps_the_definition_each_reference_saw() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)"}, {"name": "A", "value": "2"}]
    assert restore_env(container(env), ["$(A)/$(B)"]) == env


@pytest.mark.parametrize(
    ("env", "extra", "says"),
    [
        ([{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}], {}, "secretKeyRef"),
        ([{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}], {}, "configMapKeyRef"),
        ([{"name": "K", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}], {}, "resourceFieldRef"),
        ([], {}, "not set"),
        ([], {"envFrom": [{"configMapRef": {"name": "c"}}]}, "envFrom"),
        ([{"name": "K", "value": "$(SECRET)"}], {}, "used by variable 'K'"),
    ],
)
def test_variables_a_restore_container_cannot_reproduce_are_refused(
    env: list[dict[str, Any]], extra: dict[str, Any], says: str
) -> None:
    with pytest.raises(SubPathExprUnsupported, match=says):
        restore_env(container(env, **extra), ["$(K)"])
