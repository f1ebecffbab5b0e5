"""The e2e tier: tests on two real kubelet + containerd nodes (tests/cluster/real_nodes.py), run by `make e2e` after
the certification comparison. They need root, a cgroup v1 host and the tier's binaries and images, so they are only
collected with AISO_E2E=1 (which `make e2e` sets); `make test` does not see them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.compare.sampling import PathApi
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.exec import KubeExec
from tests.cluster.demo import start_orchestrator
from tests.cluster.e2e import image_archives
from tests.cluster.local_cluster import LocalCluster
from tests.cluster.nodes import wait_nodes_ready
from tests.cluster.processes import free_port
from tests.cluster.real_nodes import RealNodeTier

collect_ignore_glob = [] if os.environ.get("AISO_E2E") else ["test_*.py"]


@pytest.fixture(autouse=True)
def _tasks_must_not_leak(no_leaked_tasks: None) -> None:
    """Every test of this tier fails if it leaves asyncio tasks running."""


@dataclass(frozen=True)
class RealCluster:
    tier: RealNodeTier
    kubeconfig: Path
    url: str
    kube: PathApi
    execs: KubeExec
    api_client: Any


@pytest.fixture(scope="session")
async def real(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RealCluster]:
    """Control plane, two real nodes and the orchestrator as its own process, for the whole session."""
    workdir = tmp_path_factory.mktemp("real")
    cluster = LocalCluster(workdir / "cluster", node_names=[], real_nodes=True)
    await asyncio.to_thread(cluster.start)
    tier = RealNodeTier(cluster, workdir / "nodes", image_archives())
    orchestrator = None
    try:
        await asyncio.to_thread(tier.start)
        api_client = await create_api_client(str(cluster.kubeconfig))
        try:
            await wait_nodes_ready(client.CoreV1Api(api_client), tier.node_names, timeout=tier.startup_timeout)
            orchestrator, url = await start_orchestrator(cluster.kubeconfig, workdir, port=free_port())
            yield RealCluster(tier, cluster.kubeconfig, url, PathApi(api_client), KubeExec(api_client), api_client)
        finally:
            await api_client.close()
    finally:
        if orchestrator is not None:
            orchestrator.stop()
        await asyncio.to_thread(tier.stop)
        cluster.stop()
    leftovers = tier.leftovers()
    assert not leftovers, f"the real-node tier left behind: {leftovers}"
