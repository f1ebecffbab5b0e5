"""Reflector: a loop that crashes (not a watch error it retries) leaves its store unsynced, and its next run relists;
a watch error is retried after a bounded backoff (never shorter than Retry-After), and one that lasts reports an
outage that /readyz names until the watch resumes."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from ai_storage_orchestrator.checkpoint import parse_checkpoint_annotations
from ai_storage_orchestrator.controller.planner import Planner
from ai_storage_orchestrator.controller.service import MigrationService
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import PODS, KubeApi, Resource, WatchEvent
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.watchers.state import ClusterState
from ai_storage_orchestrator.watchers.store import JSON, ObjectStore
from ai_storage_orchestrator.watchers.streaming import Backoff, Reflector
from tests.unit.watchers.fakes import FakeApi

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("no_leaked_tasks")]


def _pod(name: str, version: int) -> JSON:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)}}


async def test_a_crash_marks_the_store_unsynced_and_the_next_run_lists_afresh() -> None:
    api = FakeApi([_pod("a", 1)], "1")
    store = ObjectStore("Pod")
    reflector = Reflector(api.as_kube_api(), PODS, store)
    api.events.put_nowait(WatchEvent("ADDED", {"metadata": {"namespace": "ns"}}))  # no name: object_key raises
    with pytest.raises(KeyError):
        async with asyncio.timeout(5):
            await reflector.run()
    assert not store.synced, "a store its loop crashed on may be half-applied: it must read as not ready"

    api.listed, api.version = [_pod("a", 1), _pod("b", 2)], "2"
    changed = asyncio.Event()
    store.add_listener(lambda *_: changed.set())
    task = asyncio.get_running_loop().create_task(reflector.run())
    try:
        async with asyncio.timeout(5):
            await changed.wait()
        assert cast(bool, store.synced)  # read anew: mypy would keep the narrowing of the assert before the run
        assert api.lists == 2
        assert sorted(store.keys()) == ["ns/a", "ns/b"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_cancelled_loop_keeps_its_store_synced_to_resume_from_its_version() -> None:
    api = FakeApi([_pod("a", 1)], "1")
    store = ObjectStore("Pod")
    reflector = Reflector(api.as_kube_api(), PODS, store)
    listed = asyncio.Event()
    store.add_listener(lambda *_: listed.set())
    task = asyncio.get_running_loop().create_task(reflector.run())
    async with asyncio.timeout(5):
        await listed.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert store.synced
    assert store.resource_version == "1"


class _Stopped(BaseException):
    """Ends a reflector's loop from inside its sleep (not an Exception: the loop must not treat it as a crash)."""


class FakeTime:
    """A clock that moves only when the reflector sleeps; every sleep is recorded and sets `slept`. After
    `stop_after` sleeps, the next one raises _Stopped."""

    def __init__(self, *, stop_after: int | None = None) -> None:
        self.now = 0.0
        self.delays: list[float] = []
        self.slept = asyncio.Event()
        self.stop_after = stop_after

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        if self.stop_after is not None and len(self.delays) >= self.stop_after:
            raise _Stopped
        self.delays.append(delay)
        self.now += delay
        self.slept.set()
        await asyncio.sleep(0)  # hand the loop over, as a real sleep would


class OutageApi:
    """LIST answers nothing; a WATCH of a resource named in `failing` raises `error`, any other replays the events
    queued for its resource, then waits like an idle, healthy stream."""

    def __init__(self, error: KubeApiError) -> None:
        self.error = error
        self.failing: set[str] = set()
        self.events: defaultdict[str, asyncio.Queue[WatchEvent]] = defaultdict(asyncio.Queue)

    async def list(self, resource: Resource, **_: Any) -> tuple[list[JSON], str]:
        return [], "1"

    async def watch(self, resource: Resource, **_: Any) -> AsyncIterator[WatchEvent]:
        if resource.plural in self.failing:
            raise self.error
        while True:
            yield await self.events[resource.plural].get()

    def as_kube_api(self) -> KubeApi:
        return cast(KubeApi, self)


def _failing_pods_reflector(error: KubeApiError, time: FakeTime) -> Reflector:
    api = OutageApi(error)
    api.failing.add(PODS.plural)
    return Reflector(api.as_kube_api(), PODS, ObjectStore("Pod"), sleep=time.sleep, clock=time.clock)


def test_the_reconnect_backoff_stays_at_its_cap_after_1100_attempts() -> None:
    backoff = Backoff(initial=0.2, maximum=30.0)
    delays = [backoff.next_delay() for _ in range(1100)]  # 2.0**1024 would overflow
    assert all(15.0 <= delay <= 30.0 for delay in delays[-100:])


async def test_a_throttled_watch_waits_at_least_the_servers_retry_after() -> None:
    time = FakeTime(stop_after=3)
    throttled = KubeApiError(429, "TooManyRequests", "slow down", retry_after=5.0)
    with pytest.raises(_Stopped):
        await _failing_pods_reflector(throttled, time).run()
    assert len(time.delays) == 3
    assert min(time.delays) >= 5.0, "the jittered backoff alone starts at 0.1-0.2 s"


async def test_a_watch_failing_for_longer_than_its_bound_reports_an_outage() -> None:
    time = FakeTime(stop_after=1)
    reflector = _failing_pods_reflector(KubeApiError(503, "ServiceUnavailable", "apiserver down"), time)
    with pytest.raises(_Stopped):
        await reflector.run()
    assert reflector.outage() is None, "a reconnect within the bound is routine"
    time.now = reflector.unhealthy_after + 1
    assert reflector.outage() == "watch of pods failing for 31 s: 503 ServiceUnavailable: apiserver down"


async def test_readiness_names_a_failing_watch_and_comes_back_when_the_watch_resumes() -> None:
    api = OutageApi(KubeApiError(503, "ServiceUnavailable", "apiserver down"))
    api.failing.add(PODS.plural)
    state = ClusterState()
    planner = Planner(state, declared=parse_checkpoint_annotations)
    service = MigrationService(api=api.as_kube_api(), state=state, metrics=Metrics(), planner=planner)
    time = FakeTime()
    reflectors = state.reflectors(api.as_kube_api())
    for reflector in reflectors:
        reflector.sleep, reflector.clock = time.sleep, time.clock
    tasks = [asyncio.get_running_loop().create_task(reflector.run()) for reflector in reflectors]
    try:
        async with asyncio.timeout(5):
            while not (state.synced and time.now > 31):
                time.slept.clear()
                await time.slept.wait()
        ready, why = service.ready()
        assert not ready
        assert why.startswith("watch of pods failing for "), why

        api.failing.clear()
        api.events[PODS.plural].put_nowait(WatchEvent("ADDED", _pod("a", 2)))
        await state.wait_for(lambda: state.pod("ns", "a"), timeout=5)
        assert service.ready() == (True, "caches synced")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
