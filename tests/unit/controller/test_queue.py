"""WorkQueue: the per-key backoff of a key that keeps failing stays at the max delay, however often it failed."""

from __future__ import annotations

import pytest

from ai_storage_orchestrator.controller.queue import WorkQueue

pytestmark = pytest.mark.unit


async def test_a_key_failing_1100_times_backs_off_at_the_max_delay_without_overflowing() -> None:
    queue = WorkQueue(base_delay=0.05, max_delay=60.0)
    try:
        delays = [queue.add_rate_limited("ns/a") for _ in range(1100)]  # 2.0**1024 would overflow
    finally:
        queue.shut_down()
    assert max(delays) == 60.0
    assert delays[-1] == 60.0
