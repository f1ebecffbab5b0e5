"""--auth=kubernetes: TokenReview + SubjectAccessReview through a fake review API, with a fake clock for the caches."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from aiohttp.test_utils import make_mocked_request

from ai_storage_orchestrator.api.auth import AllowAll, KubernetesAuthenticator, TtlCache, bearer_token, token_key
from ai_storage_orchestrator.errors import Unauthorized
from ai_storage_orchestrator.models import MigrationRequest, Phase
from tests.unit.api.conftest import Client, Serve
from tests.unit.api.fakes import SEED_BODY, FakeReviewApi, FakeService

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


async def test_rejected_token_is_401_and_not_cached(client: Client, reviews: FakeReviewApi) -> None:
    for _ in range(2):
        await error_of(
            await client.post("/api/migrations", json=SEED_BODY, headers=bearer("stolen")), 401, "unauthorized"
        )
    assert reviews.count("TokenReview") == 2
    assert reviews.count("SubjectAccessReview") == 0


async def test_allowed_user_submits(client: Client, service: FakeService, reviews: FakeReviewApi) -> None:
    response = await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))
    assert response.status == 202, await response.text()
    assert len(service.submitted) == 1
    (token_review,) = [body for kind, body in reviews.calls if kind == "TokenReview"]
    assert token_review == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": "alice-token"},
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
    theirs = service.add(MigrationRequest("p", "secret", "a", "b"), status={"phase": Phase.CHECKPOINTING.value})
    assert (await client.get(f"/api/migrations/{mine['migration_id']}", headers=bearer("alice-token"))).status == 200
    response = await client.get(f"/api/migrations/{theirs['migration_id']}", headers=bearer("alice-token"))
    body = await error_of(response, 403, "forbidden")
    assert (body["details"]["verb"], body["details"]["namespace"]) == ("get", "secret")
    response = await client.delete(f"/api/migrations/{theirs['migration_id']}", headers=bearer("alice-token"))
    assert (await error_of(response, 403, "forbidden"))["details"]["verb"] == "delete"
    assert service.migrations[theirs["migration_id"]]["spec"].get("cancelRequested") is None
    response = await client.delete(f"/api/migrations/{mine['migration_id']}", headers=bearer("alice-token"))
    assert response.status == 202


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


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/api/openapi.json"])
async def test_service_endpoints_need_no_token(client: Client, reviews: FakeReviewApi, path: str) -> None:
    assert (await client.get(path)).status == 200
    assert reviews.calls == []


async def test_access_log_names_the_user(client: Client) -> None:
    with structlog.testing.capture_logs() as logs:
        await client.post("/api/migrations", json=SEED_BODY, headers=bearer("alice-token"))
    (line,) = [entry for entry in logs if entry["event"] == "http.request"]
    assert (line["user"], line["status"]) == ("alice", 202)
