"""A canned orchestrator API on 127.0.0.1 (a real aiohttp server) and helpers to run CLI commands against it."""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ai_storage_orchestrator.cli import build_parser
from ai_storage_orchestrator.cli.client import execute
from ai_storage_orchestrator.controller.records import migration_resource, to_api
from ai_storage_orchestrator.models import MigrationRequest

JSON = dict[str, Any]
MIGRATION_ID = "0123456789ab"
CREATED = "2024-05-01T10:00:00Z"

CONTAINERS = [
    {
        "name": "data-prep",
        "kind": "init",
        "state": "terminated (exit 0, Completed)",
        "action": "skip",
        "reason": "finished; its output is on the shared volume",
    },
    {"name": "trainer", "kind": "container", "state": "running", "action": "migrate", "reason": "still running"},
]


def migration(phase: str, message: str = "working", *, migration_id: str = MIGRATION_ID, **status: Any) -> JSON:
    """A migration object exactly as the API presents it (built by the code that builds the real one)."""
    request = MigrationRequest(pod_name="trainer", pod_namespace="ml", source_node="node-a", target_node="node-b")
    resource = migration_resource(request, migration_id)
    resource["metadata"]["creationTimestamp"] = CREATED
    resource["status"] = {"phase": phase, "message": message, **status}
    return to_api(resource)


def finished(phase: str, message: str, **status: Any) -> JSON:
    return migration(
        phase,
        message,
        startedAt="2024-05-01T10:00:01Z",
        finishedAt="2024-05-01T10:00:13.5Z",
        strategy="make-before-break",
        targetPod=f"trainer-migrated-{MIGRATION_ID[:5]}",
        containers=CONTAINERS,
        resources={
            "before": {"cpu_millicores": 1500, "memory_bytes": 3 << 30},
            "after": {"cpu_millicores": 1000, "memory_bytes": 2 << 30},
        },
        phaseTransitions=[
            {"phase": "Validating", "time": "2024-05-01T10:00:01Z", "message": "checking"},
            {"phase": phase, "time": "2024-05-01T10:00:13.5Z", "message": message},
        ],
        **status,
    )


def error_body(reason: str, message: str, **details: Any) -> JSON:
    return {"error": reason, "message": message, "details": details}


@dataclass
class Seen:
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class CannedApi:
    """Answers from queues: each route (e.g. ``GET /api/migrations/{id}``) pops its next (status, body); the last
    one repeats."""

    url: str = ""
    answers: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    hold: asyncio.Event | None = None  # when set, every answer waits for it

    def answer(self, route: str, *responses: tuple[int, Any]) -> None:
        self.answers[route] = list(responses)

    def requests(self, method: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.seen.append(
            Seen(request.method, request.path, request.raw_path, dict(request.query), dict(request.headers), body)
        )
        if self.hold is not None:
            await self.hold.wait()
        item = "/{id}" if "migration_id" in request.match_info else ""
        route = f"{request.method} /api/migrations{item}"
        queue = self.answers.get(route)
        if not queue:
            return web.json_response(error_body("not_canned", f"no answer for {route}"), status=500)
        status, payload = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(payload, str):
            return web.Response(status=status, text=payload, content_type="text/html")
        return web.json_response(payload, status=status, headers={"X-Request-ID": "req-canned"})


@pytest.fixture
async def api() -> AsyncIterator[CannedApi]:
    canned = CannedApi()
    app = web.Application()
    app.router.add_route("*", "/api/migrations", canned.handle)
    app.router.add_route("*", "/api/migrations/{migration_id}", canned.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    canned.url = str(server.make_url("")).rstrip("/")
    yield canned
    await server.close()


def parse(argv: Sequence[str]) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


async def run_cli(argv: Sequence[str]) -> int:
    """Run a command in the test's event loop (``main`` would start its own with asyncio.run)."""
    args = parse(argv)
    return await execute(args.command_coroutine, args)


_TERMINAL_TOKEN = re.compile(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)")


def screen(text: str) -> list[str]:
    """The non-empty lines a terminal shows after ``text``: carriage returns, line erasing (CSI K), cursor up (CSI
    A) applied; colours and cursor visibility dropped."""
    lines, row, col = [""], 0, 0
    for token in filter(None, _TERMINAL_TOKEN.split(text)):
        if token == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif token == "\r":
            col = 0
        elif token.startswith("\x1b["):
            argument, final = token[2:-1], token[-1]
            if final == "K":
                lines[row] = "" if argument == "2" else lines[row][:col]
            elif final == "A":
                row = max(0, row - int(argument or 1))
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + len(token) :]
            col += len(token)
    return [line.rstrip() for line in lines if line.strip()]
