"""Paging of GET /api/migrations: `limit` and `continue` tokens (keyset over the newest-first order), their
validation, and the answer without `limit`, which stays exactly what it was."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict, MultiDictProxy

from ai_storage_orchestrator.api.app import create_app
from ai_storage_orchestrator.api.auth import AllowAll
from ai_storage_orchestrator.api.openapi import build_openapi
from ai_storage_orchestrator.api.paging import cut_page, key_of
from ai_storage_orchestrator.api.schemas import (
    CONTINUE_MAX,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    LABEL_MAX,
    SUBDOMAIN_MAX,
    ListKey,
    decode_continue,
    encode_continue,
    parse_list_filters,
)
from ai_storage_orchestrator.checkpoint import parse_checkpoint_annotations
from ai_storage_orchestrator.controller.planner import Planner
from ai_storage_orchestrator.controller.records import migration_resource
from ai_storage_orchestrator.controller.service import MigrationService
from ai_storage_orchestrator.errors import InvalidRequest
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import MigrationRequest, Phase, Status
from tests.unit.api.conftest import Client
from tests.unit.api.fakes import FakeService
from tests.unit.api.test_real_service import RecordingApi, seed_cluster
from tests.unit.api.test_routes import ERROR_KEYS, error_of

pytestmark = pytest.mark.unit

JSON = dict[str, Any]
KEY = ListKey("2024-05-01T10:00:07Z", "0123456789ab", "ml")


def request(pod: str = "trainer", namespace: str = "ml") -> MigrationRequest:
    return MigrationRequest(pod_name=pod, pod_namespace=namespace, source_node="a", target_node="b")


def query(*pairs: tuple[str, str]) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(pairs))


def ids(migrations: list[JSON]) -> list[str]:
    return [m["migration_id"] for m in migrations]


async def walk(client: Client, url: str, params: dict[str, str]) -> list[JSON]:
    """Every page of a listing, following `continue` tokens; checks each page's shape on the way."""
    pages: list[JSON] = []
    token: str | None = None
    while True:
        response = await client.get(url, params={**params, **({"continue": token} if token else {})})
        assert response.status == 200, await response.text()
        page: JSON = await response.json()
        assert page["count"] == len(page["migrations"])
        pages.append(page)
        token = page.get("continue")
        if token is None:
            return pages
        assert len(page["migrations"]) == int(params["limit"]), "a page that is not the last one is full"
        assert len(pages) < 100, "the tokens never end"


# The token --------------------------------------------------------------------------------------------------------
DOCUMENTED = re.compile(build_openapi()["components"]["parameters"]["Continue"]["schema"]["pattern"])


@pytest.mark.parametrize(
    "key",
    [
        KEY,
        ListKey("", "a", ""),
        ListKey("2024-05-01T10:00:07.123456+00:00", "9" * 63, "n" * 63),
        ListKey("2024-05-01T10:00:07Z", "-", "a"),
        ListKey("é", "a-b", "x-1"),
    ],
)
def test_token_round_trips_and_is_url_safe(key: ListKey) -> None:
    token = encode_continue(key)
    assert decode_continue(token) == key
    assert re.fullmatch(r"[A-Za-z0-9._-]+", token)
    assert DOCUMENTED.fullmatch(token)


def test_token_layout() -> None:
    version, created_at, migration_id, namespace = encode_continue(KEY).split(".")
    assert (version, namespace) == ("2", KEY.namespace)
    assert base64.urlsafe_b64decode(created_at + "=" * (-len(created_at) % 4)).decode() == KEY.created_at
    assert base64.urlsafe_b64decode(migration_id + "=" * (-len(migration_id) % 4)).decode() == KEY.migration_id


def test_a_page_may_end_on_a_record_whose_name_has_dots() -> None:
    """A PodMigration made with kubectl may be named like a subdomain: the token must still resume after it."""
    key = ListKey("2024-05-01T10:00:07Z", "nightly.move-1", "ml")
    assert decode_continue(encode_continue(key)) == key


