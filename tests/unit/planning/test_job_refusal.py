"""Whether evicting a Job's pod would fail the Job, so that no pod comes back (planning/owner.job_refusal)."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning.owner import job_refusal

pytestmark = pytest.mark.unit

IGNORE_DISRUPTIONS = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}


def _job(failed: int = 0, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "train"}, "spec": spec, "status": {"failed": failed}}


@pytest.mark.parametrize(
    ("job", "refused"),
    [
        (_job(), False),  # the default backoffLimit, 6
        (_job(failed=5), False),
        (_job(failed=6), True),
        (_job(backoffLimit=0), True),
        (_job(backoffLimit=0, podFailurePolicy=IGNORE_DISRUPTIONS), False),
        (_job(backoffLimit=0, podFailurePolicy={"rules": [{"action": "FailJob", "onPodConditions": []}]}), True),
        (_job(backoffLimitPerIndex=0, backoffLimit=100), True),
        (_job(backoffLimitPerIndex=1), False),
    ],
    ids=["default", "one-left", "none-left", "limit-0", "ignores-disruption", "other-rule", "per-index-0", "per-index"],
)
def test_an_eviction_that_would_use_up_the_jobs_failures_is_refused(job: dict[str, Any], refused: bool) -> None:
    reason = job_refusal(job)
    assert (reason is not None) is refused
    if reason is not None:
        assert "Job 'train'" in reason
        assert "podFailurePolicy rule with action Ignore on the DisruptionTarget condition" in reason
