"""KubeApi's LIST paging and WATCH streams over real HTTP against the fake API server."""

from __future__ import annotations

import sys

import pytest

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import PODS, KubeApi, WatchEvent
from tests.unit.kube.conftest import FakeTime
from tests.unit.kube.fake_apiserver import JSON, FakeApiServer, Reply, status, watch_line

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_leaked_tasks")]

PODS_PATH = "/api/v1/namespaces/ns/pods"


def _pod(name: str, version: int) -> JSON:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version), "managedFields": [{}]}}


def _page(*names: str, version: str, continue_token: str = "") -> Reply:
    metadata = {"resourceVersion": version, **({"continue": continue_token} if continue_token else {})}
    return Reply(body={"kind": "PodList", "metadata": metadata, "items": [_pod(n, 1) for n in names]})


async def test_list_follows_continue_tokens_and_returns_the_last_pages_version(
    server: FakeApiServer, kube: KubeApi
) -> None:
    server.script(
        "GET",
        PODS_PATH,
        _page("a", "b", version="10", continue_token="c1"),
        _page("c", "d", version="10", continue_token="c2"),
        _page("e", version="10"),
    )
    items, version = await kube.list(PODS, namespace="ns", label_selector="app=x", limit=2)

    assert [i["metadata"]["name"] for i in items] == ["a", "b", "c", "d", "e"]
    assert version == "10"
    assert all("managedFields" not in i["metadata"] for i in items)
    assert all(i["metadata"]["namespace"] is items[0]["metadata"]["namespace"] for i in items), "strings shared"
    queries = [r.query for r in server.seen("GET", PODS_PATH)]
    assert [q.get("continue") for q in queries] == [None, "c1", "c2"]
    assert all(q["limit"] == "2" and q["labelSelector"] == "app=x" for q in queries)


async def test_a_failed_page_is_repeated_alone(server: FakeApiServer, kube: KubeApi, fake_time: FakeTime) -> None:
    server.script(
        "GET",
        PODS_PATH,
        _page("a", version="7", continue_token="c1"),
        Reply(503, status(503, "ServiceUnavailable", "etcd leader changed")),
        _page("b", version="7"),
    )
    items, _ = await kube.list(PODS, namespace="ns")

    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert [r.query.get("continue") for r in server.seen("GET", PODS_PATH)] == [None, "c1", "c1"]
    assert len(fake_time.sleeps) == 1


async def test_an_expired_continue_token_reaches_the_caller(
    server: FakeApiServer, kube: KubeApi, fake_time: FakeTime
) -> None:
    server.script(
        "GET",
        PODS_PATH,
        _page("a", version="7", continue_token="c1"),
        Reply(410, status(410, "Expired", "The provided continue parameter is too old")),
    )
    with pytest.raises(KubeApiError) as raised:
        await kube.list(PODS, namespace="ns")
    assert raised.value.gone
    assert fake_time.sleeps == []


async def _watch_all(kube: KubeApi, seen: list[WatchEvent]) -> None:
    async for event in kube.watch(PODS, namespace="ns", resource_version="5"):
        seen.append(event)


async def test_watch_yields_events_split_across_chunks_and_asks_for_bookmarks(
    server: FakeApiServer, kube: KubeApi
) -> None:
    added = watch_line("ADDED", _pod("a", 6))
    bookmark = watch_line("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    server.script("GET", PODS_PATH, Reply(stream=(added[:7], added[7:] + bookmark[:3], bookmark[3:], b"\n")))
    seen: list[WatchEvent] = []
    await _watch_all(kube, seen)

    assert [(e.type, e.object["metadata"]["resourceVersion"]) for e in seen] == [("ADDED", "6"), ("BOOKMARK", "9")]
    assert seen[0].object["metadata"]["namespace"] is sys.intern("ns"), "strings shared"
    (request,) = server.seen("GET", PODS_PATH)
    assert request.query["watch"] == "true"
    assert request.query["resourceVersion"] == "5"
    assert request.query["allowWatchBookmarks"] == "true"


async def test_watch_answered_410_raises_gone_and_is_not_repeated(
    server: FakeApiServer, kube: KubeApi, fake_time: FakeTime
) -> None:
    server.script("GET", PODS_PATH, Reply(410, status(410, "Expired", "too old resource version: 5 (40)")))
    with pytest.raises(KubeApiError) as raised:
        await _watch_all(kube, [])
    assert raised.value.gone
    assert len(server.seen("GET", PODS_PATH)) == 1
    assert fake_time.sleeps == []


async def test_watch_refused_with_throttling_is_not_repeated_but_carries_retry_after(
    server: FakeApiServer, kube: KubeApi, fake_time: FakeTime
) -> None:
    throttled = Reply(429, status(429, "TooManyRequests", "Too many requests"), headers={"Retry-After": "2"})
    server.script("GET", PODS_PATH, throttled)
    with pytest.raises(KubeApiError) as raised:
        await _watch_all(kube, [])
    assert raised.value.throttled
    assert raised.value.retry_after == 2.0
    assert len(server.seen("GET", PODS_PATH)) == 1, "the reflector owns reconnects"
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    ("code", "reason"), [(410, "Expired"), (500, "InternalError")], ids=["expired", "internal-error"]
)
async def test_an_error_frame_inside_the_stream_ends_the_watch_with_its_status(
    server: FakeApiServer, kube: KubeApi, code: int, reason: str
) -> None:
    error_frame = watch_line("ERROR", status(code, reason, "from inside the stream"))
    server.script("GET", PODS_PATH, Reply(stream=(watch_line("MODIFIED", _pod("a", 7)), error_frame)))
    seen: list[WatchEvent] = []
    with pytest.raises(KubeApiError) as raised:
        await _watch_all(kube, seen)

    assert [e.type for e in seen] == ["MODIFIED"]
    assert (raised.value.status, raised.value.reason) == (code, reason)
    assert len(server.seen("GET", PODS_PATH)) == 1