def test_a_token_of_the_earlier_format_is_still_read() -> None:
    """Issued by a replica before an upgrade: version 1 carried the id as it is."""
    assert decode_continue("1.MjA.id.ml") == ListKey("20", "id", "ml")


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.from_regex(DOCUMENTED, fullmatch=True).filter(lambda t: len(t) <= CONTINUE_MAX))
def test_every_token_the_document_calls_well_formed_is_accepted(token: str) -> None:
    """The API fuzzer sends such tokens and expects no 400: the pattern must describe exactly what decodes."""
    filters = parse_list_filters(query(("limit", "5"), ("continue", token)))
    assert filters.after is not None or token == ""


@settings(max_examples=50, deadline=None, derandomize=True)
@given(
    st.text(max_size=64),
    st.from_regex(DNS1123_SUBDOMAIN, fullmatch=True).filter(lambda n: len(n) <= SUBDOMAIN_MAX),
    st.one_of(st.just(""), st.from_regex(DNS1123_LABEL, fullmatch=True).filter(lambda n: len(n) <= LABEL_MAX)),
)
def test_every_key_makes_a_well_formed_token(created_at: str, migration_id: str, namespace: str) -> None:
    key = ListKey(created_at, migration_id, namespace)
    token = encode_continue(key)
    assert DOCUMENTED.fullmatch(token)
    assert decode_continue(token) == key


@pytest.mark.parametrize(
    "token",
    [
        "!!!!",
        "a",
        "1",
        "1.MjA.id",  # a part missing
        "1.MjA.id.ml.x",  # one too many
        "3.MjA.aWQ.ml",  # another format
        "1.a.id.ml",  # a length base64 never has
        "1.MjA=.id.ml",  # padded
        "1.M+A.id.ml",  # not the URL-safe alphabet
        "1.MjA..ml",  # no id
        "1.MjA.UPPER.ml",
        "1.MjA.a_b.ml",
        "1.MjA.id.Bad_NS",
        "1.MjA.id.-ml",
        "1.MjA.id.ml ",
        " 1.MjA.id.ml",
        "1.MjA.id.ml\n",
        "eyJ2IjoxfQ",  # base64 JSON, but not this format
        "1.MjA.id." + "a" * CONTINUE_MAX,  # too long
    ],
)
def test_anything_but_a_token_of_this_server_is_refused(token: str) -> None:
    assert not (DOCUMENTED.fullmatch(token) and len(token) <= CONTINUE_MAX), "the document calls it well formed"
    with pytest.raises(ValueError, match="continue token"):
        decode_continue(token)
    with pytest.raises(InvalidRequest) as caught:
        parse_list_filters(query(("limit", "5"), ("continue", token)))
    assert caught.value.reason == "invalid_continue"
    assert set(caught.value.details["fields"]) == {"continue"}


# The query ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "limit"), [("1", 1), ("1000", 1000), ("0010", 10), ("00000000000000000007", 7)])
def test_valid_limits(given: str, limit: int) -> None:
    filters = parse_list_filters(query(("limit", given)))
    assert filters.limit == limit
    assert filters.paged


