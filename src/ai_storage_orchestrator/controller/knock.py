"""The knock: open a pre-warmed target's gate at once, by an exec that writes the hand-off token into the gate's own
volume (controller/planning/gate.py), beside the hand-off annotation.

Why both: the annotation is the durable record and opens the gate on any node, but the kubelet refreshes the file
that shows it only in a sync of the pod, and that sync first waits for the kubelet's next relist of its containers
(every second). Measured on real nodes (tests/cluster/runtime_timing.py): 0.81-0.85 s from the source trainer's exit
to the gate's exit with the annotation alone. The knock is one exec (pods/exec, which the checkpoint already needs).
It is best effort: a knock that fails or times out changes nothing but the next knocks on that node (skipped for a
while), the annotation still opens the gate.

The knock's exec is opened ahead (``prepare``, once the target has proven it can start, before the source is
evicted): its command then only waits for the token on stdin, and the hand-off costs one websocket message instead of
an exec's start (0.04-0.08 s on real nodes). The token itself is written only where the annotation is, after a live
read showed the source's containers stopped: the knock opens nothing earlier than the annotation would.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import structlog

from ai_storage_orchestrator.checkpoint.transport import CommandResult, ExecError, ExecTransport, finish, run
from ai_storage_orchestrator.controller.execsupport import ExecSupport
from ai_storage_orchestrator.controller.planning.gate import GATE_CONTAINER, KNOCK_COMMAND

log = structlog.get_logger("ai_storage_orchestrator.migration")
KNOCK_TIMEOUT_SECONDS = 2.0
# SIGKILL: the gate's container ended as the knock's command did. The command's write through the door is its last
# act, and the gate exits a few milliseconds after it; containerd kills what is left of a container whose first
# process exited and may report the command so before it has seen the command's own exit (1 knock of 16 on real
# nodes). The gate opened, by this knock or by the annotation: not a fault of the node's exec.
GATE_ENDED_EXIT_CODE = 137
# How long an exec opened ahead waits for its token before it is closed (a knock after that opens its own): beyond
# any source's usual stop, short enough that an abandoned one is not kept.
DOOR_SECONDS = 120.0


class GateKnocker(Protocol):
    def prepare(self, *, namespace: str, pod: str, node: str) -> None:
        """Open the knock's exec into the gate of `pod` ahead of the hand-off; returns at once (best effort)."""
        ...

    async def knock(self, *, namespace: str, pod: str, node: str, token: str) -> str | None:
        """Write `token` into the gate of `pod` on `node`; None when done, else why not (never raises)."""
        ...

    async def close(self) -> None:
        """Close the execs opened ahead (this replica stops acting)."""
        ...

    def discard(self, *, namespace: str, pod: str) -> None:
        """Close the exec opened ahead into `pod`, if any: the pod is being removed (returns at once)."""
        ...


class _Door:
    """A knock's exec opened ahead of the hand-off. Its outcome: the command's result once it had the token, the
    ExecError that kept it from opening, or None when it was closed unused (no token within `wait_seconds`)."""

    def __init__(self, transport: ExecTransport, *, namespace: str, pod: str, wait_seconds: float) -> None:
        self.token: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(
            self._run(transport, namespace, pod, wait_seconds), name=f"knock-door {namespace}/{pod}"
        )

    async def _run(
        self, transport: ExecTransport, namespace: str, pod: str, wait_seconds: float
    ) -> CommandResult | ExecError | None:
        try:
            async with transport.session(
                namespace=namespace, pod=pod, container=GATE_CONTAINER, argv=KNOCK_COMMAND, stdin=True
            ) as session:
                try:
                    async with asyncio.timeout(wait_seconds):
                        token = await asyncio.shield(self.token)
                except TimeoutError:
                    return None
                return await finish(session, stdin=f"{token}\n".encode(), max_stdout=1024)
        except ExecError as error:
            return error


