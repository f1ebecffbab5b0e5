"""Equal short strings of cached objects are held once."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from ai_storage_orchestrator.kube.interning import LONGEST_SHARED, share_strings

pytestmark = pytest.mark.unit


def _decoded(**status: Any) -> dict[str, Any]:
    """A pod as a JSON decoder hands it over: a new string object for every value."""
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "node-a"}, "status": status}
    return dict(json.loads(json.dumps(pod)))


def test_equal_values_of_two_objects_become_one_string() -> None:
    first, second = _decoded(phase="Running"), _decoded(phase="Running")
    assert first["status"]["phase"] is not second["status"]["phase"]
    share_strings(first)
    share_strings(second)
    assert first["status"]["phase"] is second["status"]["phase"]
    assert first["spec"]["nodeName"] is second["spec"]["nodeName"]


def test_values_in_lists_are_shared_and_equal_to_what_they_were() -> None:
    obj = json.loads(json.dumps({"list": ["a", "b", {"c": ["d"]}], "n": 1, "none": None, "yes": True}))
    before = json.dumps(obj)
    share_strings(obj)
    assert json.dumps(obj) == before
    again = json.loads(json.dumps({"list": ["a"]}))
    share_strings(again)
    assert again["list"][0] is obj["list"][0]


def test_an_object_nested_deeper_than_the_recursion_limit_is_walked() -> None:
    leaf = "".join(["le", "af"])  # a string object of its own, as a decoder would make
    nested: Any = leaf
    for _ in range(sys.getrecursionlimit() + 100):
        nested = [{"next": nested}]
    share_strings({"deep": nested})
    while isinstance(nested, list):
        nested = nested[0]["next"]
    assert nested is sys.intern("leaf")


def test_long_values_are_left_as_they_are() -> None:
    long = "x" * (LONGEST_SHARED + 1)
    first, second = _decoded(message=long), _decoded(message=long)
    share_strings(first)
    share_strings(second)
    assert first["status"]["message"] is not second["status"]["message"]
