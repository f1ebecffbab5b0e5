"""Fixtures of the planning tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ai_storage_orchestrator.controller.planning import fit


@pytest.fixture(autouse=True)
def forget_remembered_requests() -> Iterator[None]:
    """Every test starts with an empty requests cache. The fixtures give all pods one uid and resourceVersion, and
    the cache keys on those and the spec's id(), which Python reuses once an earlier test's pod is gone: a stale sum
    would make a test's outcome depend on the tests before it."""
    fit._REQUESTS_BY_VERSION.clear()
    yield
    fit._REQUESTS_BY_VERSION.clear()
