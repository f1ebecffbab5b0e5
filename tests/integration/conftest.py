import pytest


@pytest.fixture(autouse=True)
def _tasks_must_not_leak(no_leaked_tasks: None) -> None:
    """Every test of this tier fails if it leaves asyncio tasks running."""
