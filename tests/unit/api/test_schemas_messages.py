"""The 400s and 404s of the request parsers word for word (message, reason, details): what a client reads to fix its
request. And the `continue` token at its bounds."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict, MultiDictProxy

from ai_storage_orchestrator.api.schemas import (
    CONTINUE_MAX,
    LABEL_PROBLEM,
    SUBDOMAIN_PROBLEM,
    ListFilters,
    ListKey,
    decode_continue,
    encode_continue,
    parse_json_object,
    parse_list_filters,
    parse_migration_request,
    require_migration_id,
)
from ai_storage_orchestrator.errors import InvalidRequest, NotFound
from tests.unit.api.fakes import SEED_BODY

pytestmark = pytest.mark.unit


def _invalid_json(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_json_object(raw)
    assert caught.value.reason == "invalid_json"
    return caught.value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b" \n", "the request body is empty: expected a JSON object"),
        (b"\xff\xfe{}", "the request body is not valid UTF-8"),
        (b'{"a": NaN}', "the request body is not valid JSON: NaN is not valid JSON"),
        (b'{"a": -Infinity}', "the request body is not valid JSON: -Infinity is not valid JSON"),
        (b'{"a": 1, "a": 2}', "the request body is not valid JSON: duplicate key 'a'"),
        (b"[" * 100_000, "the request body is nested too deeply"),
    ],
)
def test_a_body_that_is_not_json_says_why(raw: bytes, message: str) -> None:
    assert _invalid_json(raw).message == message


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"null", "null"),
        (b"true", "boolean"),
        (b"42", "integer"),
        (b"4.2", "number"),
        (b'"x"', "string"),
        (b"[]", "array"),
    ],
)
def test_a_body_that_is_json_but_not_an_object_names_its_type(raw: bytes, kind: str) -> None:
    error = _invalid_json(raw)
    assert error.message == f"the request body must be a JSON object, not {kind}"
    assert error.details == {"type": kind}


def _refused(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_migration_request(body)
    assert caught.value.reason == "invalid_request"
    return caught.value


def test_every_problem_of_a_request_in_one_sentence() -> None:
    body = {
        **SEED_BODY,
        "pod_name": "",
        "pod_namespace": 7,
        "preserve_pv": "yes",
        "dry_run": None,
        "timeout_seconds": True,
        "timeout": 30,
        "colour": "blue",
    }
    error = _refused(body)
    problems = {
        "colour": "unknown field",
        "pod_name": "is required (empty string)",
        "pod_namespace": "must be a string (got integer)",
        "preserve_pv": "must be a boolean, true or false (got string)",
        "dry_run": "must be a boolean, true or false (got null)",
        "timeout_seconds": "must be an integer number of seconds (got boolean)",
        "timeout": "is an alias of timeout_seconds: give one of the two, not both",
    }
    assert error.details == {"fields": problems}
    assert error.message == "invalid migration request: " + "; ".join(f"{k} {v}" for k, v in problems.items())


def test_a_float_timeout_is_a_number_not_an_integer() -> None:
    assert _refused({**SEED_BODY, "timeout": 1.5}).details["fields"] == {
        "timeout": "must be an integer number of seconds (got number)"
    }


def _query(*pairs: tuple[str, str]) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(pairs))


def _bad_query(*pairs: tuple[str, str]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_list_filters(_query(*pairs))
    return caught.value


def test_every_problem_of_a_query_in_one_sentence() -> None:
    error = _bad_query(
        ("state", "x"),
        ("pod", "a"),
        ("pod", "b"),
        ("status", "done"),
        ("namespace", "Bad_NS"),
        ("limit", "abc"),
    )
    problems = {
        "state": "unknown query parameter (known: status, namespace, pod, limit, continue)",
        "pod": "given more than once",
        "status": "must be one of pending, running, completed, failed, cancelled",
        "namespace": LABEL_PROBLEM,
        "limit": "must be an integer from 1 to 1000 (got 'abc')",
    }
    assert error.reason == "invalid_request"
    assert error.details == {"fields": problems}
    assert error.message == "invalid query: " + "; ".join(f"{k} {v}" for k, v in problems.items())


def test_a_bad_pod_filter_and_a_bad_token_are_invalid_continue() -> None:
    error = _bad_query(("pod", "a b"), ("continue", "nonsense"))
    assert error.reason == "invalid_continue"
    assert error.details == {
        "fields": {
            "pod": SUBDOMAIN_PROBLEM,
            "continue": "is not a continue token this server issued: take it from the previous page as it is",
        }
    }


@pytest.mark.parametrize(
    ("limit", "expected"),
    [("1", 1), ("0005", 5), ("1000", 1000), ("0001000", 1000)],
)
def test_limits_that_are_accepted(limit: str, expected: int) -> None:
    assert parse_list_filters(_query(("limit", limit))).limit == expected


@pytest.mark.parametrize(
    ("limit", "got"),
    [("0", "0"), ("000", "000"), ("1001", "1001"), ("", "''"), ("-1", "'-1'"), ("٣", "'٣'"), ("9" * 30, "9" * 20)],
)
def test_limits_that_are_refused(limit: str, got: str) -> None:
    assert _bad_query(("limit", limit)).details == {
        "fields": {"limit": f"must be an integer from 1 to 1000 (got {got})"}
    }


def test_names_at_their_longest_are_accepted() -> None:
    namespace, pod = "n" * 63, "p" * 253
    assert parse_list_filters(_query(("namespace", namespace), ("pod", pod))) == ListFilters(
        namespace=namespace, pod=pod
    )
    assert set(_bad_query(("namespace", "n" * 64), ("pod", "p" * 254)).details["fields"]) == {"namespace", "pod"}


@pytest.mark.parametrize(
    "created_at", ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00.5Z", "ab", "abcW", "é", "2024-05-01T10:00:00.123456Z"]
)
def test_a_token_carries_its_key_back_unchanged(created_at: str) -> None:
    key = ListKey(created_at, "0123456789ab", "ml")
    assert decode_continue(encode_continue(key)) == key


def test_a_token_at_the_length_limit_is_read() -> None:
    created_at = "2024-05-01T10:00:00Z" + "." * 600  # any creation time: the token carries it as it is
    keys = [ListKey(created_at, "a" * n, namespace) for n in range(1, 200) for namespace in ("m", "ml")]
    key = next(k for k in keys if len(encode_continue(k)) == CONTINUE_MAX)
    assert decode_continue(encode_continue(key)) == key
    with pytest.raises(ValueError, match="too long") as caught:
        decode_continue(encode_continue(ListKey(created_at, key.migration_id + "a", key.namespace)))
    assert str(caught.value) == "is too long to be a continue token (at most 1024 characters)"


def test_an_unknown_id_is_quoted_at_most_80_characters_long() -> None:
    with pytest.raises(NotFound) as caught:
        require_migration_id("X" * 100)
    assert caught.value.message == f"no migration with id {'X' * 80!r}"


def test_a_limit_that_is_not_a_number_is_quoted_at_most_20_characters_long() -> None:
    assert _bad_query(("limit", "x" * 30)).details == {
        "fields": {"limit": f"must be an integer from 1 to 1000 (got {'x' * 20!r})"}
    }
