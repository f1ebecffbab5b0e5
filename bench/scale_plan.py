"""The scale scenario's sizes, pod names and migration plan."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
NAMESPACE = "bench-scale"


@dataclass(frozen=True)
class ScaleSize:
    pods: int
    nodes: int
    migrations: int
    patches: int


FULL = ScaleSize(pods=10_000, nodes=100, migrations=200, patches=2_000)
QUICK = ScaleSize(pods=1_000, nodes=20, migrations=40, patches=500)


def node_names(size: ScaleSize) -> list[str]:
    return [f"scale-{i:03d}" for i in range(size.nodes)]


def pod_name(node: int, index: int) -> str:
    return f"p-{node:03d}-{index:04d}"


def marker_pod(size: ScaleSize, node: int) -> str:
    """A pod no migration of the plan moves (the plan takes the first pods of each node)."""
    return pod_name(node, size.pods // size.nodes - 1)


def small_pod(node: str, name: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench-scale"}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry.local/bench/worker:1"}]},
    }


def migration_plan(size: ScaleSize, *, first_pod: int = 0) -> list[tuple[str, str, str]]:
    """(pod, source, target): pod first_pod+k of node s moves to node s+1+k, so every node takes part in at most
    2 * per_source migrations."""
    per_source = -(-size.migrations // size.nodes)
    plan = []
    for i in range(size.migrations):
        source, k = i % size.nodes, i // size.nodes
        target = f"scale-{(source + 1 + k) % size.nodes:03d}"
        plan.append((pod_name(source, first_pod + k), f"scale-{source:03d}", target))
    assert per_source * 2 <= 110 - size.pods // size.nodes, "targets would not fit the simulated nodes' pod slots"
    return plan


def per_node_cap(plan: Iterable[tuple[str, str, str]]) -> int:
    involved: Counter[str] = Counter()
    for _, source, target in plan:
        involved.update((source, target))
    return max(involved.values())
