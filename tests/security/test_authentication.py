"""A stranger probing the REST API with --auth=kubernetes: no token, malformed headers, tokens meant for someone else,
forged or unknown JWTs, a header too large to parse, and the same failures repeated -- each refused before a byte of
the body is read, without handing the stranger a TokenReview per request."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict

from ai_storage_orchestrator.api.auth import FAILURE_BURST, FailureLimiter, KubernetesAuthenticator
from tests.security.attacks import (
    ALICE_TOKEN,
    MALLORY_TOKEN,
    REPLAYED_TOKEN,
    bearer,
    raw_exchange,
    refusal,
    review_api,
    status_line,
)
from tests.unit.api.conftest import Client, Serve
from tests.unit.api.fakes import SEED_BODY, FakeReviewApi, FakeService


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
    return review_api()


@pytest.fixture
def authenticator(reviews: FakeReviewApi, clock: Clock) -> KubernetesAuthenticator:
    return KubernetesAuthenticator(reviews, clock=clock)


@pytest.fixture
async def client(serve: Serve, authenticator: KubernetesAuthenticator) -> Client:
    return await serve(authenticator=authenticator)


async def test_no_token_is_401_with_a_challenge_and_no_review(client: Client, reviews: FakeReviewApi) -> None:
    response = await client.get("/api/migrations")
    await refusal(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert reviews.calls == []


@pytest.mark.parametrize(
    "header",
    [
        "",  # present but empty
        "Bearer",  # no token
        "Bearer    ",  # only blanks
        "Basic YWRtaW46YWRtaW4=",  # another scheme (admin:admin)
        "Token alice-token",  # another scheme name
        "Bearer alice-token extra",  # a second word
        "Bearer\talice-token",  # a tab instead of the single space
        "alice-token",  # the bare token
        "Bearer alice-token,Bearer mallory-token",  # a list
    ],
)
async def test_malformed_authorization_headers_are_401_before_any_review(
    client: Client, reviews: FakeReviewApi, header: str
) -> None:
    response = await client.get("/api/migrations", headers={"Authorization": header})
    body = await refusal(response, 401, "unauthorized")
    assert reviews.count("TokenReview") == 0, f"{header!r} reached a TokenReview: {body}"


async def test_an_api_server_token_replayed_here_is_refused(client: Client, reviews: FakeReviewApi) -> None:
    """A pod's default token (audience: the API server) is refused: the TokenReview asked for our audience only."""
    response = await client.get("/api/migrations?namespace=default", headers=bearer(REPLAYED_TOKEN))
    body = await refusal(response, 401, "unauthorized")
    assert "--audience ai-storage-orchestrator" in body["message"]
    [(_kind, review)] = [c for c in reviews.calls if c[0] == "TokenReview"]
    assert review["spec"]["audiences"] == ["ai-storage-orchestrator"]
    assert reviews.count("SubjectAccessReview") == 0


async def test_an_authenticator_that_ignores_audiences_does_not_open_the_door(
    client: Client, reviews: FakeReviewApi
) -> None:
    """A TokenReview answered without ``status.audiences`` (an audience-unaware webhook) proves nothing: refused."""
    reviews.audience_unaware = True
    response = await client.get("/api/migrations?namespace=default", headers=bearer(ALICE_TOKEN))
    await refusal(response, 401, "unauthorized")


@pytest.mark.parametrize(
    "token",
    [
        # alg "none", sub system:admin, no signature
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJzeXN0ZW06YWRtaW4iLCJhdWQiOlsiYWktc3RvcmFnZS1vcmNoZXN0cmF0b3IiXX0.",
        # expired in 2001, audience ours, signature garbage
        "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjEwMDAwMDAwMDAsImF1ZCI6WyJhaS1zdG9yYWdlLW9yY2hlc3RyYXRvciJdfQ.c2lnbmF0dXJl",
        "x" * 4000,  # long garbage, within the header limit
    ],
    ids=["alg-none", "expired", "garbage"],
)
async def test_forged_expired_or_garbage_tokens_are_401(client: Client, reviews: FakeReviewApi, token: str) -> None:
    response = await client.post("/api/migrations", json=SEED_BODY, headers=bearer(token))
    await refusal(response, 401, "unauthorized")
    assert reviews.count("SubjectAccessReview") == 0


async def test_an_anonymous_caller_gets_401_not_a_list_of_body_problems(client: Client, service: FakeService) -> None:
    response = await client.post("/api/migrations", data=b'{"pod_name": "../../etc"}', headers=_json())
    await refusal(response, 401, "unauthorized")
    assert service.submitted == []


async def test_a_token_without_the_rights_is_403_and_nothing_is_submitted(client: Client, service: FakeService) -> None:
    response = await client.post("/api/migrations", json=SEED_BODY, headers=bearer(MALLORY_TOKEN))
    body = await refusal(response, 403, "forbidden")
    assert (body["details"]["user"], body["details"]["verb"]) == ("mallory", "create")
    assert service.submitted == []


