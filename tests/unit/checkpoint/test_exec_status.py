"""Reading the exec error channel (kube.exec.parse_status)."""

from __future__ import annotations

import json

import pytest

from ai_storage_orchestrator.kube.exec import ExecStatus, parse_status


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"metadata": {}, "status": "Success"}, ExecStatus(0)),
        (
            {
                "status": "Failure",
                "message": "command terminated with non-zero exit code: exit status 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            },
            ExecStatus(3, "command terminated with non-zero exit code: exit status 3"),
        ),
        (  # KWOK's local exec: the exit status only in the message
            {"status": "Failure", "message": "error executing command in container: cmd wait: sh -c x: exit status 7"},
            ExecStatus(7, "error executing command in container: cmd wait: sh -c x: exit status 7"),
        ),
        (
            {
                "status": "Failure",
                "message": 'no exec found for container "c" in pod "ns/p"',
                "reason": "InternalError",
            },
            ExecStatus(None, 'no exec found for container "c" in pod "ns/p"'),
        ),
    ],
)
def test_parse_status(payload: dict[str, object], expected: ExecStatus) -> None:
    assert parse_status(json.dumps(payload).encode()) == expected


def test_unreadable_status() -> None:
    status = parse_status(b"\xff not json")
    assert status.exit_code is None
    assert "unreadable" in status.message
    assert not status.success


def test_describe() -> None:
    assert ExecStatus(0).describe() == "exit 0"
    assert ExecStatus(2, "boom").describe() == "exit 2 (boom)"
    assert ExecStatus(None, "no such container").describe() == "did not run: no such container"
