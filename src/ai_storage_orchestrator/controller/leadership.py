"""Leader election on a coordination.k8s.io Lease, like client-go's: one replica acts, the others stand by and take
over when the holder stops renewing. Expiry is judged by how long *we* have seen the record unchanged, so clock skew
between replicas does not matter."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import LEASES, KubeApi

log = structlog.get_logger(__name__)
RELEASE_SETTLE_SECONDS = 1.0


def _micro_time() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: KubeApi,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_change = on_change
        self.is_leader = False
        self._observed: tuple[str, float] | None = None  # (resourceVersion, monotonic time first seen)
        self._renewed_at: float | None = None  # monotonic start of the last successful acquire or renew

    def holds_lease(self) -> bool:
        """True while no other replica can have taken the lease: we are leader and our last successful renewal
        *started* less than the renew deadline ago (a renewal takes effect at some instant after it started, and
        a standby waits a whole lease duration, longer than the deadline, after it saw that renewal), and no renewal
        since has read another holder in the Lease."""
        if not self.is_leader or self._renewed_at is None:
            return False
        return asyncio.get_running_loop().time() - self._renewed_at < self.renew_deadline

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Forever: wait to acquire the lease, run `lead()` while renewing it, stop `lead` when the lease is lost.
        Each call of `lead()` is one term; a replica that loses and regains the lease starts a new one."""
        loop = asyncio.get_running_loop()
        while True:
            if not await self._attempt(timeout=self.renew_deadline):
                await asyncio.sleep(self.retry_period)  # lease protocol: holders renew on a period, we re-check
                continue
            self._set_leader(True)
            leading: asyncio.Task[None] = loop.create_task(lead(), name="leader-work")
            try:
                await self._keep_renewing(leading)
            finally:
                self._set_leader(False)  # first: the fence closes before the work is even cancelled
                leading.cancel()
                await asyncio.gather(leading, return_exceptions=True)
            crashed = None if leading.cancelled() else leading.exception()
            if crashed is not None:
                # A term that crashed is not retried at once while holding the lease: the caller's supervisor
                # logs it and restarts the election with a backoff.
                raise crashed

    async def release(self, *, settle: float = RELEASE_SETTLE_SECONDS, timeout: float = 2.0) -> None:
        """Give the lease up on a clean stop, once this replica's work has ended (client-go's ReleaseOnCancel): the
        record is written with no holder and a one-second duration, so a standby takes over at its next attempt
        instead of a whole lease duration later (a rolling update left no leader for 15 s). Only a lease that still
        names us is written, on the version read (a precondition); anything else, or an error, leaves it to expire.
        `settle`: a pause first, for requests the stopped work had already sent (cancelled on our side, they may still
        reach the API server) to land before a standby can act."""
        if self.is_leader or self._renewed_at is None:
            return  # still acting (not stopped), or the lease was never ours or seen lost
        self._renewed_at = None
        await asyncio.sleep(settle)
        try:
            async with asyncio.timeout(timeout):
                lease = await self.api.get(LEASES, self.name, namespace=self.namespace)
                spec = lease.get("spec") or {}
                if spec.get("holderIdentity") != self.identity:
                    return
                now = _micro_time()
                released = {
                    **lease,
                    "spec": {
                        "leaseDurationSeconds": 1,
                        "acquireTime": now,
                        "renewTime": now,
                        "leaseTransitions": int(spec.get("leaseTransitions") or 0),
                    },
                }
                await self.api.replace(LEASES, released)
            log.info("leader.released", lease=self.name, identity=self.identity)
        except (KubeApiError, TimeoutError) as error:
            log.info("leader.release_failed", lease=self.name, error=str(error) or "timed out")

    async def _keep_renewing(self, leading: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        while not leading.done():
            await asyncio.wait({leading}, timeout=self.retry_period)
            if leading.done():
                return
            assert self._renewed_at is not None
            left = self.renew_deadline - (loop.time() - self._renewed_at)
            if left <= 0 or not await self._attempt(timeout=left):
                if self.holds_lease():
                    continue  # a failed renewal with time to spare: try again on the next period
                log.warning("leader.lost", lease=self.name, identity=self.identity)
                return

    async def _attempt(self, *, timeout: float) -> bool:
        """One acquire-or-renew, given at most `timeout` seconds: a renewal that cannot finish before the deadline
        is worth nothing, however long one API call may otherwise take."""
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                succeeded = await self._try_acquire_or_renew()
        except TimeoutError:
            log.info("leader.renew_timed_out", timeout=round(timeout, 3))
            return False
        if succeeded:
            self._renewed_at = started
        return succeeded

    def _set_leader(self, value: bool) -> None:
        if value != self.is_leader:
            self.is_leader = value
            log.info("leader.changed", leading=value, identity=self.identity, lease=self.name)
            if self.on_change:
                self.on_change(value)

    def _lease(self, lease: dict[str, Any] | None, *, transitions: int) -> dict[str, Any]:
        now = _micro_time()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": math.ceil(self.lease_duration),  # never shorter than our own fence counts
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
        else:
            spec["acquireTime"] = lease["spec"].get("acquireTime", now)
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        if lease is not None:
            body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return body

    async def _try_acquire_or_renew(self) -> bool:
        loop = asyncio.get_running_loop()
        try:
            try:
                lease = await self.api.get(LEASES, self.name, namespace=self.namespace)
            except KubeApiError as error:
                if not error.not_found:
                    raise
                await self.api.create(LEASES, self._lease(None, transitions=0), namespace=self.namespace)
                return True
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity")
            version = lease["metadata"]["resourceVersion"]
            if self._observed is None or self._observed[0] != version:
                self._observed = (version, loop.time())
            expired = loop.time() - self._observed[1] > float(spec.get("leaseDurationSeconds") or self.lease_duration)
            if holder and holder != self.identity and not expired:
                self._renewed_at = None  # seen taken: our last renewal fences nothing, close the fence now
                return False
            transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
            await self.api.replace(LEASES, self._lease(lease, transitions=transitions))
            return True
        except KubeApiError as error:
            log.info("leader.renew_failed", error=str(error))
            return False
