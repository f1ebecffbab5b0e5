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
        assert "podFailurePolicy rule" in reason


KILLED = {"containerName": None, "operator": "NotIn", "values": [0]}


def _rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(rules)}


IGNORE = {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}


@pytest.mark.parametrize(
    ("policy", "evicted", "said"),
    [
        # The first matching rule decides: a FailJob on exit codes before the Ignore fails the Job.
        (_rules({"action": "FailJob", "onExitCodes": KILLED}, IGNORE), True, "rule 1 of Job 'train' (FailJob)"),
        (_rules(IGNORE, {"action": "FailJob", "onExitCodes": KILLED}), True, None),
        # Exit codes a killed container does not have: that rule does not match.
        (_rules({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}, IGNORE), True, None),
        (_rules({"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [137]}}), True, "(FailIndex)"),
        # A delete (ignorePDB) sets no DisruptionTarget: the Ignore rule does not match, the failure counts.
        (_rules(IGNORE), False, "an eviction instead of ignorePDB's delete"),
        # Count: one failure against the limit, as without a rule.
        (_rules({"action": "Count", "onExitCodes": KILLED}, IGNORE), True, "backoffLimit 0"),
    ],
    ids=["failjob-first", "ignore-first", "other-codes", "fail-index", "deleted", "count-first"],
)
def test_the_first_rule_that_matches_the_removal_decides(
    policy: dict[str, Any], evicted: bool, said: str | None
) -> None:
    reason = job_refusal(_job(backoffLimit=0, podFailurePolicy=policy), evicted=evicted)
    if said is None:
        assert reason is None
    else:
        assert reason is not None
        assert said in reason
