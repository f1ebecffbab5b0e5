"""Quiesce hooks: each declared argv runs through exec in its container, one after the other, before anything is
copied. Exit code, duration and the size of the output are recorded; a non-zero exit, a timeout or an exec that
cannot run fails the checkpoint (``checkpoint_hook_failed``) and the hooks after it do not run.

The output itself is the workload's (it may be the pod's service-account token) and is never recorded: not in the
result (status, manifest), not in the error (status, Events). A failed hook's log line ``checkpoint.hook_failed``
carries a short redacted summary of its end (``checkpoint.redaction``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from ai_storage_orchestrator.checkpoint.annotations import CheckpointSpec, Hook
from ai_storage_orchestrator.checkpoint.errors import HOOK_FAILED, CheckpointError
from ai_storage_orchestrator.checkpoint.manifest import HookResult
from ai_storage_orchestrator.checkpoint.redaction import redact, summarise
from ai_storage_orchestrator.checkpoint.transport import ExecTransport, Tail
from ai_storage_orchestrator.kube.exec import ExecError

log = structlog.get_logger(__name__)

MESSAGE_LIMIT = 300  # characters of an exec's own failure message (not the hook's output) kept in the result


async def run_hook(
    transport: ExecTransport, *, namespace: str, pod: str, hook: Hook, timeout: float, clock: Callable[[], str]
) -> HookResult:
    started_at, started = clock(), time.monotonic()
    output = Tail()
    received = 0
    exit_code: int | None = None
    message = ""
    timed_out = False
    try:
        async with (
            asyncio.timeout(timeout),
            transport.session(namespace=namespace, pod=pod, container=hook.container, argv=hook.argv) as session,
        ):
            async for _channel, data in session.output():
                output.add(data)
                received += len(data)
            assert session.status is not None
            exit_code = session.status.exit_code
            message = "" if session.status.success else session.status.message
    except TimeoutError:
        timed_out, message = True, f"timed out after {timeout:g}s"
    except ExecError as error:
        message = str(error)
    result = HookResult(
        container=hook.container,
        command=hook.argv,
        exit_code=exit_code,
        duration_seconds=time.monotonic() - started,
        output_bytes=received,
        started_at=started_at,
        timed_out=timed_out,
        message=redact(message)[:MESSAGE_LIMIT],
    )
    if not result.success:
        log.warning(
            "checkpoint.hook_failed",
            container=hook.container,
            exit_code=exit_code,
            timed_out=timed_out,
            output_bytes=received,
            output=summarise(output.text(), truncated=received > output.limit),
        )
    return result


async def run_hooks(
    transport: ExecTransport, *, namespace: str, pod: str, spec: CheckpointSpec, clock: Callable[[], str]
) -> list[HookResult]:
    """Every hook of ``spec`` in order; CheckpointError(checkpoint_hook_failed) at the first that fails, with the
    results so far in ``details["hooks"]``."""
    results: list[HookResult] = []
    for hook in spec.hooks:
        result = await run_hook(
            transport, namespace=namespace, pod=pod, hook=hook, timeout=spec.hook_timeout, clock=clock
        )
        results.append(result)
        log.info(
            "checkpoint.hook_finished",
            container=hook.container,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            seconds=round(result.duration_seconds, 3),
            output_bytes=result.output_bytes,
        )
        if not result.success:
            if result.timed_out:
                why = f"timed out after {spec.hook_timeout:g}s"
            elif result.exit_code is not None:
                why = f"exited with {result.exit_code}"
            else:
                why = f"could not run: {result.message}"
            raise CheckpointError(
                f"quiesce hook {list(hook.argv)} in container {hook.container} {why}"
                + (
                    f"; its output ({result.output_bytes} bytes) is not recorded here: the orchestrator's log has a"
                    " redacted summary (checkpoint.hook_failed)"
                    if result.output_bytes
                    else ""
                ),
                reason=HOOK_FAILED,
                details={"hooks": [r.to_json() for r in results]},
            )
    return results
