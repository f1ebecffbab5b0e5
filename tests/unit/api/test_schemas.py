from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict, MultiDictProxy

from ai_storage_orchestrator.api.schemas import (
    SUBDOMAIN_PROBLEM,
    ListFilters,
    parse_json_object,
    parse_list_filters,
    parse_migration_request,
    require_migration_id,
)
from ai_storage_orchestrator.errors import InvalidRequest, NotFound
from ai_storage_orchestrator.models import AUTO_TARGET, MigrationRequest, Status, Strategy
from tests.unit.api.fakes import SEED_BODY

pytestmark = pytest.mark.unit


def problems_of(body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as caught:
        parse_migration_request(body)
    assert caught.value.reason == "invalid_request"
    fields: dict[str, str] = caught.value.details["fields"]
    return fields


def test_seed_body_with_defaults() -> None:
    assert parse_migration_request(SEED_BODY) == MigrationRequest(
        pod_name="tensorflow-ai-workload",
        pod_namespace="default",
        source_node="a",
        target_node="b",
        preserve_pv=True,
        timeout_seconds=600,
        strategy=Strategy.AUTO,
        dry_run=False,
        triggered_by="api",
        ignore_pdb=False,
    )


@pytest.mark.parametrize("value", [True, False])
def test_ignore_pdb_is_taken_as_given(value: bool) -> None:
    assert parse_migration_request({**SEED_BODY, "ignore_pdb": value}).ignore_pdb is value


def test_every_field_given() -> None:
    body = {
        **SEED_BODY,
        "pod_name": "job.v2-0",
        "source_node": "ip-10-0-0-1.ec2.internal",
        "preserve_pv": False,
        "timeout_seconds": 86400,
        "strategy": "checkpoint-restart",
        "dry_run": True,
    }
    request = parse_migration_request(body)
    assert (request.pod_name, request.source_node) == ("job.v2-0", "ip-10-0-0-1.ec2.internal")
    assert (request.timeout_seconds, request.strategy, request.dry_run) == (86400, Strategy.CHECKPOINT_RESTART, True)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({"timeout": 900}, 900), ({"timeout_seconds": 1}, 1)],
)
def test_timeout_and_its_alias(extra: dict[str, Any], expected: int) -> None:
    assert parse_migration_request({**SEED_BODY, **extra}).timeout_seconds == expected


def test_giving_both_names_is_refused() -> None:
    assert set(problems_of({**SEED_BODY, "timeout": 30, "timeout_seconds": 60})) == {"timeout"}
    assert set(problems_of({**SEED_BODY, "timeout": 30, "timeout_seconds": 30})) == {"timeout"}, "one name, not both"


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("pod_name", "Tensorflow", "DNS-1123 subdomain"),
        ("pod_name", "bad_name", "DNS-1123 subdomain"),
        ("pod_name", "-leading", "DNS-1123 subdomain"),
        ("pod_name", "trailing.", "DNS-1123 subdomain"),
        ("pod_name", "a" * 254, "at most 253"),
        ("pod_name", "", "required"),
        ("pod_name", None, "required"),
        ("pod_name", 7, "must be a string (got integer)"),
        ("pod_namespace", "team.a", "DNS-1123 label"),
        ("pod_namespace", "n" * 64, "at most 63"),
        ("pod_namespace", ["default"], "must be a string (got array)"),
        ("source_node", "node a", "DNS-1123 subdomain"),
        ("source_node", "node\n", "DNS-1123 subdomain"),
        ("target_node", {"name": "b"}, "must be a string (got object)"),
        ("preserve_pv", "true", "boolean"),
        ("preserve_pv", 1, "boolean"),
        ("preserve_pv", None, "boolean"),
        ("dry_run", "false", "boolean"),
        ("dry_run", 0, "boolean"),
        ("ignore_pdb", "true", "boolean"),
        ("ignore_pdb", 1, "boolean"),
        ("ignore_pdb", None, "boolean"),
        ("ignorePDB", True, "unknown field"),
        ("force_restart", "true", "boolean"),
        ("force_restart", 1, "boolean"),
        ("force_restart", None, "boolean"),
        ("forceRestart", True, "unknown field"),
        ("timeout_seconds", True, "integer"),
        ("timeout_seconds", "600", "integer"),
        ("timeout_seconds", 600.0, "integer"),
        ("timeout_seconds", -1, "seconds, or 0 for the default 600"),
        ("timeout_seconds", 86401, "between 1 and 86400"),
        ("timeout", False, "integer"),
        ("timeout", -5, "between 1 and 86400"),
        ("strategy", "fastest", "one of auto, make-before-break, checkpoint-restart"),
        ("strategy", "AUTO", "one of"),
        ("strategy", 1, "one of"),
        ("podName", "x", "unknown field"),
    ],
)
def test_each_invalid_field_is_named(field: str, value: object, problem: str) -> None:
    problems = problems_of({**SEED_BODY, field: value})
    assert set(problems) == {field}
    assert problem in problems[field]


