"""The knock: open a pre-warmed target's gate at once, by an exec that writes the hand-off token into the gate's own
volume (controller/planning/gate.py), beside the hand-off annotation.

Why both: the annotation is the durable record and opens the gate on any node, but the kubelet refreshes the file
that shows it only in a sync of the pod, and that sync first waits for the kubelet's next relist of its containers
(every second). Measured on real nodes (tests/cluster/runtime_timing.py): 0.81-0.85 s from the source trainer's exit
to the gate's exit with the annotation alone. The knock is one exec (pods/exec, which the checkpoint already needs).
It is best effort: a knock that fails or times out changes nothing but the next knocks on that node (skipped for a
while), the annotation still opens the gate.

Only ever called where the annotation is written, after a live read showed the source's containers stopped: the
knock opens nothing earlier than the annotation would.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import structlog

from ai_storage_orchestrator.checkpoint.transport import ExecError, ExecTransport, run
from ai_storage_orchestrator.controller.execsupport import ExecSupport
from ai_storage_orchestrator.controller.planning.gate import GATE_CONTAINER, KNOCK_COMMAND

log = structlog.get_logger("ai_storage_orchestrator.migration")
KNOCK_TIMEOUT_SECONDS = 2.0


class GateKnocker(Protocol):
    async def knock(self, *, namespace: str, pod: str, node: str, token: str) -> str | None:
        """Write `token` into the gate of `pod` on `node`; None when done, else why not (never raises)."""
        ...


class ExecKnocker:
    """Knocks by exec; a node where a knock failed is not knocked on again for ``ExecSupport``'s TTL (10 min), so a
    node without exec (a virtual kubelet, streaming turned off) costs one failed exec, not one per move. What it
    learns stays here: the checkpoint's own knowledge of exec (controller/execsupport.py) decides whether a checkpoint
    is skipped, and a knock that failed for another reason must not decide that."""

    def __init__(self, transport: ExecTransport, *, timeout: float = KNOCK_TIMEOUT_SECONDS) -> None:
        self.transport = transport
        self.timeout = timeout
        self.answers = ExecSupport()

    async def knock(self, *, namespace: str, pod: str, node: str, token: str) -> str | None:
        if self.answers.works(node) is False:
            return f"a knock on node {node} failed less than {self.answers.ttl_seconds:.0f}s ago"
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                result = await run(
                    self.transport,
                    namespace=namespace,
                    pod=pod,
                    container=GATE_CONTAINER,
                    argv=KNOCK_COMMAND,
                    stdin=token.encode(),
                    max_stdout=1024,
                )
        except TimeoutError:
            failure: str | None = f"no answer within {self.timeout}s"
        except ExecError as error:
            failure = str(error)
        else:
            failure = None if result.success else result.describe()
        seconds = round(time.monotonic() - started, 3)
        self.answers.note(node, works=failure is None)
        if failure is None:
            log.info("gate.knocked", target_pod=pod, node=node, seconds=seconds)
        else:
            log.info("gate.knock_failed", target_pod=pod, node=node, seconds=seconds, reason=failure)
        return failure
