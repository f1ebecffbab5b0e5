"""A stranger (or a user of another namespace) asking about migrations it may not see: a hidden migration answers
exactly like one that does not exist -- same status, same reason, same message (up to the id), same details, the same
authorization work -- and ids that try to leave their path segment are simply unknown."""

from __future__ import annotations

import pytest
from yarl import URL

from ai_storage_orchestrator.api.auth import KubernetesAuthenticator
from ai_storage_orchestrator.models import MigrationRequest
from tests.security.attacks import ALICE_TOKEN, MALLORY_TOKEN, bearer, refusal, review_api
from tests.unit.api.conftest import Client, Serve
from tests.unit.api.fakes import FakeReviewApi, FakeService

UNKNOWN = "0123456789ab"


@pytest.fixture
def reviews() -> FakeReviewApi:
    return review_api()


@pytest.fixture
async def client(serve: Serve, reviews: FakeReviewApi) -> Client:
    return await serve(authenticator=KubernetesAuthenticator(reviews))


@pytest.fixture
def hidden(service: FakeService) -> str:
    """A migration in namespace `default`, which mallory may not see."""
    request = MigrationRequest(pod_name="trainer", pod_namespace="default", source_node="a", target_node="b")
    return str(service.add(request)["migration_id"])


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_hidden_migration_answers_like_an_unknown_one(
    client: Client, reviews: FakeReviewApi, service: FakeService, hidden: str, method: str
) -> None:
    before = len(reviews.calls)
    hidden_answer = await client.request(method, f"/api/migrations/{hidden}", headers=bearer(MALLORY_TOKEN))
    hidden_body = await refusal(hidden_answer, 404, "migration_not_found")
    hidden_reviews = [kind for kind, _ in reviews.calls[before:]]

    before = len(reviews.calls)
    unknown_answer = await client.request(method, f"/api/migrations/{UNKNOWN}", headers=bearer(MALLORY_TOKEN))
    unknown_body = await refusal(unknown_answer, 404, "migration_not_found")
    unknown_reviews = [kind for kind, _ in reviews.calls[before:]]

    assert hidden_body["message"].replace(hidden, UNKNOWN) == unknown_body["message"]
    assert hidden_body["details"] == unknown_body["details"] == {}
    assert "default" not in hidden_body["message"], "the namespace leaked"
    # The same kinds of review for both: the work done does not tell them apart (the token is cached by then).
    assert [k for k in hidden_reviews if k == "SubjectAccessReview"] == ["SubjectAccessReview"]
    assert [k for k in unknown_reviews if k == "SubjectAccessReview"] == ["SubjectAccessReview"]
    assert service.migrations[hidden]["spec"].get("cancelRequested") is not True


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_an_anonymous_caller_learns_nothing_about_existence(
    client: Client, hidden: str, reviews: FakeReviewApi, method: str
) -> None:
    known = await refusal(await client.request(method, f"/api/migrations/{hidden}"), 401, "unauthorized")
    unknown = await refusal(await client.request(method, f"/api/migrations/{UNKNOWN}"), 401, "unauthorized")
    assert known == unknown
    assert reviews.calls == []


async def test_the_listing_of_another_namespace_is_403_not_a_filtered_leak(client: Client, hidden: str) -> None:
    response = await client.get("/api/migrations?namespace=default", headers=bearer(MALLORY_TOKEN))
    body = await refusal(response, 403, "forbidden")
    assert hidden not in str(body)
    everywhere = await client.get("/api/migrations", headers=bearer(MALLORY_TOKEN))
    await refusal(everywhere, 403, "forbidden")


@pytest.mark.parametrize(
    "path",
    [
        "/api/migrations/..%2F..%2Fhealthz",
        "/api/migrations/%2e%2e",
        "/api/migrations/%2e%2e%2f%2e%2e%2fapi%2fopenapi.json",
        "/api/migrations/..%5C..%5Cetc%5Cpasswd",
        "/api/migrations/abc%00def",
        "/api/migrations/%252e%252e%252f",
        "/api/v1/migrations/ABCDEF012345",  # not lowercase: cannot be an object name
        "/api/migrations/%D0%B0bcdef012345",  # U+0430 CYRILLIC SMALL LETTER A in front of a valid-looking id
        "/api/migrations/" + "a" * 64,  # longer than an object name
    ],
)
async def test_ids_that_leave_their_segment_or_cannot_be_names_are_unknown(
    client: Client, service: FakeService, path: str
) -> None:
    """Decoded ``%2F`` or ``..`` never changes the route or reaches the service as a path: 404 like any unknown id."""
    for method in ("GET", "DELETE"):
        response = await client.request(method, URL(path, encoded=True), headers=bearer(ALICE_TOKEN))
        await refusal(response, 404, "migration_not_found")
    assert all(not m["spec"].get("cancelRequested") for m in service.migrations.values())
