"""Malformed and deceptive requests from an authenticated caller: content types and charsets that lie, duplicate
and smuggling headers, bodies too large (declared, chunked or compressed), JSON that is not quite JSON, and names
that only look like Kubernetes names. Each one is refused before the service sees it."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest

from ai_storage_orchestrator.api.auth import KubernetesAuthenticator
from tests.security.attacks import ALICE_TOKEN, bearer, raw_exchange, refusal, review_api, status_line
from tests.unit.api.conftest import Client, Serve
from tests.unit.api.fakes import SEED_BODY, FakeReviewApi, FakeService

LIMIT = 65536
SEED = json.dumps(SEED_BODY).encode()
AUTH = bearer(ALICE_TOKEN)


@pytest.fixture
def reviews() -> FakeReviewApi:
    return review_api()


@pytest.fixture
async def client(serve: Serve, reviews: FakeReviewApi) -> Client:
    return await serve(authenticator=KubernetesAuthenticator(reviews), max_body_bytes=LIMIT)


async def post(client: Client, data: bytes, content_type: str = "application/json", **headers: str) -> Any:
    return await client.post("/api/migrations", data=data, headers={"Content-Type": content_type, **AUTH, **headers})


# --- content types and charsets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",  # a "simple" CORS type: a browser sends it cross-site without a preflight
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/jsonx",
        "application/json, text/plain",
    ],
)
async def test_a_body_under_another_content_type_is_415(
    client: Client, service: FakeService, content_type: str
) -> None:
    await refusal(await post(client, SEED, content_type), 415, "unsupported_media_type")
    assert service.submitted == []


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/json; charset=utf-16", SEED.decode().encode("utf-16")),
        ("application/json; charset=utf-32", SEED.decode().encode("utf-32")),
        ("application/json; charset=latin-1", SEED.replace(b"tensorflow-ai-workload", "caf\u00e9".encode("latin-1"))),
        ("application/json", b"\xef\xbb\xbf" + SEED),  # a UTF-8 byte order mark
        ("application/json", SEED.replace(b'"a"', b'"\xc0\xe1"')),  # an overlong encoding of 'a'
        ("application/json", SEED.replace(b'"a"', b'"\xed\xa0\x80"')),  # an encoded surrogate
    ],
    ids=["utf-16", "utf-32", "latin-1", "bom", "overlong", "surrogate"],
)
async def test_charset_tricks_are_invalid_json(
    client: Client, service: FakeService, content_type: str, data: bytes
) -> None:
    """The body is UTF-8 JSON (RFC 8259) whatever the charset parameter claims."""
    await refusal(await post(client, data, content_type), 400, "invalid_json")
    assert service.submitted == []


# --- duplicate and smuggling headers (sent raw: aiohttp's client would not) ---------------------------------------


def _raw_post(*headers: bytes, body: bytes = b"") -> bytes:
    lines = [b"POST /api/migrations HTTP/1.1", b"Host: 127.0.0.1", b"Authorization: Bearer " + ALICE_TOKEN.encode()]
    return b"\r\n".join([*lines, *headers, b"", body])


@pytest.mark.parametrize(
    "request_bytes",
    [
        # Content-Length and Transfer-Encoding together: the classic CL.TE smuggling
        _raw_post(b"Content-Type: application/json", b"Content-Length: 4", b"Transfer-Encoding: chunked",
                  body=b"0\r\n\r\n"),
        # two different Content-Lengths
        _raw_post(b"Content-Type: application/json", b"Content-Length: 2", b"Content-Length: 40", body=b"{}"),
        # chunked not last
        _raw_post(b"Content-Type: application/json", b"Transfer-Encoding: chunked, identity",
                  body=b"2\r\n{}\r\n0\r\n\r\n"),
        # an unknown coding where chunked should be
        _raw_post(b"Content-Type: application/json", b"Transfer-Encoding: xchunked", body=b"2\r\n{}\r\n0\r\n\r\n"),
        # a chunk size that is not hex
        _raw_post(b"Content-Type: application/json", b"Transfer-Encoding: chunked", body=b"zz\r\n{}\r\n0\r\n\r\n"),
        # obsolete line folding
        _raw_post(b"Content-Type: application/json", b"X-Folded: a\r\n b", b"Content-Length: 2", body=b"{}"),
        # two Content-Types: which one the body is in is ambiguous
        _raw_post(b"Content-Type: text/plain", b"Content-Type: application/json", b"Content-Length: 2", body=b"{}"),
        # 200 headers
        _raw_post(*(b"X-Pad-%d: x" % i for i in range(200)), b"Content-Length: 2", body=b"{}"),
    ],
    ids=["cl-te", "two-content-lengths", "chunked-not-last", "xchunked", "bad-chunk-size", "obs-fold",
         "two-content-types", "too-many-headers"],
)  # fmt: skip
async def test_smuggling_and_ambiguous_headers_are_400_before_the_app(
    client: Client, service: FakeService, reviews: FakeReviewApi, request_bytes: bytes
) -> None:
    assert client.port is not None
    answer = await raw_exchange(client.port, request_bytes)
    status, _body = status_line(answer)
    assert status == 400, answer[:300]
    assert service.submitted == []
    assert reviews.calls == [], "the request reached the authenticator"


# --- oversize bodies ---------------------------------------------------------------------------------------------


async def test_a_declared_oversize_body_is_413_before_authentication(
    client: Client, reviews: FakeReviewApi, service: FakeService
) -> None:
    response = await client.post(
        "/api/migrations", data=b" " * (LIMIT + 1), headers={"Content-Type": "application/json"}
    )
    body = await refusal(response, 413, "payload_too_large")
    assert body["details"] == {"max_body_bytes": LIMIT}
    assert (reviews.calls, service.submitted) == ([], [])


async def test_a_chunked_oversize_body_is_413(client: Client, service: FakeService) -> None:
    async def chunks() -> Any:
        for _ in range(LIMIT // 1024 + 2):
            yield b" " * 1024

    response = await client.post("/api/migrations", data=chunks(), headers={"Content-Type": "application/json", **AUTH})
    await refusal(response, 413, "payload_too_large")
    assert service.submitted == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compression_bomb_is_413_after_the_limit_not_after_inflating_it(
    client: Client, service: FakeService, encoding: str
) -> None:
    """10 MiB of blanks compress to ~10 KiB (under the limit); the limit applies to what is inflated."""
    inflated = b" " * (10 * 1024 * 1024) + SEED
    data = gzip.compress(inflated) if encoding == "gzip" else zlib.compress(inflated)
    assert len(data) < LIMIT
    response = await post(client, data, **{"Content-Encoding": encoding})
    await refusal(response, 413, "payload_too_large")
    assert service.submitted == []


# --- not quite JSON ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"null",
        b"[]",
        b'"pod"',
        b"{'pod_name': 'x'}",  # Python, not JSON
        b'{"pod_name": "x",}',  # trailing comma
        b'{"timeout_seconds": NaN}',
        b'{"timeout_seconds": Infinity}',
        b'{"timeout_seconds": -Infinity}',
        b'{"timeout_seconds": ' + b"9" * 5000 + b"}",  # an integer beyond int()'s digit limit
        b"[" * 30_000 + b"]" * 30_000,  # nesting deep enough to exhaust the recursion limit
        b'{"pod_name": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        SEED + b"garbage",
    ],
    ids=["empty", "blank", "null", "array", "string", "python", "trailing-comma", "nan", "infinity", "-infinity",
         "huge-integer", "deep-array", "deep-value", "trailing-garbage"],
)  # fmt: skip
async def test_bodies_that_are_not_one_json_object_are_invalid_json(
    client: Client, service: FakeService, data: bytes
) -> None:
    await refusal(await post(client, data), 400, "invalid_json")
    assert service.submitted == []


async def test_duplicate_keys_are_invalid_json(client: Client, service: FakeService) -> None:
    data = (
        b'{"pod_name": "harmless", "pod_namespace": "sandbox", "source_node": "a", "target_node": "b",'
        b' "pod_name": "tensorflow-ai-workload", "pod_namespace": "default"}'
    )
    await refusal(await post(client, data), 400, "invalid_json")
    assert service.submitted == []


# --- names that only look like names -----------------------------------------------------------------------------

LOOKALIKES = [
    ("pod_name", "tensorflow\u2010ai-workload"),  # U+2010 HYPHEN
    ("pod_name", "tensorflow-ai-w\u043erkload"),  # U+043E CYRILLIC SMALL LETTER O
    ("pod_name", "tensorflow-ai-workload\u200b"),  # zero-width space
    ("pod_name", "Tensorflow-ai-workload"),  # upper case
    ("pod_name", "\uff54ensorflow"),  # fullwidth t
    ("pod_name", "tensorflow-ai-workload\n"),  # a trailing newline ($ would match it)
    ("pod_name", "../../etc/passwd"),
    ("pod_name", "a" * 254),
    ("pod_namespace", "d\u0435fault"),  # U+0435 CYRILLIC SMALL LETTER IE
    ("pod_namespace", "kube-system.evil"),  # a subdomain where a label is required
    ("pod_namespace", "default\x00"),
    ("pod_namespace", "a" * 64),
    ("source_node", "gpu\u20101"),
    ("source_node", "node-a."),
    ("target_node", "\u0261pu-2"),  # Latin small script g
    ("target_node", "gpu-2 "),
    ("target_node", "-gpu-2"),
    ("target_node", "gpu_2"),
]


@pytest.mark.parametrize(("field", "value"), LOOKALIKES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(LOOKALIKES)])
async def test_lookalike_and_invalid_names_are_400_naming_the_field(
    client: Client, service: FakeService, field: str, value: str
) -> None:
    response = await client.post("/api/migrations", json={**SEED_BODY, field: value}, headers=AUTH)
    body = await refusal(response, 400, "invalid_request")
    assert list(body["details"]["fields"]) == [field]
    assert service.submitted == []


@pytest.mark.parametrize(
    "query",
    ["namespace=d%D0%B5fault", "pod=..%2Fetc", "namespace=default&namespace=kube-system", "limit=1e3",
     "limit=%EF%BC%91", "continue=..%2F..%2F", "status=running%00"],
)  # fmt: skip
async def test_listing_filters_that_are_not_names_are_400(client: Client, query: str) -> None:
    response = await client.get(f"/api/migrations?{query}", headers=AUTH)
    body = await refusal(response, 400, "invalid_continue" if query.startswith("continue") else "invalid_request")
    assert body["details"]["fields"]
