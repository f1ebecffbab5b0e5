"""Test tiers by directory: tests/unit (pure logic), tests/integration (real control plane, KWOK nodes), tests/e2e
(real kubelet + containerd nodes; `make e2e`) and tests/security (the attack suite; its conftest also marks each case
unit or integration). A test under tests/unit that runs another program is marked ``tools`` instead of ``unit``, so
the unit tier stays pure logic and fast (`make test-unit`); `make test` runs every tier."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.cluster.fixtures"]

_TIERS = ("unit", "integration", "e2e", "security")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts and not (tier == "unit" and item.get_closest_marker("tools")):
                item.add_marker(getattr(pytest.mark, tier))
