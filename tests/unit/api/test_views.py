"""The API view of a migration holds nothing a `get pods` caller should not read: no checkpoint hook output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ai_storage_orchestrator.api.views import WITHHELD, public_migration
from ai_storage_orchestrator.models import MigrationRequest, Phase
from tests.unit.api.conftest import Client
from tests.unit.api.fakes import FakeService, finished_status

pytestmark = pytest.mark.unit

SECRET = "eyJhbGciOiJSUzI1NiJ9.service-account-token"
OLD_MESSAGE = (
    f"checkpoint failed, source pod untouched: quiesce hook ['sh'] in container t exited with 1; output: {SECRET}"
)


def hook(**extra: Any) -> dict[str, Any]:
    return {
        "container": "trainer",
        "command": ["sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/token; exit 1"],
        "exitCode": 1,
        "durationSeconds": 0.2,
        "startedAt": "2024-05-01T10:01:00Z",
        "timedOut": False,
        **extra,
    }


def failed_with_hook_output() -> dict[str, Any]:
    """A failed checkpoint as versions before the redaction recorded it: output in status and in messages."""
    status = finished_status(Phase.FAILED)
    status["message"] = OLD_MESSAGE
    status["error"] = {"reason": "checkpoint_hook_failed", "message": OLD_MESSAGE}
    status["phaseTransitions"][-1]["message"] = OLD_MESSAGE
    status["checkpoint"] = {
        **status["checkpoint"],
        "hooks": [hook(outputTail=SECRET, stderr=SECRET, someFutureField=SECRET)],
        "declared": {"hooks": [{"container": "trainer", "command": ["sh"]}], "artifacts": []},
        "details": {"output": SECRET},
    }
    return status


async def test_get_list_and_cancel_never_show_hook_output(client: Client, service: FakeService) -> None:
    request = MigrationRequest("trainer", "ml", "a", "b")
    failed = service.add(request, status=failed_with_hook_output())
    running = service.add(request, status={**failed_with_hook_output(), "phase": Phase.CHECKPOINTING.value})
    answers = [
        await client.get(f"/api/migrations/{failed['migration_id']}"),
        await client.get("/api/migrations"),
        await client.get("/api/migrations?limit=1"),
        await client.delete(f"/api/migrations/{running['migration_id']}"),
    ]
    for response in answers:
        assert response.status in (200, 202)
        text = await response.text()
        assert SECRET not in text
    shown = await answers[0].json()
    assert shown["checkpoint"]["hooks"] == [hook()]  # exit code, duration and timing stay
    assert shown["checkpoint"]["declared"]["hooks"][0]["command"] == ["sh"]  # the pod's own annotation
    assert shown["message"].endswith(WITHHELD)
    assert shown["error"] == {"reason": "checkpoint_hook_failed", "message": shown["message"]}
    assert shown["phase_transitions"][-1]["message"] == shown["message"]
    assert "exited with 1" in shown["message"]


def test_the_view_keeps_everything_else_and_changes_nothing_in_place() -> None:
    migration = {
        "migration_id": "0123456789ab",
        "message": "plan: checkpoint-restart; 1 container(s) left out (data-processor)",
        "checkpoint": {"saved": True, "hooks": [hook(outputBytes=12, message="command terminated")], "bytes": 3},
        "phase_transitions": [{"phase": "Validating", "time": "t", "message": "checking"}, "odd"],
        "error": None,
    }
    original = json.loads(json.dumps(migration))
    view = public_migration(migration)
    assert migration == original
    assert view == migration
    assert public_migration({"checkpoint": None, "containers": []}) == {"checkpoint": None, "containers": []}
