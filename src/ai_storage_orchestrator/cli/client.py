"""What the client commands share: the REST client, the connection options, and the runner that turns failures
into exit codes.

Exit codes: 0 success, 1 the migration failed or was cancelled (or a dry run would be refused), 2 usage errors,
HTTP errors (4xx/5xx) and an unreachable orchestrator, 130 interrupted."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from ai_storage_orchestrator.rest_client import DEFAULT_URL, InsecureTokenTransport, RestSession

JSON = dict[str, Any]

URL_ENV = "AI_STORAGE_ORCHESTRATOR_URL"
TOKEN_ENV = "AI_STORAGE_ORCHESTRATOR_TOKEN"
CA_FILE_ENV = "AI_STORAGE_ORCHESTRATOR_CA_FILE"
DEFAULT_HTTP_TIMEOUT = 30.0
MIGRATIONS_PATH = "/api/migrations"
REQUEST_ID_HEADER = "X-Request-ID"

PROGRAM = "ai-storage-orchestrator"  # how hints name this command; the kubectl plugin sets "kubectl migrate"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], Awaitable[int]]


class CliError(Exception):
    """A failure the user should read on stderr; the command exits with ``exit_code``."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def lines(self) -> list[str]:
        return [f"error: {self.message}"]


class UsageError(CliError):
    pass


class ApiError(CliError):
    """The orchestrator answered 4xx/5xx: its ``{"error", "message", "details"}`` body."""

    def __init__(self, status: int, body: Any, *, request_id: str | None = None) -> None:
        if isinstance(body, Mapping) and isinstance(body.get("message"), str):
            reason = str(body.get("error") or f"http_{status}")
            message = str(body["message"])
            details = body.get("details") if isinstance(body.get("details"), Mapping) else {}
        else:
            reason, message, details = f"http_{status}", f"the orchestrator answered HTTP {status}{_excerpt(body)}", {}
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.details: Mapping[str, Any] = details or {}
        self.body = body
        self.request_id = request_id

    def lines(self) -> list[str]:
        lines = [f"error: {self.message} ({self.reason})"]
        failed = self.details.get("failed_checks")
        if isinstance(failed, list) and len(failed) > 1:  # the first one is already the message
            lines += [f"  - {c.get('name')}: {c.get('message')}" for c in failed if isinstance(c, Mapping)]
        other = self.details.get("migration_id")
        if isinstance(other, str):
            lines.append(f"  migration already active: {other}")
        if self.request_id:
            lines.append(f"  request id: {self.request_id}")
        return lines


def _excerpt(body: Any) -> str:
    """The start of a body that is not the orchestrator's error JSON (a proxy's page, a plain-text 401), one line."""
    text = body if isinstance(body, str) else "" if body is None else repr(body)
    text = " ".join(text.split())[:200]
    return f": {text}" if text else ""


class UnreachableError(CliError):
    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"cannot reach the orchestrator at {url}: {cause}")


def add_connection_arguments(parser: argparse.ArgumentParser, *, output: bool = True) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url",
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"orchestrator REST API (default: ${URL_ENV} or {DEFAULT_URL})",
    )
    group.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=(
            "bearer token minted for the orchestrator's audience, e.g. `kubectl create token SA --audience"
            f" ai-storage-orchestrator`; sent only over https:// or to loopback (default: ${TOKEN_ENV})"
        ),
    )
    group.add_argument(
        "--ca-file",
        default=os.environ.get(CA_FILE_ENV) or None,
        metavar="PEM",
        help=(
            "trust this CA (or self-signed certificate) for an https:// --url, besides the system trust store"
            f" (default: ${CA_FILE_ENV})"
        ),
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_HTTP_TIMEOUT,
        help="seconds to wait for each HTTP response (default %(default)s)",
    )
    if output:
        parser.add_argument(
            "-o",
            "--output",
            choices=["table", "json"],
            default="table",
            help="table for people, json for scripts: the API's JSON as is (default %(default)s)",
        )


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


