"""--auth=kubernetes: TokenReview + SubjectAccessReview through a fake review API, with a fake clock for the caches."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import make_mocked_request

from ai_storage_orchestrator.api.auth import (
    DEFAULT_AUDIENCE,
    FAILURE_BURST,
    AllowAll,
    AuthRateLimited,
    FailureLimiter,
    KubernetesAuthenticator,
    TtlCache,
    bearer_token,
    client_key,
    token_key,
)
from ai_storage_orchestrator.errors import Unauthorized
from ai_storage_orchestrator.models import MigrationRequest, Phase
from ai_storage_orchestrator.settings import Settings
from tests.unit.api.conftest import Client, Serve
from tests.unit.api.fakes import API_SERVER_AUDIENCE, SEED_BODY, FakeReviewApi, FakeService

pytestmark = pytest.mark.unit

ALICE = {"username": "alice", "uid": "u-1", "groups": ["dev", "system:authenticated"], "extra": {"team": ["ml"]}}
BOB = {"username": "bob", "groups": ["system:authenticated"]}
MIGRATOR = ("alice", "create", "default"), ("alice", "delete", "default"), ("alice", "get", "default")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reviews() -> FakeReviewApi:
    return FakeReviewApi(users={"alice-token": ALICE, "bob-token": BOB}, grants=set(MIGRATOR))


@pytest.fixture
def authenticator(reviews: FakeReviewApi, clock: Clock) -> KubernetesAuthenticator:
    return KubernetesAuthenticator(reviews, clock=clock)


@pytest.fixture
async def client(serve: Serve, authenticator: KubernetesAuthenticator) -> Client:
    return await serve(authenticator=authenticator)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def error_of(response: Any, status: int, reason: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    assert body["error"] == reason
    return body


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc.def", "abc.def"), ("bearer  abc", "abc"), ("BEARER abc ", "abc")],
)
def test_bearer_token(header: str, token: str) -> None:
    assert bearer_token(make_mocked_request("GET", "/", headers={"Authorization": header})) == token


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic YTpi", "Token abc", "Bearer a b"])
def test_missing_or_malformed_bearer_token(header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    with pytest.raises(Unauthorized) as caught:
        bearer_token(make_mocked_request("GET", "/", headers=headers))
    assert caught.value.reason == "unauthorized"


async def test_allow_all_is_anonymous() -> None:
    request = make_mocked_request("POST", "/api/migrations")
    assert await AllowAll().authenticate(request) == "anonymous"
    assert await AllowAll().authorize(request, verb="delete", namespace="kube-system") == "anonymous"


def test_ttl_cache_expires_and_stays_bounded(clock: Clock) -> None:
    cache: TtlCache[str, int] = TtlCache(ttl=10, max_entries=3, clock=clock)
    for i in range(5):
        cache.put(str(i), i)
    assert len(cache) == 3
    assert [cache.get(k) for k in "01234"] == [None, None, 2, 3, 4]
    clock.now += 9.9
    assert cache.get("4") == 4
    clock.now += 0.1
    assert cache.get("4") is None
    assert len(cache) == 2


async def test_no_token_is_401(client: Client, service: FakeService) -> None:
    response = await client.post("/api/migrations", json=SEED_BODY)
    await error_of(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert service.submitted == []


async def test_malformed_header_is_401(client: Client, reviews: FakeReviewApi) -> None:
    response = await client.post("/api/migrations", json=SEED_BODY, headers={"Authorization": "Basic YWxpY2U6cHc="})
    await error_of(response, 401, "unauthorized")
    assert reviews.calls == []


async def test_rejected_tokens_are_cached_briefly_by_their_hash(
    client: Client, reviews: FakeReviewApi, authenticator: KubernetesAuthenticator, clock: Clock
) -> None:
    for _ in range(3):
        await error_of(
            await client.post("/api/migrations", json=SEED_BODY, headers=bearer("stolen")), 401, "unauthorized"
        )
    assert reviews.count("TokenReview") == 1
    assert reviews.count("SubjectAccessReview") == 0
    assert list(authenticator.rejected._entries) == [token_key("stolen")]
    clock.now += 10  # a rejection is remembered for 10 s: the token is asked about again after that
    await error_of(await client.post("/api/migrations", json=SEED_BODY, headers=bearer("stolen")), 401, "unauthorized")
    assert reviews.count("TokenReview") == 2


async def test_a_token_accepted_later_is_not_held_back_longer_than_the_negative_ttl(
    client: Client, reviews: FakeReviewApi, clock: Clock
) -> None:
    await error_of(await client.post("/api/migrations", json=SEED_BODY, headers=bearer("new")), 401, "unauthorized")
    reviews.users["new"] = ALICE
    await error_of(await client.post("/api/migrations", json=SEED_BODY, headers=bearer("new")), 401, "unauthorized")
    clock.now += 10
    assert (await client.post("/api/migrations", json=SEED_BODY, headers=bearer("new"))).status == 202


async def test_allowed_user_submits(client: Client, service: FakeService, reviews: FakeReviewApi) -> None:
    response = await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))
    assert response.status == 202, await response.text()
    assert len(service.submitted) == 1
    (token_review,) = [body for kind, body in reviews.calls if kind == "TokenReview"]
    assert token_review == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": "alice-token", "audiences": ["ai-storage-orchestrator"]},
    }
    access = [body for kind, body in reviews.calls if kind == "SubjectAccessReview"]
    assert [a["spec"]["resourceAttributes"]["verb"] for a in access] == ["create", "delete"]
    assert access[0] == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "alice",
            "uid": "u-1",
            "groups": ["dev", "system:authenticated"],
            "extra": {"team": ["ml"]},
            "resourceAttributes": {"namespace": "default", "verb": "create", "group": "", "resource": "pods"},
        },
    }


async def test_denied_user_is_403(client: Client, service: FakeService, reviews: FakeReviewApi) -> None:
    reviews.grants.add(("bob", "create", "default"))  # create alone is not enough: a migration deletes the pod
    response = await client.post("/api/migrations", json=SEED_BODY, headers=bearer("bob-token"))
    body = await error_of(response, 403, "forbidden")
    assert body["details"] == {"user": "bob", "verb": "delete", "resource": "pods", "namespace": "default"}
    assert "bob" in body["message"]
    assert "delete" in body["message"]
    assert "default" in body["message"]
    assert service.submitted == []


async def test_dry_run_needs_the_same_rights(client: Client) -> None:
    response = await client.post("/api/migrations", json={**SEED_BODY, "dry_run": True}, headers=bearer("bob-token"))
    await error_of(response, 403, "forbidden")
    response = await client.post("/api/migrations", json={**SEED_BODY, "dry_run": True}, headers=bearer("alice-token"))
    assert response.status == 200


async def test_reviews_are_cached(
    client: Client, reviews: FakeReviewApi, authenticator: KubernetesAuthenticator, clock: Clock
) -> None:
    for _ in range(3):
        assert (await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))).status == 202
    assert (reviews.count("TokenReview"), reviews.count("SubjectAccessReview")) == (1, 2)
    clock.now += 10  # access decisions expire, the identity does not
    assert (await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))).status == 202
    assert (reviews.count("TokenReview"), reviews.count("SubjectAccessReview")) == (1, 4)
    clock.now += 20
    assert (await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))).status == 202
    assert (reviews.count("TokenReview"), reviews.count("SubjectAccessReview")) == (2, 6)
    assert list(authenticator.users._entries) == [token_key("alice-token")]
    assert all("alice-token" not in repr(key) for key in authenticator.decisions._entries)


async def test_denials_are_cached_briefly(client: Client, reviews: FakeReviewApi, clock: Clock) -> None:
    for _ in range(2):
        await error_of(
            await client.post("/api/migrations", json=SEED_BODY, headers=bearer("bob-token")), 403, "forbidden"
        )
    assert reviews.count("SubjectAccessReview") == 1
    reviews.grants |= {("bob", "create", "default"), ("bob", "delete", "default")}
    clock.now += 10
    assert (await client.post("/api/migrations", json=SEED_BODY, headers=bearer("bob-token"))).status == 202


async def test_get_and_cancel_check_the_migration_namespace(
    client: Client, service: FakeService, reviews: FakeReviewApi
) -> None:
    mine = service.add(MigrationRequest("p", "default", "a", "b"), status={"phase": Phase.CHECKPOINTING.value})
    assert (await client.get(f"/api/migrations/{mine['migration_id']}", headers=bearer("alice-token"))).status == 200
    response = await client.delete(f"/api/migrations/{mine['migration_id']}", headers=bearer("alice-token"))
    assert response.status == 202
    assert service.migrations[mine["migration_id"]]["spec"]["cancelRequested"] is True


async def _answer(response: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in ("X-Request-ID", "Date")}
    return response.status, await response.json(), headers


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_hidden_migration_answers_like_an_unknown_one(
    client: Client, service: FakeService, reviews: FakeReviewApi, method: str
) -> None:
    """bob may not get pods anywhere: a migration in `secret` and an id that does not exist look the same to him."""
    theirs = service.add(MigrationRequest("p", "secret", "a", "b"), status={"phase": Phase.CHECKPOINTING.value})
    hidden_id, unknown_id = theirs["migration_id"], "abcdef000000"
    hidden = await _answer(await client.request(method, f"/api/migrations/{hidden_id}", headers=bearer("bob-token")))
    unknown = await _answer(await client.request(method, f"/api/migrations/{unknown_id}", headers=bearer("bob-token")))
    assert hidden[0] == unknown[0] == 404
    assert hidden[1] == {**unknown[1], "message": unknown[1]["message"].replace(unknown_id, hidden_id)}
    assert hidden[1]["error"] == "migration_not_found"
    assert "secret" not in json.dumps(hidden[1])
    assert hidden[2] == unknown[2]
    assert service.migrations[hidden_id]["spec"].get("cancelRequested") is None
    # The same authorization work either way: one `get` review each (the unknown id's is cluster-wide).
    asked = [b["spec"]["resourceAttributes"] for k, b in reviews.calls if k == "SubjectAccessReview"]
    assert [(a["verb"], a.get("namespace")) for a in asked] == [("get", "secret"), ("get", None)]


async def test_an_unknown_id_is_404_for_a_cluster_wide_reader_too(client: Client, reviews: FakeReviewApi) -> None:
    reviews.grants.add(("bob", "get", None))
    response = await client.get("/api/migrations/abcdef000000", headers=bearer("bob-token"))
    await error_of(response, 404, "migration_not_found")


async def test_cancel_of_a_visible_migration_without_delete_is_403(
    client: Client, service: FakeService, reviews: FakeReviewApi
) -> None:
    """Who may see a migration learns nothing new from a 403: its namespace is in what GET shows them."""
    theirs = service.add(MigrationRequest("p", "secret", "a", "b"), status={"phase": Phase.CHECKPOINTING.value})
    reviews.grants.add(("alice", "get", "secret"))
    path = f"/api/migrations/{theirs['migration_id']}"
    assert (await client.get(path, headers=bearer("alice-token"))).status == 200
    body = await error_of(await client.delete(path, headers=bearer("alice-token")), 403, "forbidden")
    assert (body["details"]["verb"], body["details"]["namespace"]) == ("delete", "secret")
    assert service.migrations[theirs["migration_id"]]["spec"].get("cancelRequested") is None


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_anonymous_callers_cannot_probe_migration_ids(client: Client, service: FakeService, method: str) -> None:
    known = service.add(MigrationRequest("p", "default", "a", "b"))
    for migration_id in (known["migration_id"], "abcdef000000"):
        await error_of(await client.request(method, f"/api/migrations/{migration_id}"), 401, "unauthorized")


async def test_list_needs_list_in_the_filtered_namespace_or_cluster_wide(
    client: Client, reviews: FakeReviewApi
) -> None:
    reviews.grants.add(("alice", "list", "default"))
    assert (await client.get("/api/migrations?namespace=default", headers=bearer("alice-token"))).status == 200
    body = await error_of(await client.get("/api/migrations", headers=bearer("alice-token")), 403, "forbidden")
    assert body["details"]["namespace"] is None
    assert "cluster-wide" in body["message"]
    reviews.grants.add(("bob", "list", None))
    assert (await client.get("/api/migrations", headers=bearer("bob-token"))).status == 200
    assert (await client.get("/api/migrations?namespace=default", headers=bearer("bob-token"))).status == 200
    await error_of(await client.get("/api/migrations"), 401, "unauthorized")


async def test_api_server_down_is_503(client: Client, reviews: FakeReviewApi) -> None:
    reviews.down = True
    response = await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))
    body = await error_of(response, 503, "auth_unavailable")
    assert "connection refused" not in body["message"]
    await error_of(await client.get("/api/migrations", headers=bearer("alice-token")), 503, "auth_unavailable")


@pytest.mark.parametrize("path", ["/healthz", "/health", "/readyz", "/metrics", "/api/openapi.json"])
async def test_service_endpoints_need_no_token(client: Client, reviews: FakeReviewApi, path: str) -> None:
    assert (await client.get(path)).status == 200
    assert reviews.calls == []


async def test_access_log_names_the_user(client: Client) -> None:
    with structlog.testing.capture_logs() as logs:
        await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))
    (line,) = [entry for entry in logs if entry["event"] == "http.request"]
    assert (line["user"], line["status"]) == ("alice", 202)


# audiences ------------------------------------------------------------------------------------------------------------
async def test_a_token_for_the_api_server_is_refused(client: Client, reviews: FakeReviewApi) -> None:
    """The relay: a caller's default token (audience: the API server) must not be accepted, or this service could
    collect tokens that work against the API server."""
    reviews.audiences["alice-token"] = [API_SERVER_AUDIENCE]
    response = await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))
    body = await error_of(response, 401, "unauthorized")
    assert "--audience ai-storage-orchestrator" in body["message"]
    (review,) = [b for k, b in reviews.calls if k == "TokenReview"]
    assert review["spec"]["audiences"] == ["ai-storage-orchestrator"]


async def test_an_audience_the_answer_does_not_confirm_is_refused(client: Client, reviews: FakeReviewApi) -> None:
    reviews.audience_unaware = True  # authenticated, but without status.audiences: meant for anyone
    response = await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))
    await error_of(response, 401, "unauthorized")


async def test_a_configured_audience_is_asked_for(serve: Serve, reviews: FakeReviewApi, clock: Clock) -> None:
    reviews.audiences["alice-token"] = ["orchestrator.example.com"]
    client = await serve(authenticator=KubernetesAuthenticator(reviews, audience="orchestrator.example.com"))
    assert (await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))).status == 202
    (review,) = [b for k, b in reviews.calls if k == "TokenReview"]
    assert review["spec"]["audiences"] == ["orchestrator.example.com"]


async def test_no_audience_accepts_the_api_servers_own_tokens(serve: Serve, reviews: FakeReviewApi) -> None:
    """--token-audience= (empty): the explicit opt-out for clients that only have default tokens."""
    reviews.audiences["alice-token"] = [API_SERVER_AUDIENCE]
    client = await serve(authenticator=KubernetesAuthenticator(reviews, audience=""))
    assert (await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))).status == 202
    (review,) = [b for k, b in reviews.calls if k == "TokenReview"]
    assert review["spec"] == {"token": "alice-token"}


def test_the_default_audience_is_the_settings_default() -> None:
    assert DEFAULT_AUDIENCE == Settings().token_audience == "ai-storage-orchestrator"


# failed attempts: negative cache and rate limit -----------------------------------------------------------------------
async def test_failed_attempts_from_one_address_are_limited(
    client: Client, reviews: FakeReviewApi, clock: Clock
) -> None:
    for n in range(FAILURE_BURST):
        response = await client.post("/api/migrations", json=SEED_BODY, headers=bearer(f"guess-{n}"))
        await error_of(response, 401, "unauthorized")
    assert reviews.count("TokenReview") == FAILURE_BURST
    response = await client.post("/api/migrations", json=SEED_BODY, headers=bearer("guess-more"))
    body = await error_of(response, 429, "auth_rate_limited")
    assert set(body) == {"error", "message", "details"}
    assert response.headers["Retry-After"] == "2"
    assert body["details"] == {"retry_after_seconds": 2}
    assert "127.0.0.1" in body["message"]
    assert reviews.count("TokenReview") == FAILURE_BURST  # a limited address gets no TokenReview
    await error_of(await client.post("/api/migrations", json=SEED_BODY), 429, "auth_rate_limited")
    clock.now += 2  # one more attempt every 2 s
    await error_of(await client.post("/api/migrations", json=SEED_BODY, headers=bearer("x")), 401, "unauthorized")
    await error_of(await client.post("/api/migrations", json=SEED_BODY, headers=bearer("y")), 429, "auth_rate_limited")


async def test_a_limited_address_keeps_its_known_users(client: Client, reviews: FakeReviewApi) -> None:
    """A NAT shared with a guesser: a token already reviewed as valid still passes, without a TokenReview."""
    assert (await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))).status == 202
    for n in range(FAILURE_BURST):
        await error_of(await client.get("/api/migrations", headers=bearer(f"guess-{n}")), 401, "unauthorized")
    await error_of(await client.get("/api/migrations", headers=bearer("guess")), 429, "auth_rate_limited")
    before = reviews.count("TokenReview")
    assert (await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))).status == 202
    assert reviews.count("TokenReview") == before


async def test_missing_and_malformed_credentials_count_as_failures(client: Client, reviews: FakeReviewApi) -> None:
    for n in range(FAILURE_BURST):
        headers = {"Authorization": "Basic YTpi"} if n % 2 else {}
        await error_of(await client.get("/api/migrations", headers=headers), 401, "unauthorized")
    await error_of(await client.get("/api/migrations"), 429, "auth_rate_limited")
    assert reviews.calls == []


async def test_successful_reviews_and_an_unreachable_api_server_cost_nothing(
    client: Client, reviews: FakeReviewApi
) -> None:
    for n in range(2 * FAILURE_BURST):  # every token new, every TokenReview a success
        reviews.users[f"token-{n}"] = ALICE
        assert (await client.post("/api/migrations", json=SEED_BODY, headers=bearer(f"token-{n}"))).status == 202
    reviews.down = True
    for n in range(2 * FAILURE_BURST):
        response = await client.get("/api/migrations", headers=bearer(f"other-{n}"))
        await error_of(response, 503, "auth_unavailable")
    reviews.down = False
    await error_of(await client.get("/api/migrations", headers=bearer("guess")), 401, "unauthorized")


async def test_concurrent_requests_with_one_new_token_share_one_review(
    authenticator: KubernetesAuthenticator, reviews: FakeReviewApi
) -> None:
    """More requests than the failure budget, all before the first review answered: one TokenReview, no 429."""
    reviews.hold = asyncio.Event()
    request = make_mocked_request("GET", "/", headers=bearer("alice-token"))
    callers = [asyncio.ensure_future(authenticator.authenticate(request)) for _ in range(3 * FAILURE_BURST)]
    await reviews.wait_for_call("TokenReview")
    reviews.hold.set()
    assert await asyncio.gather(*callers) == ["alice"] * len(callers)
    assert reviews.count("TokenReview") == 1


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_review(
    authenticator: KubernetesAuthenticator, reviews: FakeReviewApi
) -> None:
    reviews.hold = asyncio.Event()
    request = make_mocked_request("GET", "/", headers=bearer("alice-token"))
    first = asyncio.ensure_future(authenticator.authenticate(request))
    await reviews.wait_for_call("TokenReview")
    second = asyncio.ensure_future(authenticator.authenticate(request))
    first.cancel()
    reviews.hold.set()
    assert await second == "alice"
    assert first.cancelled()
    assert reviews.count("TokenReview") == 1


def test_limiter_buckets_refill_and_stay_bounded(clock: Clock) -> None:
    limiter = FailureLimiter(burst=2, rate=0.5, max_clients=3, clock=clock)
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(AuthRateLimited) as caught:
        limiter.take("a")
    assert caught.value.retry_after == 2
    clock.now += 1  # half an attempt back: still limited, one more second to wait
    with pytest.raises(AuthRateLimited) as caught:
        limiter.take("a")
    assert caught.value.retry_after == 1
    clock.now += 1
    limiter.take("a")
    for client in "bcde":
        limiter.take(client)
    assert len(limiter) == 3  # "a", the client seen longest ago, was forgotten
    limiter.give_back("e")
    assert len(limiter) == 2  # a full bucket is not stored


@pytest.mark.parametrize(
    ("remote", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
    ],
)
def test_client_key_groups_an_ipv6_host_by_its_64(remote: str, key: str) -> None:
    request = make_mocked_request("GET", "/", transport=_Transport(remote))
    assert client_key(request) == key


class _Transport:
    def __init__(self, host: str) -> None:
        self.host = host

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.host, 40000) if name == "peername" else default