@pytest.mark.parametrize("given", ["0", "1001", "-1", "+5", " 5", "1.5", "1e3", "ten", "", "\u0665", "9" * 5000])
def test_invalid_limits(given: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_list_filters(query(("limit", given)))
    assert caught.value.reason == "invalid_request"
    assert set(caught.value.details["fields"]) == {"limit"}
    assert "from 1 to 1000" in caught.value.details["fields"]["limit"]


def test_continue_in_the_query() -> None:
    assert parse_list_filters(query(("continue", encode_continue(KEY)))).after == KEY
    empty = parse_list_filters(query(("limit", "3"), ("continue", "")))
    assert (empty.limit, empty.after) == (3, None), "an empty token is the first page"
    assert not parse_list_filters(query(("status", "running"))).paged


def test_every_problem_is_named_and_a_bad_token_decides_the_reason() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_list_filters(query(("limit", "0"), ("continue", "%%"), ("status", "done")))
    assert caught.value.reason == "invalid_continue"
    assert set(caught.value.details["fields"]) == {"limit", "continue", "status"}
    with pytest.raises(InvalidRequest) as caught:
        parse_list_filters(query(("continue", encode_continue(KEY)), ("continue", encode_continue(KEY))))
    assert caught.value.reason == "invalid_request"  # a token given twice is a query mistake, not a bad token


# Cutting pages --------------------------------------------------------------------------------------------------------
def item(created: str, migration_id: str, namespace: str = "ml") -> JSON:
    return {"created_at": created, "migration_id": migration_id, "pod_namespace": namespace}


def test_keyset_pages_survive_inserts_and_deletes_between_pages() -> None:
    listing = [item(f"2024-05-01T10:00:{n:02d}Z", f"m{n:02d}") for n in range(10)]
    first = cut_page(listing, limit=4, after=None)
    assert ids(first.migrations) == ["m09", "m08", "m07", "m06"]
    assert first.next_key == key_of(listing[6])
    # Meanwhile: two newer migrations, one in the same second as the last served, and one still to come is deleted.
    listing += [item("2024-05-01T10:00:30Z", "new1"), item("2024-05-01T10:00:06Z", "a-same-second")]
    listing = [m for m in listing if m["migration_id"] != "m04"]
    second = cut_page(listing, limit=4, after=first.next_key)
    assert ids(second.migrations) == ["a-same-second", "m05", "m03", "m02"]
    third = cut_page(listing, limit=4, after=second.next_key)
    assert ids(third.migrations) == ["m01", "m00"]
    assert third.next_key is None


def test_a_page_that_reaches_the_end_exactly_has_no_token() -> None:
    listing = [item(f"2024-05-01T10:00:{n:02d}Z", f"m{n}") for n in range(4)]
    assert cut_page(listing, limit=4, after=None).next_key is None
    assert cut_page(listing, limit=3, after=None).next_key is not None
    assert cut_page([], limit=3, after=KEY).migrations == []


def test_ties_are_ordered_by_id_then_namespace() -> None:
    same = "2024-05-01T10:00:00Z"
    listing = [item(same, "b", "ns1"), item(same, "a", "ns2"), item(same, "a", "ns1"), item("", "z")]
    pages = [cut_page(listing, limit=1, after=None)]
    while pages[-1].next_key is not None:
        pages.append(cut_page(listing, limit=1, after=pages[-1].next_key))
    served = [(m["migration_id"], m["pod_namespace"]) for page in pages for m in page.migrations]
    assert served == [("b", "ns1"), ("a", "ns2"), ("a", "ns1"), ("z", "ml")]


# Through the HTTP API -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["/api/migrations", "/api/v1/migrations"])
async def test_without_limit_the_answer_is_what_it_was(client: Client, service: FakeService, prefix: str) -> None:
    for n in range(5):
        service.add(request(pod=f"p{n}"))
    response = await client.get(prefix)
    body = await response.json()
    assert body == {"migrations": service.list(), "count": 5}
    assert list(body) == ["migrations", "count"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8, 1000])