class ExecKnocker:
    """Knocks by exec; a node where a knock failed is not knocked on again for ``ExecSupport``'s TTL (10 min), so a
    node without exec (a virtual kubelet, streaming turned off) costs one failed exec, not one per move. What it
    learns stays here: the checkpoint's own knowledge of exec (controller/execsupport.py) decides whether a checkpoint
    is skipped, and a knock that failed for another reason must not decide that."""

    def __init__(
        self,
        transport: ExecTransport,
        *,
        timeout: float = KNOCK_TIMEOUT_SECONDS,
        door_seconds: float = DOOR_SECONDS,
    ) -> None:
        self.transport = transport
        self.timeout = timeout
        self.door_seconds = door_seconds
        self.answers = ExecSupport()
        self._doors: dict[tuple[str, str], _Door] = {}

    def prepare(self, *, namespace: str, pod: str, node: str) -> None:
        key = (namespace, pod)
        if key in self._doors or self.answers.works(node) is False:
            return
        door = _Door(self.transport, namespace=namespace, pod=pod, wait_seconds=self.door_seconds)
        self._doors[key] = door
        started = time.monotonic()
        door.task.add_done_callback(lambda _task: self._closed(key, door, node, started))

    def holds(self, *, namespace: str, pod: str) -> bool:
        """Whether an exec opened ahead waits for this pod's token."""
        return (namespace, pod) in self._doors

    def _closed(self, key: tuple[str, str], door: _Door, node: str, started: float) -> None:
        """A door that ends before its token (it could not open, it waited too long, this replica stops) is
        forgotten; one that could not open also bars its node, as a failed knock does."""
        if self._doors.get(key) is door:
            del self._doors[key]
        if door.task.cancelled() or door.token.done():
            return  # closed by `close`, or used by a knock, which reports it
        error = door.task.exception()
        outcome = error if error is not None else door.task.result()
        if outcome is not None:
            self.answers.note(node, works=False)
            seconds = round(time.monotonic() - started, 3)
            log.info("gate.knock_failed", target_pod=key[1], node=node, seconds=seconds, reason=str(outcome))

    def discard(self, *, namespace: str, pod: str) -> None:
        door = self._doors.pop((namespace, pod), None)
        if door is not None:
            door.task.cancel()  # a cancelled door bars nothing (`_closed`)

    async def close(self) -> None:
        doors, self._doors = list(self._doors.values()), {}
        for door in doors:
            door.task.cancel()
        await asyncio.gather(*(door.task for door in doors), return_exceptions=True)

    async def knock(self, *, namespace: str, pod: str, node: str, token: str) -> str | None:
        door = self._doors.pop((namespace, pod), None)
        if door is None and self.answers.works(node) is False:
            return f"a knock on node {node} failed less than {self.answers.ttl_seconds:.0f}s ago"
        started = time.monotonic()
        ahead = ended = False
        try:
            async with asyncio.timeout(self.timeout):
                result = await self._through(door, token) if door is not None else None
                ahead = result is not None
                if result is None:
                    result = await run(
                        self.transport,
                        namespace=namespace,
                        pod=pod,
                        container=GATE_CONTAINER,
                        argv=KNOCK_COMMAND,
                        stdin=f"{token}\n".encode(),
                        max_stdout=1024,
                    )
        except TimeoutError:
            failure: str | None = f"no answer within {self.timeout}s"
        except ExecError as error:
            failure = str(error)
        else:
            ended = result.status.exit_code == GATE_ENDED_EXIT_CODE
            failure = None if result.success or ended else result.describe()
        seconds = round(time.monotonic() - started, 3)
        self.answers.note(node, works=failure is None)
        if failure is None:
            log.info("gate.knocked", target_pod=pod, node=node, seconds=seconds, opened_ahead=ahead, gate_ended=ended)
        else:
            log.info("gate.knock_failed", target_pod=pod, node=node, seconds=seconds, reason=failure)
        return failure

    @staticmethod
    async def _through(door: _Door, token: str) -> CommandResult | None:
        """The knock through an exec opened ahead; None when it closed unused (the caller opens another). Raises the
        ExecError that kept it from opening: a new exec would most likely meet the same."""
        if not door.task.done():
            door.token.set_result(token)
        outcome = await door.task
        if isinstance(outcome, ExecError):
            raise outcome
        return outcome