async def test_an_oversized_header_is_refused_before_the_app(client: Client, reviews: FakeReviewApi) -> None:
    """An Authorization header of 20 000 bytes is refused by the HTTP parser (400), never reaches a TokenReview."""
    request = b"GET /api/migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 20_000 + b"\r\n\r\n"
    assert client.port is not None
    status, _body = status_line(await raw_exchange(client.port, request))
    assert status == 400
    assert reviews.calls == []


PARSER_REFUSALS = {
    "header-too-long": b"GET /api/migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
    + b"a" * 20_000
    + b"\r\n\r\n",
    "too-many-headers": b"GET /api/migrations HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-H%d: v\r\n" % n for n in range(200))
    + b"\r\n",
    "content-length-and-chunked": b"POST /api/migrations HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad-chunk-size": b"POST /api/migrations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", list(PARSER_REFUSALS.values()), ids=list(PARSER_REFUSALS))
async def test_what_the_http_parser_refuses_answers_the_json_error_shape(client: Client, request_bytes: bytes) -> None:
    """Refused before any handler runs (aiohttp's parser): still `{"error", "message", "details"}` as JSON (api/
    transport.py), a 4xx, and the connection closed."""
    assert client.port is not None
    answer = await raw_exchange(client.port, request_bytes)
    status, body = status_line(answer)
    assert 400 <= status < 500, answer[:300]
    assert b"application/json" in answer.partition(b"\r\n\r\n")[0].lower()
    refusal = json.loads(body)
    assert refusal["error"] == "malformed_http_request"
    assert refusal["message"].startswith("the HTTP request could not be read")
    assert refusal["details"] == {"status": status}


async def test_repeated_failures_are_429_with_retry_after_and_no_more_reviews(
    client: Client, reviews: FakeReviewApi
) -> None:
    """Each new garbage token costs one TokenReview until the client's burst is spent; then 429, with no review."""
    for attempt in range(FAILURE_BURST):
        await refusal(await client.get("/api/migrations", headers=bearer(f"guess-{attempt}")), 401, "unauthorized")
    reviews_before = reviews.count("TokenReview")
    assert reviews_before == FAILURE_BURST
    limited = await client.get("/api/migrations", headers=bearer("guess-next"))
    body = await refusal(limited, 429, "auth_rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert body["details"]["retry_after_seconds"] == int(limited.headers["Retry-After"])
    assert reviews.count("TokenReview") == reviews_before, "a limited client got a TokenReview"


async def test_failures_without_any_token_drain_the_same_bucket(client: Client) -> None:
    for _ in range(FAILURE_BURST):
        await refusal(await client.get("/api/migrations"), 401, "unauthorized")
    await refusal(await client.get("/api/migrations"), 429, "auth_rate_limited")


@pytest.mark.parametrize(
    "spoofed",
    [
        {"X-Forwarded-For": "203.0.113.7"},
        {"X-Real-IP": "203.0.113.8"},
        {"Forwarded": "for=203.0.113.9"},
        {"X-Forwarded-For": "203.0.113.10, 127.0.0.1", "X-Client-IP": "203.0.113.11"},
    ],
)
async def test_forwarded_for_headers_do_not_refill_the_bucket(client: Client, spoofed: dict[str, str]) -> None:
    """The limit is per TCP peer: claiming to be another address through a forwarding header changes nothing."""
    for attempt in range(FAILURE_BURST):
        await client.get("/api/migrations", headers={**bearer(f"bad-{attempt}"), **spoofed})
    limited = await client.get("/api/migrations", headers={**bearer("bad-next"), **spoofed})
    await refusal(limited, 429, "auth_rate_limited")


async def test_a_rejected_token_is_reviewed_once_however_often_it_is_sent(
    serve: Serve, reviews: FakeReviewApi, clock: Clock
) -> None:
    """The negative cache: the same rejected token is not a TokenReview per request (the bucket is generous here, to
    show the cache and not the limit)."""
    limiter = FailureLimiter(burst=100, clock=clock)
    client = await serve(authenticator=KubernetesAuthenticator(reviews, clock=clock, limiter=limiter))
    for _ in range(5):
        await refusal(await client.get("/api/migrations", headers=bearer("stolen-and-revoked")), 401, "unauthorized")
    assert reviews.count("TokenReview") == 1


async def test_an_unreachable_api_server_is_503_never_an_open_door(client: Client, reviews: FakeReviewApi) -> None:
    reviews.down = True
    response = await client.post("/api/migrations", json=SEED_BODY, headers=bearer(ALICE_TOKEN))
    await refusal(response, 503, "auth_unavailable")


async def test_two_authorization_headers_are_refused(client: Client, service: FakeService) -> None:
    headers = CIMultiDict([("Authorization", f"Bearer {ALICE_TOKEN}"), ("Authorization", f"Bearer {MALLORY_TOKEN}")])
    response = await client.post("/api/migrations", json=SEED_BODY, headers=headers)
    await refusal(response, 401, "unauthorized")
    assert service.submitted == []


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}
