"""Leader election against an in-memory Lease: renewals bounded by the renew deadline, and `holds_lease` (the fence)
false as soon as another replica could have taken over."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import pytest

from ai_storage_orchestrator.controller.leadership import LeaderElector
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import Resource

pytestmark = pytest.mark.unit

JSON = dict[str, Any]


class LeaseServer:
    def __init__(self) -> None:
        self.lease: JSON | None = None
        self.version = 0
        self.stalled = asyncio.Event()  # set: every call hangs (a cut connection, a stalled API server)
        self.renewals = 0
        self.changed = asyncio.Event()  # set on every stored write and leadership change

    async def _maybe_stall(self) -> None:
        if self.stalled.is_set():
            await asyncio.Event().wait()

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON:
        await self._maybe_stall()
        if self.lease is None:
            raise KubeApiError(404, "NotFound", "no lease")
        return copy.deepcopy(self.lease)

    async def create(self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None) -> JSON:
        await self._maybe_stall()
        return self._store(dict(body))

    async def replace(self, resource: Resource, obj: Mapping[str, Any]) -> JSON:
        await self._maybe_stall()
        assert self.lease is not None
        if obj["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise KubeApiError(409, "Conflict", "stale")
        self.renewals += 1
        return self._store(dict(obj))

    def take_over(self, identity: str) -> None:
        """Another replica writes itself in as holder (as after it saw our renewals stop for a lease duration)."""
        assert self.lease is not None
        lease = copy.deepcopy(self.lease)
        lease["spec"]["holderIdentity"] = identity
        self._store(lease)

    def _store(self, body: JSON) -> JSON:
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.lease = body
        self.changed.set()
        return copy.deepcopy(body)


def _elector(server: LeaseServer, changes: list[bool]) -> LeaderElector:
    def on_change(leading: bool) -> None:
        changes.append(leading)
        server.changed.set()

    return LeaderElector(
        server,  # type: ignore[arg-type]
        name="lease",
        namespace="ns",
        identity="me",
        lease_duration=0.6,
        renew_deadline=0.4,
        retry_period=0.05,
        on_change=on_change,
    )


async def _until(condition: Any, server: LeaseServer, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            server.changed.clear()
            await server.changed.wait()


def _endless_work() -> tuple[Callable[[], Coroutine[Any, Any, None]], asyncio.Event]:
    """A term's work that runs until cancelled, and the event its end sets."""
    ended = asyncio.Event()

    async def lead() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    return lead, ended


async def test_a_stalled_api_ends_the_term_within_the_renew_deadline() -> None:
    server = LeaseServer()
    changes: list[bool] = []
    elector = _elector(server, changes)
    lead, work_cancelled = _endless_work()
    runner = asyncio.get_running_loop().create_task(elector.run(lead))
    try:
        await _until(lambda: elector.is_leader and server.renewals > 0, server)
        assert elector.holds_lease()
        server.stalled.set()
        stalled_at = asyncio.get_running_loop().time()
        async with asyncio.timeout(5):
            await work_cancelled.wait()
        took = asyncio.get_running_loop().time() - stalled_at
        assert took < elector.lease_duration, f"a stalled leader kept acting for {took:.2f}s"
        assert not elector.holds_lease()
        assert changes[:2] == [True, False]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_the_fence_closes_when_the_last_renewal_is_too_old_even_before_the_loop_notices() -> None:
    server = LeaseServer()
    changes: list[bool] = []
    elector = _elector(server, changes)
    assert not elector.holds_lease(), "not leader: closed"

    async def lead() -> None:
        await asyncio.Event().wait()

    runner = asyncio.get_running_loop().create_task(elector.run(lead))
    try:
        await _until(lambda: elector.is_leader, server)
        assert elector.holds_lease()
        assert server.lease is not None
        assert server.lease["spec"]["leaseDurationSeconds"] == 1, "0.6 s rounded up: standbys never wait less"
        # A frozen process: time went on, no renewal ran. The loop has not run yet; the fence must not wait for it.
        elector._renewed_at = asyncio.get_running_loop().time() - elector.renew_deadline
        assert elector.is_leader
        assert not elector.holds_lease()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_a_renewal_that_reads_another_holder_ends_the_term_at_once() -> None:
    server = LeaseServer()
    changes: list[bool] = []
    elector = LeaderElector(
        server,  # type: ignore[arg-type]
        name="lease",
        namespace="ns",
        identity="me",
        lease_duration=45.0,
        renew_deadline=30.0,  # far beyond the test's timeout: only the read of the holder can end the term in time
        retry_period=0.05,
        on_change=lambda leading: changes.append(leading),
    )
    lead, work_cancelled = _endless_work()
    runner = asyncio.get_running_loop().create_task(elector.run(lead))
    try:
        await _until(lambda: elector.is_leader and server.renewals > 0, server)
        server.take_over("other")
        async with asyncio.timeout(5):
            await work_cancelled.wait()
        assert not elector.holds_lease()
        assert changes[:2] == [True, False]
        assert server.lease is not None
        assert server.lease["spec"]["holderIdentity"] == "other", "the new holder's lease is left alone"
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def _led_then_stopped(server: LeaseServer) -> LeaderElector:
    """An elector that led, then was stopped (its work cancelled), as a SIGTERM stops the process."""
    elector = _elector(server, [])

    async def lead() -> None:
        await asyncio.Event().wait()

    runner = asyncio.get_running_loop().create_task(elector.run(lead))
    await _until(lambda: elector.is_leader, server)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    return elector


async def test_a_clean_stop_releases_the_lease_so_a_standby_takes_over_at_once() -> None:
    server = LeaseServer()
    elector = await _led_then_stopped(server)
    assert not elector.is_leader
    await elector.release(settle=0)
    assert server.lease is not None
    assert "holderIdentity" not in server.lease["spec"]
    assert server.lease["spec"]["leaseDurationSeconds"] == 1
    standby = LeaderElector(server, name="lease", namespace="ns", identity="other")  # type: ignore[arg-type]
    assert await standby._try_acquire_or_renew(), "no holder: taken at the first attempt"


async def test_a_lease_another_replica_holds_is_never_released_by_us() -> None:
    server = LeaseServer()
    elector = await _led_then_stopped(server)
    server.take_over("other")
    await elector.release(settle=0)
    assert server.lease is not None
    assert server.lease["spec"]["holderIdentity"] == "other"
