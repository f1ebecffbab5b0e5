"""The e2e tier: tests on two real kubelet + containerd nodes (tests/cluster/real_nodes.py), run by `make e2e` after
the certification comparison. They need root, a cgroup v1 host and the tier's binaries and images, so they are only
collected with AISO_E2E=1 (which `make e2e` sets); `make test` does not see them."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ai_storage_orchestrator.compare.sampling import PathApi
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.exec import KubeExec
from tests.cluster.e2e import image_archives, real_node_cluster
from tests.cluster.real_nodes import RealNodeTier

collect_ignore_glob = [] if os.environ.get("AISO_E2E") else ["test_*.py"]


@pytest.fixture(autouse=True)
def _tasks_must_not_leak(no_leaked_tasks: None) -> None:
    """Every test of this tier fails if it leaves asyncio tasks running."""


@dataclass(frozen=True)
class RealCluster:
    tier: RealNodeTier
    url: str
    kube: PathApi
    execs: KubeExec
    log: Path  # the orchestrator's JSON log

    def logged(self, event: str) -> list[dict[str, Any]]:
        """The orchestrator's log entries of `event` so far."""
        entries = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == event:
                entries.append(entry)
        return entries


@pytest.fixture(scope="session")
async def real(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RealCluster]:
    """Control plane, two real nodes and the orchestrator as its own process, for the whole session."""
    async with real_node_cluster(tmp_path_factory.mktemp("real"), image_archives()) as running:
        api_client = await create_api_client(str(running.cluster.kubeconfig))
        try:
            assert running.orchestrator is not None
            assert running.url is not None
            yield RealCluster(
                running.tier, running.url, PathApi(api_client), KubeExec(api_client), running.orchestrator.log_path
            )
        finally:
            await api_client.close()
