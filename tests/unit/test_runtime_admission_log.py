"""When a term of leadership begins, the orchestrator says whether annotation triggers will act: a warning when the
admission policy is missing or annotations are trusted, info when it is found; an API error never stops it."""

from __future__ import annotations

from typing import cast

import pytest
from structlog.testing import capture_logs

from ai_storage_orchestrator.controller.triggers import AnnotationTrigger
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.runtime import Orchestrator
from ai_storage_orchestrator.settings import Settings

pytestmark = pytest.mark.unit


class FakeTrigger:
    def __init__(self, binding: str | None, answer: str | Exception | None) -> None:
        self.admission_binding = binding
        self.answer = answer

    async def admission_policy_refusal(self) -> str | None:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize(
    ("binding", "answer", "event", "level"),
    [
        ("b", "ValidatingAdmissionPolicyBinding b is not installed", "trigger.admission_policy_missing", "warning"),
        ("b", None, "trigger.admission_policy_found", "info"),
        (None, None, "trigger.annotations_trusted", "warning"),
        ("b", KubeApiError(503, "ServiceUnavailable", "down"), "trigger.admission_policy_unknown", "warning"),
    ],
)
async def test_the_admission_policy_is_reported_when_leading(
    binding: str | None, answer: str | Exception | None, event: str, level: str
) -> None:
    orchestrator = Orchestrator(Settings())
    with capture_logs() as logs:
        await orchestrator._check_admission_policy(cast(AnnotationTrigger, FakeTrigger(binding, answer)))
    entries = [e for e in logs if e["event"].startswith("trigger.")]
    assert [(e["event"], e["log_level"]) for e in entries] == [(event, level)]
