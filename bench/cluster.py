"""Set-up helpers against the local control plane: namespaces, the shared volume, pods, bounded retries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from ai_storage_orchestrator.conventions import NAMESPACE_OPT_IN_LABEL, NAMESPACE_OPT_IN_VALUE
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import NAMESPACES, PODS, PVCS, PVS, KubeApi, Resource
from tests.cluster.workloads import shared_volume

JSON = dict[str, Any]
T = TypeVar("T")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")


@asynccontextmanager
async def kube_api(kubeconfig: Path) -> AsyncIterator[KubeApi]:
    client = await create_api_client(str(kubeconfig))
    try:
        yield KubeApi(client)
    finally:
        await client.close()


async def retrying(call: Callable[[], Awaitable[T]], *, attempts: int = 5, delay: float = 0.2) -> T:
    """`call()` again on 429, 5xx and connection errors, at most `attempts` times."""
    for attempt in range(attempts):
        try:
            return await call()
        except KubeApiError as error:
            if not error.retriable or attempt == attempts - 1:
                raise
            await asyncio.sleep(delay * (attempt + 1))  # back-off before a bounded retry
    raise AssertionError("unreachable")


async def poll_until(check: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.1) -> bool:
    """Bounded polling for conditions that no watch in this process reports (a child's HTTP endpoint, a log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval)
    return False


async def create_namespace(api: KubeApi, name: str, *, timeout: float = 60.0) -> None:
    """The namespace, once the service-account controller has made its `default` account (pods need it)."""
    try:
        labels = {"ai-storage.io/bench": "true", NAMESPACE_OPT_IN_LABEL: NAMESPACE_OPT_IN_VALUE}  # triggers allowed
        await api.create(NAMESPACES, {"metadata": {"name": name, "labels": labels}})
    except KubeApiError as error:
        if not error.already_exists:
            raise

    async def has_default_account() -> bool:
        items, _ = await api.list(SERVICE_ACCOUNTS, namespace=name)
        return any(item["metadata"]["name"] == "default" for item in items)

    if not await poll_until(has_default_account, timeout=timeout):
        raise TimeoutError(f"no default service account in namespace {name} after {timeout}s")


async def create_shared_volume(api: KubeApi, namespace: str) -> None:
    """The certification workload's ReadWriteMany NFS PersistentVolume and its claim."""
    pv, pvc = shared_volume(namespace)
    await api.create(PVS, pv)
    await api.create(PVCS, pvc, namespace=namespace)


async def create_pod(api: KubeApi, manifest: Mapping[str, Any], namespace: str) -> JSON:
    return await retrying(lambda: api.create(PODS, manifest, namespace=namespace))


async def delete_pod(api: KubeApi, name: str, namespace: str) -> None:
    try:
        await api.delete(PODS, name, namespace=namespace, grace_period_seconds=0)
    except KubeApiError as error:
        if not error.not_found:
            raise
