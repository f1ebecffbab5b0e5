from __future__ import annotations

import pytest

from ai_storage_orchestrator.controller.planning import target_pod_name

pytestmark = pytest.mark.unit

ID = "3F2A9C1E-77aa-4b7e"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("trainer", "trainer-migrated-3f2a9c1e"),
        ("trainer-migrated-0badc0de", "trainer-migrated-3f2a9c1e"),  # no stacked suffix
        ("trainer-migrated-0badc0de-migrated-11111111", "trainer-migrated-3f2a9c1e"),
        ("a" * 63, "a" * 45 + "-migrated-3f2a9c1e"),
        ("a" * 44 + "-bbbb", "a" * 44 + "-migrated-3f2a9c1e"),  # trailing '-' stripped after truncation
        ("x" * 44 + ".y", "x" * 44 + "-migrated-3f2a9c1e"),  # trailing '.' stripped after truncation
    ],
)
def test_target_pod_name(source: str, expected: str) -> None:
    name = target_pod_name(source, ID)
    assert name == expected
    assert len(name) <= 63


def test_migration_id_without_alnum_is_refused() -> None:
    with pytest.raises(ValueError, match="alphanumeric"):
        target_pod_name("p", "---")
