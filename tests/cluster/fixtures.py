"""pytest fixtures for tests that need the real control plane. Loaded as a plugin by tests/integration and
tests/e2e conftests."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes_asyncio import client, config, watch

from tests.cluster.api_clients import api_client_of
from tests.cluster.local_cluster import LocalCluster
from tests.cluster.processes import child_pids


@dataclass(frozen=True)
class ClusterHandle:
    kubeconfig: Path
    node_names: list[str]
    etcd_url: str | None
    local: LocalCluster | None


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    existing = os.environ.get("AISO_KUBECONFIG")
    if existing:
        nodes = [n for n in os.environ.get("AISO_NODES", "").split(",") if n]
        yield ClusterHandle(Path(existing), nodes, None, None)
        return
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    local.start()
    try:
        yield ClusterHandle(local.kubeconfig, local.node_names, local.etcd_url, local)
    finally:
        local.stop()
    leftovers = child_pids()
    assert not leftovers, f"control-plane processes left behind: {leftovers}"


@pytest.fixture(scope="session")
async def api(cluster: ClusterHandle) -> AsyncIterator[client.ApiClient]:
    api_client = await config.new_client_from_config(config_file=str(cluster.kubeconfig))
    async with api_client:
        yield api_client


@pytest.fixture(scope="session")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


async def _wait_default_service_account(core: client.CoreV1Api, namespace: str, timeout: float = 30.0) -> None:
    listing = await core.list_namespaced_service_account(namespace)
    if any(sa.metadata.name == "default" for sa in listing.items):
        return
    async with asyncio.timeout(timeout), watch.Watch() as stream:
        async for event in stream.stream(
            core.list_namespaced_service_account,
            namespace,
            resource_version=listing.metadata.resource_version,
            timeout_seconds=int(timeout),
        ):
            if event["object"].metadata.name == "default":
                return


@pytest.fixture
async def namespace(core: client.CoreV1Api) -> AsyncIterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    await core.create_namespace(
        cast(client.V1Namespace, {"metadata": {"name": name, "labels": {"ai-storage.io/test": "true"}}})
    )
    await _wait_default_service_account(core, name)
    try:
        yield name
    finally:
        await _release_migrations(api_client_of(core), name)
        await core.delete_namespace(name)


async def _release_migrations(api: client.ApiClient, namespace: str) -> None:
    """Drop the controller's finalizer from PodMigrations a stopped orchestrator left behind, so the namespace can
    go (a real cluster keeps them until its controller finishes them)."""
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + 30
    while True:
        try:
            listed = await custom.list_namespaced_custom_object("ai-storage.io", "v1alpha1", namespace, "podmigrations")
            break
        except client.ApiException as error:
            if error.status == 404:  # the CRD is not installed in this run
                return
            # A test that restarted kube-apiserver: a custom resource's storage can still be initializing after
            # /readyz answers (429 "storage is (re)initializing", with Retry-After).
            if error.status != 429 or time.monotonic() > deadline:
                raise
            headers: Mapping[str, Any] = error.headers or {}
            await asyncio.sleep(float(headers.get("Retry-After") or 1))
    for item in listed.get("items", []):
        if item["metadata"].get("finalizers"):
            patch = [{"op": "remove", "path": "/metadata/finalizers"}]
            try:
                await custom.patch_namespaced_custom_object(
                    "ai-storage.io", "v1alpha1", namespace, "podmigrations", item["metadata"]["name"], patch
                )
            except client.ApiException as error:
                if error.status != 404:
                    raise


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """A test that leaves asyncio tasks running fails."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)  # let tasks cancelled in teardown finish their cancellation
    leaked = [t for t in asyncio.all_tasks() - before - {asyncio.current_task()} if not t.done()]
    assert not leaked, f"test leaked asyncio tasks: {leaked}"


def pod_manifest(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers, **spec}}


@pytest.fixture(scope="session")
async def crd_installed(api: client.ApiClient) -> None:
    """The PodMigration CRD, installed once per session and Established before any test uses it."""
    from ai_storage_orchestrator.kube.resources import KubeApi
    from ai_storage_orchestrator.runtime import crd_manifest, install_crd

    await install_crd(KubeApi(api))
    await wait_crd_established(api, crd_manifest()["metadata"]["name"])


async def wait_crd_established(api: client.ApiClient, name: str, *, timeout: float = 30) -> None:
    """Return once CustomResourceDefinition `name` is Established (its kind can be served)."""
    extensions = client.ApiextensionsV1Api(api)

    def established(crd: Any) -> bool:
        return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))

    current = await extensions.read_custom_resource_definition(name)
    if established(current):
        return
    async with asyncio.timeout(timeout), watch.Watch() as stream:
        async for event in stream.stream(
            extensions.list_custom_resource_definition,
            field_selector=f"metadata.name={name}",
            resource_version=current.metadata.resource_version,
            timeout_seconds=int(timeout),
        ):
            if established(event["object"]):
                return


@pytest.fixture
def orchestrator_overrides() -> dict[str, Any]:
    """Settings the `orchestrator` fixture changes: a test sets them with ``@pytest.mark.parametrize`` on this name."""
    return {}


@pytest.fixture
async def orchestrator(
    cluster: ClusterHandle, namespace: str, crd_installed: None, orchestrator_overrides: dict[str, Any]
) -> AsyncIterator[Any]:
    """An orchestrator running in this process, watching the test's namespace, acting without leader election."""
    from ai_storage_orchestrator.runtime import Orchestrator
    from ai_storage_orchestrator.settings import Settings

    settings = Settings(
        kubeconfig=str(cluster.kubeconfig),
        namespace=namespace,
        leader_election=False,
        identity=f"test-{namespace}",
        **orchestrator_overrides,
    )
    running = Orchestrator(settings)
    await running.start()
    try:
        await running.state.wait_for(lambda: running.state.synced, timeout=30)
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def rest_url(orchestrator: Any) -> AsyncIterator[str]:
    """The `orchestrator` fixture's REST API on 127.0.0.1 (no auth: loopback, as `serve --auth none`)."""
    from aiohttp.test_utils import TestServer

    from ai_storage_orchestrator.api.app import create_app
    from ai_storage_orchestrator.api.auth import AllowAll

    assert orchestrator.service is not None
    app = create_app(service=orchestrator.service, metrics=orchestrator.metrics, authenticator=AllowAll())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def http(orchestrator: Any) -> AsyncIterator[Any]:
    """An aiohttp test client of the `orchestrator` fixture's REST API on 127.0.0.1 (no auth)."""
    from aiohttp.test_utils import TestClient, TestServer

    from ai_storage_orchestrator.api.app import create_app
    from ai_storage_orchestrator.api.auth import AllowAll

    assert orchestrator.service is not None
    app = create_app(service=orchestrator.service, metrics=orchestrator.metrics, authenticator=AllowAll())
    session: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await session.start_server()
    yield session
    await session.close()
