"""The attack suite (issue 14): every case is an attack, and every test asserts its refusal.

Tiers: every case carries the ``security`` marker (tests/conftest.py, by directory); a case that needs the real
control plane (it asks for the ``cluster`` fixture) is ``integration`` too, every other one ``unit``, so that
``make test-unit`` runs the fast ones and ``make test-integration`` the ones against the API server. No test may leave
an asyncio task running."""

from __future__ import annotations

import pytest

# The aiohttp app over the fake migration service, exactly as the unit tier serves it.
from tests.unit.api.conftest import metrics, serve, service

__all__ = ["metrics", "serve", "service"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "security: the attack suite of tests/security (issue 14)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "security" not in item.path.parts:
            continue
        needs_cluster = "cluster" in getattr(item, "fixturenames", ())
        item.add_marker(pytest.mark.integration if needs_cluster else pytest.mark.unit)


@pytest.fixture(autouse=True)
def _tasks_must_not_leak(no_leaked_tasks: None) -> None:
    """Every attack fails if it leaves asyncio tasks running."""
