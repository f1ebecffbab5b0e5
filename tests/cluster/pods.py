"""Waiting on a namespace's pods as the API server has them (not the orchestrator's caches): a list, then a watch
that lists again on each event, until a check holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes_asyncio import client, watch

from tests.cluster.api_clients import api_client_of

JSON = dict[str, Any]
T = TypeVar("T")


def pod_dicts(core: client.CoreV1Api, listing: Any) -> list[JSON]:
    """A V1PodList's pods as plain JSON dicts."""
    return [api_client_of(core).sanitize_for_serialization(p) for p in listing.items]


async def wait_for_pods(
    core: client.CoreV1Api, namespace: str, check: Callable[[list[JSON]], T | None], *, timeout: float = 60
) -> T:
    """What `check` returns for the namespace's pods once it returns something other than None or False (an empty
    list counts: "no pod left")."""
    async with asyncio.timeout(timeout):
        while True:
            listing = await core.list_namespaced_pod(namespace)
            found = check(pod_dicts(core, listing))
            if found is not None and found is not False:
                return found
            async with watch.Watch() as stream:
                async for _ in stream.stream(
                    core.list_namespaced_pod,
                    namespace,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=int(timeout),
                ):
                    break  # something changed: list again


async def wait_pods(
    core: client.CoreV1Api, namespace: str, done: Callable[[list[JSON]], bool], *, timeout: float = 60
) -> list[JSON]:
    """The namespace's pods once `done` holds for them."""
    return await wait_for_pods(core, namespace, lambda pods: pods if done(pods) else None, timeout=timeout)