async def test_pages_add_up_to_the_whole_listing(client: Client, service: FakeService, limit: int) -> None:
    for n in range(7):
        service.add(request(pod=f"p{n}"))
    whole = service.list()
    pages = await walk(client, "/api/migrations", {"limit": str(limit)})
    assert [m for page in pages for m in page["migrations"]] == whole
    assert len(pages) == max(1, -(-7 // limit))
    assert "continue" not in pages[-1]


async def test_paging_combines_with_the_filters(client: Client, service: FakeService) -> None:
    for n in range(6):
        service.add(request(namespace="ml" if n % 2 else "team"), status={"phase": Phase.WAITING_FOR_TARGET.value})
    service.add(request(namespace="ml"), status={"phase": Phase.COMPLETED.value})
    pages = await walk(client, "/api/migrations", {"limit": "2", "namespace": "ml", "status": "running"})
    served = [m for page in pages for m in page["migrations"]]
    assert served == service.list(namespace="ml", status=Status.RUNNING)
    assert len(served) == 3
    assert {(m["pod_namespace"], m["status"]) for m in served} == {("ml", "running")}


async def test_migrations_created_between_pages_are_not_repeated_or_skipped(
    client: Client, service: FakeService
) -> None:
    before = [service.add(request(pod=f"p{n}")) for n in range(5)]
    first = await (await client.get("/api/migrations", params={"limit": "2"})).json()
    assert ids(first["migrations"]) == ids(before[::-1][:2])
    for n in range(3):
        service.add(request(pod=f"later{n}"))
    rest = await walk(client, "/api/migrations", {"limit": "2", "continue": first["continue"]})
    assert ids([m for page in rest for m in page["migrations"]]) == ids(before[::-1][2:])


async def test_continue_without_limit_answers_the_rest(client: Client, service: FakeService) -> None:
    made = [service.add(request(pod=f"p{n}")) for n in range(4)]
    first = await (await client.get("/api/migrations?limit=1")).json()
    rest = await (await client.get("/api/migrations", params={"continue": first["continue"]})).json()
    assert rest == {"migrations": made[::-1][1:], "count": 3}


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"limit": "0"}, "invalid_request"),
        ({"limit": "1001"}, "invalid_request"),
        ({"limit": "abc"}, "invalid_request"),
        ({"limit": ""}, "invalid_request"),
        ({"limit": "2", "continue": "not a token"}, "invalid_continue"),
        ({"limit": "2", "continue": "eyJ2Ijox"}, "invalid_continue"),
        ({"continue": "9.MjA.a.ml"}, "invalid_continue"),
        ({"continue": "A" * 5000}, "invalid_continue"),
    ],
)
async def test_bad_paging_is_a_400_in_the_error_shape(
    client: Client, service: FakeService, params: dict[str, str], reason: str
) -> None:
    service.add(request())
    body = await error_of(await client.get("/api/migrations", params=params), 400, reason)
    assert set(body) == ERROR_KEYS
    assert set(body["details"]["fields"]) <= {"limit", "continue"}


async def test_the_real_service_pages_in_the_order_it_lists() -> None:
    """MigrationService's order and the tokens' order agree, ties (same second, same id) included."""
    state = seed_cluster()
    records = []
    for n, (namespace, migration_id, second) in enumerate(
        [("ml", "aaaaaaaaaaaa", 1), ("team", "aaaaaaaaaaaa", 1), ("ml", "bbbbbbbbbbbb", 1), ("ml", "cccccccccccc", 0)]
        + [("ml", f"{n:012x}", n % 3) for n in range(20)]
    ):
        record = migration_resource(request(pod=f"p{n}", namespace=namespace), migration_id)
        record["metadata"]["creationTimestamp"] = f"2024-05-01T10:00:0{second}Z"
        records.append(record)
    state.migrations.replace(records, "2")
    service = MigrationService(
        api=RecordingApi(),
        state=state,
        metrics=Metrics(),
        planner=Planner(state, declared=parse_checkpoint_annotations),
    )
    app = create_app(service=service, metrics=Metrics(), authenticator=AllowAll())
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        whole = await (await client.get("/api/migrations")).json()
        assert whole["count"] == 24
        for limit in ("1", "5"):
            pages = await walk(client, "/api/migrations", {"limit": limit})
            assert [m for page in pages for m in page["migrations"]] == whole["migrations"]
    finally:
        await client.close()
