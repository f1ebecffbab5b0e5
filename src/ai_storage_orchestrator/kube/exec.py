"""Exec into a container through the API server's websocket: the only exec code of the orchestrator.

Commands are argv lists (never a shell string). One exec is one websocket (``v5.channel.k8s.io``, falling back to
``v4.channel.k8s.io`` on API servers older than 1.30): stdin is written in chunks, stdout/stderr arrive as chunks in the
order the server sends them, and the exit status is read from the error channel (3). ``v5`` can half-close stdin
(CLOSE frame), so a command reading stdin sees end-of-file; on ``v4`` stdin only ends with the connection.

Nothing here buffers a whole stream: a caller that pipes one exec's stdout into another's stdin holds one websocket
frame at a time, and aiohttp's flow control pauses the reading side while the writing side drains.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.stream import WsApiClient

STDIN_CHANNEL = 0
STDOUT_CHANNEL = 1
STDERR_CHANNEL = 2
ERROR_CHANNEL = 3
CLOSE_CHANNEL = 255  # v5: "close this stream" signal, followed by the stream's channel number

V5_PROTOCOL = "v5.channel.k8s.io"
V4_PROTOCOL = "v4.channel.k8s.io"

# A Go exec.ExitError rendered into the status message: what kubelets that do not fill in the ExitCode cause (KWOK's
# local exec, some virtual kubelets) send for a command that exited non-zero.
_EXIT_STATUS_IN_MESSAGE = re.compile(r"exit status (\d+)\s*$")
_MAX_FRAME = 256 * 1024  # stdin frames: larger ones buy nothing, smaller ones cost throughput (~80 MiB/s at 16 KiB)


class ExecError(Exception):
    """The exec could not be carried out: refused by the API server (``status`` is the HTTP status of the websocket
    handshake), the connection broke before an exit status arrived (``status`` 0), or it ran out of time."""

    def __init__(self, message: str, *, status: int = 0, timed_out: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.timed_out = timed_out


@dataclass(frozen=True, slots=True)
class ExecStatus:
    """How the command ended. ``exit_code`` is None when the command did not report one: it never started (no such
    executable, container not running, exec not supported by the node) -- ``message`` says why."""

    exit_code: int | None
    message: str = ""

    @property
    def success(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        if self.exit_code is None:
            return f"did not run: {self.message}"
        return f"exit {self.exit_code}" + (f" ({self.message})" if self.exit_code and self.message else "")


def parse_status(payload: bytes | str) -> ExecStatus:
    """The error channel's ``metav1.Status`` as an ExecStatus."""
    try:
        status = json.loads(payload)
    except ValueError:
        return ExecStatus(None, f"unreadable exec status: {payload[:200]!r}")
    if not isinstance(status, dict):
        return ExecStatus(None, f"unreadable exec status: {status!r}")
    if status.get("status") == "Success":
        return ExecStatus(0)
    message = str(status.get("message") or status.get("reason") or "exec failed")
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return ExecStatus(int(cause.get("message")), message)
            except (TypeError, ValueError):
                break
    found = _EXIT_STATUS_IN_MESSAGE.search(message)
    if found:
        return ExecStatus(int(found.group(1)), message)
    return ExecStatus(None, message)


