"""What every attack of this suite checks about a refusal, and the identities it attacks with."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientResponse

from tests.unit.api.fakes import FakeReviewApi

JSON = dict[str, Any]

ALICE = {"username": "alice", "uid": "u-1", "groups": ["system:authenticated"]}
MALLORY = {"username": "mallory", "uid": "u-2", "groups": ["system:authenticated"]}
ALICE_TOKEN = "alice-token"
MALLORY_TOKEN = "mallory-token"
# A default service-account token: minted for the API server, not for the orchestrator (the relay attack).
REPLAYED_TOKEN = "api-server-token"
# alice may move and see pods in `default`; mallory may do nothing anywhere.
GRANTS = {("alice", verb, "default") for verb in ("create", "delete", "get", "list")}


def review_api() -> FakeReviewApi:
    return FakeReviewApi(
        users={ALICE_TOKEN: ALICE, MALLORY_TOKEN: MALLORY, REPLAYED_TOKEN: ALICE},
        grants=set(GRANTS),
        audiences={REPLAYED_TOKEN: ["https://kubernetes.default.svc.cluster.local"]},
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refusal(response: ClientResponse, status: int, reason: str) -> JSON:
    """The JSON error of DESIGN.md §3 -- exactly ``{"error", "message", "details"}`` -- with this status and reason."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json", text
    body: JSON = await response.json()
    assert set(body) == {"error", "message", "details"}, body
    assert body["error"] == reason, body
    assert isinstance(body["message"], str), body
    assert body["message"], body
    assert isinstance(body["details"], dict), body
    return body


async def raw_exchange(port: int, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send `request` bytes as they are over one TCP connection to 127.0.0.1:`port`; everything the server answers
    until it closes the connection (requests here say ``Connection: close`` or are refused, which closes it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def status_line(answer: bytes) -> tuple[int, bytes]:
    """The status code and the body of a raw HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body