class ApiClient(RestSession):
    """The orchestrator's REST API over one aiohttp session; every call returns the decoded JSON body."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
        ca_file: str | None = None,
    ) -> None:
        super().__init__(url, token=token, timeout=timeout, agent="cli", ca_file=ca_file)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ApiClient:
        ca_file = getattr(args, "ca_file", None)
        try:
            return cls(args.url, token=args.token, timeout=args.timeout, ca_file=ca_file)
        except (OSError, ssl.SSLError) as error:
            raise UsageError(f"cannot use --ca-file {ca_file}: {error.strerror or error}") from None

    async def request(
        self, method: str, path: str, *, body: JSON | None = None, params: Mapping[str, str] | None = None
    ) -> Any:
        sent_id = f"cli-{uuid.uuid4().hex[:16]}"
        try:
            status, text, headers = await self.send(
                method, path, body=body, params=params, headers={REQUEST_ID_HEADER: sent_id}
            )
        except aiohttp.InvalidURL:
            raise UsageError(f"invalid orchestrator URL: {self.url!r}") from None
        except InsecureTokenTransport as error:
            raise UsageError(str(error)) from None
        except aiohttp.ClientConnectorCertificateError as error:
            hint = "" if self.ca_file else " (give --ca-file when a private CA signed it)"
            why = f"its certificate is not trusted: {error.certificate_error}{hint}"
            raise UnreachableError(self.url, why) from None
        except TimeoutError:
            raise UnreachableError(self.url, f"no answer within {self.timeout:g}s (see --timeout)") from None
        except aiohttp.ClientError as error:
            raise UnreachableError(self.url, str(error) or type(error).__name__) from None
        request_id = headers.get(REQUEST_ID_HEADER, sent_id)
        try:
            decoded: Any = json.loads(text) if text else None
        except ValueError:
            decoded = None
        if status >= 400 or decoded is None:  # a body that is not JSON (a proxy's page) is quoted, not dropped
            raise ApiError(status, text if decoded is None else decoded, request_id=request_id)
        return decoded

    async def create(self, body: JSON) -> JSON:
        result: JSON = await self.request("POST", MIGRATIONS_PATH, body=body)
        return result

    async def get(self, migration_id: str) -> JSON:
        result: JSON = await self.request("GET", _item(migration_id))
        return result

    async def list(
        self,
        *,
        status: str | None = None,
        namespace: str | None = None,
        pod: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> JSON:
        """One answer of GET /api/migrations: every match, or with `limit` one page (its `continue` token, if any,
        asks for the next)."""
        query = {"status": status, "namespace": namespace, "pod": pod, "continue": continue_token}
        params = {k: v for k, v in query.items() if v}
        if limit is not None:
            params["limit"] = str(limit)
        result: JSON = await self.request("GET", MIGRATIONS_PATH, params=params)
        return result

    async def cancel(self, migration_id: str) -> JSON:
        result: JSON = await self.request("DELETE", _item(migration_id))
        return result


def _item(migration_id: str) -> str:
    return f"{MIGRATIONS_PATH}/{quote(migration_id, safe='')}"


async def execute(command: Command, args: argparse.Namespace) -> int:
    """Run a command; a ``CliError`` becomes its lines on stderr (and the raw error JSON with --output json)."""
    try:
        return await command(args)
    except CliError as error:
        if isinstance(error, ApiError) and getattr(args, "output", None) == "json" and isinstance(error.body, Mapping):
            print_json(error.body)
        for line in error.lines():
            print(line, file=sys.stderr)
        return error.exit_code


def run(command: Command, args: argparse.Namespace) -> int:
    """The synchronous entry point ``main`` calls: one event loop per command."""
    try:
        return asyncio.run(execute(command, args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `... | head`: the reader left, which is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def set_command(parser: argparse.ArgumentParser, command: Command) -> None:
    """``handler`` is what ``main`` calls; ``command`` is the coroutine, for callers that have an event loop."""

    def handler(args: argparse.Namespace) -> int:
        return run(command, args)

    parser.set_defaults(handler=handler, command_coroutine=command)


def program_of(args: argparse.Namespace) -> str:
    """The command as the user typed it, for the hints that suggest the next one."""
    return str(getattr(args, "program", None) or PROGRAM)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))
