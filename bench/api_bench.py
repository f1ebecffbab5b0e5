"""Item 4: REST API latency and sustained rate, driven by bench.api_load in a separate process against the
orchestrator child of the migration stage (GET of a finished migration, POST dry_run of a live pod)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bench.render import labelled, value
from bench.stage import Stage


async def load(args: Sequence[str], *, limit: float) -> dict[str, Any]:
    """Run the load generator process and return its JSON result (or the error, if it failed)."""
    command = [sys.executable, "-m", "bench.api_load", *args]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        return {"error": f"load generator did not finish within {limit}s", "command": " ".join(command[1:])}
    if process.returncode != 0:
        return {"error": err.decode(errors="replace")[-2000:], "command": " ".join(command[1:])}
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["command"] = "python " + " ".join(command[1:])
    return result


async def run_api(
    stage: Stage, *, migration_id: str, quick: bool, say: Callable[[str], None] = print
) -> dict[str, Any]:
    get_url = f"{stage.migrations_url}/{migration_id}"
    probe = "api-probe"
    await stage.prepare(probe, run=probe)
    await stage.orchestrator_sees_completed(probe)
    dry_run = json.dumps(stage.request_body(probe, dry_run=True))
    duration = 5.0 if quick else 15.0
    plans: dict[str, list[str]] = {
        "get_open": ["--url", get_url, "--rate", "500", "--duration", str(duration)],
        "get_closed": ["--url", get_url, "--closed", "--concurrency", "32", "--duration", "5"],
        "dry_run_open": [
            "--url", stage.migrations_url, "--method", "POST", "--body", dry_run,
            "--rate", "200", "--duration", str(duration if quick else 10.0),
        ],
        "dry_run_closed": [
            "--url", stage.migrations_url, "--method", "POST", "--body", dry_run,
            "--closed", "--concurrency", "32", "--duration", "5",
        ],
    }  # fmt: skip
    results: dict[str, Any] = {}
    for name, args in plans.items():
        cpu_before = stage.orchestrator.cpu_seconds()
        results[name] = await load(args, limit=duration + 60)
        cpu_after = stage.orchestrator.cpu_seconds()
        measured = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 2)
        results[name]["server_cpu_s"] = measured  # None: the orchestrator was gone, not 0 s
        latency = results[name].get("latency_ms")
        say(
            f"  {name:<15} {value(results[name].get('achieved_rps'), 'req/s')}, {labelled(latency)}, "
            f"errors {results[name].get('error_count', results[name].get('error'))}"
        )
    await stage.clean(probe)
    return results