class ExecSession:
    """One running command. Read its output with ``output()`` (until it ends, then ``status`` is set); feed stdin
    with ``write()`` and end it with ``close_stdin()``. Reading and writing may run in different tasks."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, protocol: str, stdin: bool) -> None:
        self._ws = ws
        self.protocol = protocol
        self._stdin_open = stdin
        self.status: ExecStatus | None = None

    async def write(self, data: bytes) -> None:
        """Send stdin; large chunks are split into frames of at most 256 KiB. Raises ExecError once the command has
        gone (its end of the connection is closed)."""
        if not self._stdin_open:
            raise ExecError("stdin of this exec is closed or was not requested")
        view = memoryview(data)
        for start in range(0, len(view), _MAX_FRAME):
            if self._ws.closed:
                raise ExecError("the command ended before all of stdin was sent")
            try:
                await self._ws.send_bytes(bytes([STDIN_CHANNEL]) + view[start : start + _MAX_FRAME])
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as error:
                raise ExecError(f"the command ended before all of stdin was sent: {error}") from error

    async def close_stdin(self) -> None:
        """Signal end-of-file on stdin (v5); on v4 there is no such signal and this only stops further writes."""
        if not self._stdin_open:
            return
        self._stdin_open = False
        if self.protocol == V5_PROTOCOL and not self._ws.closed:
            try:
                await self._ws.send_bytes(bytes([CLOSE_CHANNEL, STDIN_CHANNEL]))
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as error:
                raise ExecError(f"could not close stdin: {error}") from error

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """``(STDOUT_CHANNEL | STDERR_CHANNEL, data)`` chunks until the command ends; then ``status`` is set.

        Raises ExecError when the connection ends without an exit status."""
        async for message in self._ws:
            if message.type is aiohttp.WSMsgType.BINARY:
                data: bytes = message.data
            elif message.type is aiohttp.WSMsgType.TEXT:
                data = message.data.encode()
            elif message.type is aiohttp.WSMsgType.ERROR:
                raise ExecError(f"exec connection failed: {self._ws.exception()!r}")
            else:
                break
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == ERROR_CHANNEL:
                if payload:
                    self.status = parse_status(payload)
            elif channel in (STDOUT_CHANNEL, STDERR_CHANNEL) and payload:
                yield channel, payload
        if self.status is None:
            raise ExecError(f"exec connection closed without an exit status (close code {self._ws.close_code})")

    async def wait(self) -> ExecStatus:
        """Discard the remaining output and return the status."""
        async for _ in self.output():
            pass
        assert self.status is not None
        return self.status


class KubeExec:
    """Opens exec sessions with the credentials of a kubernetes_asyncio ApiClient (one websocket client per exec, so
    nothing outlives the session)."""

    def __init__(self, api_client: Any, *, heartbeat: float = 30.0) -> None:
        self._configuration = api_client.configuration
        self._heartbeat = heartbeat

    @asynccontextmanager
    async def session(
        self, *, namespace: str, pod: str, container: str, argv: Sequence[str], stdin: bool = False
    ) -> AsyncIterator[ExecSession]:
        """An exec of ``argv`` in ``container``; leaving the block closes the connection (which ends the command if
        it still runs). The caller bounds the whole exchange with ``asyncio.timeout``."""
        if not argv:
            raise ValueError("an exec needs a command")
        async with WsApiClient(configuration=self._configuration, heartbeat=self._heartbeat) as ws_client:
            ws, protocol = await self._connect(ws_client, namespace, pod, container, list(argv), stdin)
            try:
                yield ExecSession(ws, protocol=protocol, stdin=stdin)
            finally:
                await ws.close()

    async def _connect(
        self, ws_client: Any, namespace: str, pod: str, container: str, argv: list[str], stdin: bool
    ) -> tuple[aiohttp.ClientWebSocketResponse, str]:
        core: Any = client.CoreV1Api(ws_client)  # its generated stubs do not know _headers or argv lists
        last: ExecError | None = None
        for protocol in (V5_PROTOCOL, V4_PROTOCOL):
            try:
                connecting = await core.connect_get_namespaced_pod_exec(
                    pod,
                    namespace,
                    command=argv,
                    container=container,
                    stdin=stdin,
                    stdout=True,
                    stderr=True,
                    tty=False,
                    _preload_content=False,
                    _headers={"sec-websocket-protocol": protocol},
                )
                ws: aiohttp.ClientWebSocketResponse = await connecting
            except aiohttp.WSServerHandshakeError as error:
                last = ExecError(
                    f"exec into {namespace}/{pod} container {container} refused: HTTP {error.status} {error.message}",
                    status=error.status,
                )
                if error.status in (401, 403, 404):
                    break  # not a protocol problem: v4 would be refused too
                continue
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                raise ExecError(f"exec into {namespace}/{pod} container {container}: {error!r}") from error
            return ws, protocol
        assert last is not None
        raise last
