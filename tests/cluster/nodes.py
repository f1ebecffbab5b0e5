"""Simulated worker nodes: created through the real API server, made Ready by KWOK."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from kubernetes_asyncio import client, config, watch


def simulated_node(
    name: str, *, cpu: str = "16", memory: str = "64Gi", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})},
            "annotations": {"sim.ai-storage.io/cpu": cpu, "sim.ai-storage.io/memory": memory},
        },
    }


def _is_ready(node: Any) -> bool:
    """Ready, and the not-ready taint the API server puts on new nodes has been lifted by the lifecycle controller."""
    conditions = (node.status.conditions if node.status else None) or []
    taints = (node.spec.taints if node.spec else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions) and not any(
        t.key.startswith("node.kubernetes.io/") for t in taints
    )


async def create_simulated_nodes(kubeconfig: Path, names: Sequence[str], *, timeout: float = 60.0) -> None:
    async with await config.new_client_from_config(config_file=str(kubeconfig)) as api:
        core = client.CoreV1Api(api)
        for name in names:
            await core.create_node(cast(client.V1Node, simulated_node(name)))
        await wait_nodes_ready(core, names, timeout=timeout)


async def wait_nodes_ready(core: Any, names: Sequence[str], *, timeout: float) -> None:
    """Wait on a node watch until every named node reports Ready."""
    pending = set(names)
    listing = await core.list_node()
    pending -= {n.metadata.name for n in listing.items if _is_ready(n)}
    if not pending:
        return
    async with asyncio.timeout(timeout):
        async with watch.Watch() as stream:
            async for event in stream.stream(
                core.list_node, resource_version=listing.metadata.resource_version, timeout_seconds=int(timeout)
            ):
                node = event["object"]
                if _is_ready(node):
                    pending.discard(node.metadata.name)
                if not pending:
                    return
