"""HTTP load generator for the orchestrator's REST API, run as its own process (so its CPU is not the server's):

    python -m bench.api_load --url URL [--method POST --body JSON] --rate 500 --duration 15      # open loop
    python -m bench.api_load --url URL --closed --concurrency 32 --duration 5                    # closed loop

Open loop: request i is due at start + i/rate whether or not earlier answers came back (no coordinated omission);
latency is measured from the moment it was actually sent, and the send lag (sent - due, this process's own delay) is
reported separately. Closed loop: `concurrency` clients send back to back; the completions per second are the
sustained rate. Every request has a timeout; prints one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.stats import scaled, summary


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    first_sent: float = float("inf")
    last_done: float = 0.0

    def to_json(self, *, sent: int, dropped: int, elapsed: float) -> dict[str, Any]:
        ok = len(self.latencies)
        window = self.last_done - self.first_sent if ok else None  # no answer: no rate (not a made-up window)
        return {
            "sent": sent,
            "ok": ok,
            "errors": dict(self.errors),
            "error_count": sum(self.errors.values()) + dropped,
            "dropped_over_in_flight_cap": dropped,
            "elapsed_s": round(elapsed, 3),
            "achieved_rps": round(ok / window, 1) if window is not None and window > 0 else None,
            "latency_ms": summary(scaled(self.latencies, 1000), digits=3),
            "send_lag_ms": summary(scaled(self.lags, 1000), digits=3),
        }


@dataclass(frozen=True)
class Target:
    method: str
    url: str
    body: bytes | None
    expect: int
    timeout: float


async def _one(http: aiohttp.ClientSession, target: Target, tally: Tally, due: float | None) -> None:
    sent = time.perf_counter()
    tally.first_sent = min(tally.first_sent, sent)
    if due is not None:
        tally.lags.append(max(0.0, sent - due))
    headers = {"Content-Type": "application/json"} if target.body is not None else None
    try:
        async with asyncio.timeout(target.timeout):
            async with http.request(target.method, target.url, data=target.body, headers=headers) as response:
                await response.read()
                status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        tally.errors[type(error).__name__] += 1
        return
    done = time.perf_counter()
    tally.last_done = max(tally.last_done, done)
    if status == target.expect:
        tally.latencies.append(done - sent)
    else:
        tally.errors[f"http_{status}"] += 1


async def open_loop(target: Target, *, rate: float, duration: float, max_in_flight: int) -> dict[str, Any]:
    tally, dropped, count = Tally(), 0, int(rate * duration)
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    async with aiohttp.ClientSession(connector=connector) as http:
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.05
        for index in range(count):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule of an open-loop generator
            if len(tasks) >= max_in_flight:
                dropped += 1
                continue
            task = asyncio.create_task(_one(http, target, tally, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=target.timeout + 1)
        elapsed = time.perf_counter() - start
    result = tally.to_json(sent=count - dropped, dropped=dropped, elapsed=elapsed)
    result.update(mode="open", target_rps=rate, duration_s=duration)
    return result


async def closed_loop(target: Target, *, concurrency: int, duration: float) -> dict[str, Any]:
    tally = Tally()
    sent = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        start = time.perf_counter()
        deadline = start + duration

        async def client() -> None:
            nonlocal sent
            while time.perf_counter() < deadline:
                sent += 1
                await _one(http, target, tally, None)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    result = tally.to_json(sent=sent, dropped=0, elapsed=elapsed)
    result.update(mode="closed", concurrency=concurrency, duration_s=duration)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", help="JSON request body")
    parser.add_argument("--expect", type=int, default=200, help="the status that counts as success")
    parser.add_argument("--rate", type=float, default=500.0, help="open loop: requests per second")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds")
    parser.add_argument("--closed", action="store_true", help="closed loop instead of open loop")
    parser.add_argument("--concurrency", type=int, default=32, help="closed loop: clients")
    parser.add_argument("--max-in-flight", type=int, default=1000, help="open loop: beyond this, count as dropped")
    parser.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    args = parser.parse_args()
    body = json.dumps(json.loads(args.body)).encode() if args.body else None
    target = Target(args.method.upper(), args.url, body, args.expect, args.timeout)
    if args.closed:
        result = asyncio.run(closed_loop(target, concurrency=args.concurrency, duration=args.duration))
    else:
        result = asyncio.run(
            open_loop(target, rate=args.rate, duration=args.duration, max_in_flight=args.max_in_flight)
        )
    result.update(method=target.method, url=args.url)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