def test_missing_required_fields() -> None:
    problems = problems_of({})
    assert problems == dict.fromkeys(("pod_name", "pod_namespace", "source_node"), "is required")


@pytest.mark.parametrize("given", [{}, {"target_node": None}, {"target_node": "auto"}])
def test_target_node_omitted_null_or_auto_lets_the_orchestrator_choose(given: dict[str, Any]) -> None:
    body = {"pod_name": "p", "pod_namespace": "ml", "source_node": "a", **given}
    request = parse_migration_request(body)
    assert (request.target_node, request.chooses_target) == (AUTO_TARGET, True)
    assert parse_migration_request({**body, "target_node": "b"}).chooses_target is False


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "is required (empty string)"), ("B", SUBDOMAIN_PROBLEM), (["b"], "must be a string (got array)")],
)
def test_a_given_target_node_is_still_validated(value: Any, problem: str) -> None:
    body = {"pod_name": "p", "pod_namespace": "ml", "source_node": "a", "target_node": value}
    assert problems_of(body) == {"target_node": problem}


def test_every_problem_is_listed_at_once() -> None:
    body = {"pod_name": "X", "pod_namespace": "default", "preserve_pv": "yes", "timeout": -1, "strategy": "?", "z": 1}
    assert set(problems_of(body)) == {
        "pod_name",
        "source_node",
        "preserve_pv",
        "timeout",
        "strategy",
        "z",
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"  ",
        b"{",
        b'{"a": 1,}',
        b"[1, 2]",
        b'"text"',
        b"42",
        b"null",
        b'{"a": NaN}',
        b"\xff\xfe{}",
        b"[" * 100_000,
    ],
)
def test_anything_but_a_json_object_is_invalid_json(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_json_object(raw)
    assert caught.value.reason == "invalid_json"


def test_json_object_is_parsed() -> None:
    assert parse_json_object('{"pod_name": "é"}'.encode()) == {"pod_name": "é"}


def query(*pairs: tuple[str, str]) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(pairs))


def test_list_filters() -> None:
    assert parse_list_filters(query()) == ListFilters()
    assert parse_list_filters(query(("status", ""), ("namespace", ""), ("pod", ""))) == ListFilters()
    assert parse_list_filters(query(("status", "running"), ("namespace", "ml"), ("pod", "job.1"))) == ListFilters(
        status=Status.RUNNING, namespace="ml", pod="job.1"
    )


@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        ((("status", "done"),), "status"),
        ((("status", "Running"),), "status"),
        ((("namespace", "Bad_NS"),), "namespace"),
        ((("pod", "a b"),), "pod"),
        ((("state", "running"),), "state"),
        ((("status", "running"), ("status", "failed")), "status"),
    ],
)
def test_invalid_list_filters(pairs: tuple[tuple[str, str], ...], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_list_filters(query(*pairs))
    assert set(caught.value.details["fields"]) == {field}


# A PodMigration made with kubectl may have any name the API server takes (a DNS-1123 subdomain).
@pytest.mark.parametrize("value", ["0123456789ab", "a", "my-migration", "9" * 63, "a.b", "x" * 253])
def test_migration_ids_that_can_exist(value: str) -> None:
    assert require_migration_id(value) == value


@pytest.mark.parametrize("value", ["", "ABC", "a_b", "a..b", "-a", "x" * 254, "é"])
def test_migration_ids_that_cannot_exist_are_unknown(value: str) -> None:
    with pytest.raises(NotFound) as caught:
        require_migration_id(value)
    assert caught.value.reason == "migration_not_found"
