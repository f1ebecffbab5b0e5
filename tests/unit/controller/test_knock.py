"""The knock: one exec into the gate that writes the token from stdin; whatever goes wrong is a reason, never raised."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import structlog

from ai_storage_orchestrator.checkpoint.transport import ExecError, ExecStatus
from ai_storage_orchestrator.controller.knock import ExecKnocker
from ai_storage_orchestrator.controller.planning.gate import GATE_CONTAINER, KNOCK_FILE, KNOCK_MOUNT
from tests.unit.checkpoint.fakes import Call, LocalExec

pytestmark = pytest.mark.unit
TOKEN = "m1.0123456789abcdef0123456789abcdef"


async def _eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not within the deadline"
        await asyncio.sleep(0.005)


class _IntoDirectory(LocalExec):
    """Runs the knock's command with the gate's mount path pointing at a local directory."""

    def __init__(self, directory: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.directory = directory

    def session(self, **kwargs: Any) -> AbstractAsyncContextManager[Any]:
        kwargs["argv"] = [str(self.directory) if part == KNOCK_MOUNT else part for part in kwargs["argv"]]
        return super().session(**kwargs)


async def test_the_token_goes_in_on_stdin_into_the_gates_own_file(tmp_path: Path) -> None:
    transport = _IntoDirectory(tmp_path)
    with structlog.testing.capture_logs() as logs:
        assert await ExecKnocker(transport).knock(namespace="ns", pod="p", node="n1", token=TOKEN) is None
    assert (tmp_path / KNOCK_FILE).read_text() == TOKEN
    assert sorted(os.listdir(tmp_path)) == [KNOCK_FILE], "renamed into place, nothing left beside it"
    (call,) = transport.calls
    assert (call.container, call.stdin) == (GATE_CONTAINER, True)
    assert all(TOKEN not in part for part in call.argv), "never in the command line: the exec's URL is logged"
    assert [entry["event"] for entry in logs] == ["gate.knocked"]


async def test_a_command_that_fails_is_a_reason() -> None:
    refused = LocalExec(faults=[lambda call: (ExecStatus(1, "error executing command"), b"")])
    failure = await ExecKnocker(refused).knock(namespace="ns", pod="p", node="n1", token=TOKEN)
    assert failure is not None
    assert "exit 1" in failure


class _Broken(LocalExec):
    def session(self, **kwargs: Any) -> AbstractAsyncContextManager[Any]:
        self.calls.append(Call(kwargs["container"], tuple(kwargs["argv"]), kwargs.get("stdin", False)))
        raise ExecError("exec into ns/p container ai-storage-gate refused: HTTP 403 Forbidden", status=403)


async def test_an_exec_that_cannot_be_made_is_a_reason() -> None:
    with structlog.testing.capture_logs() as logs:
        failure = await ExecKnocker(_Broken()).knock(namespace="ns", pod="p", node="n1", token=TOKEN)
    assert failure == "exec into ns/p container ai-storage-gate refused: HTTP 403 Forbidden"
    assert logs[0]["event"] == "gate.knock_failed"


class _Silent(LocalExec):
    @contextlib.asynccontextmanager
    async def session(self, **kwargs: Any) -> AsyncIterator[Any]:
        yield _Never()


class _Never:
    status = None

    async def write(self, data: bytes) -> None:
        return None

    async def close_stdin(self) -> None:
        return None

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        await asyncio.Event().wait()
        yield 1, b""


async def test_a_knock_with_no_answer_gives_up_after_its_timeout() -> None:
    failure = await ExecKnocker(_Silent(), timeout=0.01).knock(namespace="ns", pod="p", node="n1", token=TOKEN)
    assert failure == "no answer within 0.01s"


async def test_a_node_where_a_knock_failed_is_not_knocked_on_again_for_a_while(tmp_path: Path) -> None:
    transport = _IntoDirectory(tmp_path, faults=[lambda call: (ExecStatus(None, "no exec found"), b"")])
    knocker = ExecKnocker(transport)
    assert await knocker.knock(namespace="ns", pod="p", node="n1", token=TOKEN) is not None
    again = await knocker.knock(namespace="ns", pod="p", node="n1", token=TOKEN)
    assert again == "a knock on node n1 failed less than 600s ago"
    assert len(transport.calls) == 1, "no second exec on that node"
    transport.faults.clear()
    assert await knocker.knock(namespace="ns", pod="p", node="n2", token=TOKEN) is None, "other nodes still"


async def test_an_exec_opened_ahead_waits_for_the_token_and_the_knock_only_writes_it(tmp_path: Path) -> None:
    transport = _IntoDirectory(tmp_path)
    knocker = ExecKnocker(transport)
    knocker.prepare(namespace="ns", pod="p", node="n1")
    knocker.prepare(namespace="ns", pod="p", node="n1")  # every step while the source stops asks again
    await _eventually(lambda: len(transport.calls) == 1)  # its command runs and waits on stdin
    assert knocker.holds(namespace="ns", pod="p")
    assert not (tmp_path / KNOCK_FILE).exists(), "nothing written before the token"
    with structlog.testing.capture_logs() as logs:
        assert await knocker.knock(namespace="ns", pod="p", node="n1", token=TOKEN) is None
    assert (tmp_path / KNOCK_FILE).read_text() == TOKEN
    assert len(transport.calls) == 1, "the knock went through the exec opened ahead"
    assert logs[0]["event"] == "gate.knocked"
    assert logs[0]["opened_ahead"] is True


async def test_an_exec_opened_ahead_and_left_unused_closes_by_itself_and_the_knock_opens_its_own(
    tmp_path: Path,
) -> None:
    transport = _IntoDirectory(tmp_path)
    knocker = ExecKnocker(transport, door_seconds=0.05)
    knocker.prepare(namespace="ns", pod="p", node="n1")
    await _eventually(lambda: not knocker.holds(namespace="ns", pod="p"))
    assert knocker.answers.works("n1") is None, "waiting too long is no fault of the node"
    assert await knocker.knock(namespace="ns", pod="p", node="n1", token=TOKEN) is None
    assert len(transport.calls) == 2
    assert (tmp_path / KNOCK_FILE).read_text() == TOKEN


async def test_an_exec_that_cannot_be_opened_ahead_bars_the_node_at_once() -> None:
    transport = _Broken()
    knocker = ExecKnocker(transport)
    with structlog.testing.capture_logs() as logs:
        knocker.prepare(namespace="ns", pod="p", node="n1")
        await _eventually(lambda: knocker.answers.works("n1") is False)
    assert [entry["event"] for entry in logs] == ["gate.knock_failed"]
    assert knocker.answers.works("n1") is False
    knocker.prepare(namespace="ns", pod="q", node="n1")
    failure = await knocker.knock(namespace="ns", pod="p", node="n1", token=TOKEN)
    assert failure == "a knock on node n1 failed less than 600s ago"
    assert len(transport.calls) == 1, "one failed exec, no more"


async def _opened_ahead_into_p_and_q(tmp_path: Path) -> tuple[_IntoDirectory, ExecKnocker]:
    transport = _IntoDirectory(tmp_path)
    knocker = ExecKnocker(transport)
    knocker.prepare(namespace="ns", pod="p", node="n1")
    knocker.prepare(namespace="ns", pod="q", node="n1")
    await _eventually(lambda: len(transport.calls) == 2)
    return transport, knocker


async def test_closing_the_knocker_closes_what_it_opened_ahead(tmp_path: Path) -> None:
    transport, knocker = await _opened_ahead_into_p_and_q(tmp_path)
    await knocker.close()
    assert not knocker.holds(namespace="ns", pod="p")
    assert not knocker.holds(namespace="ns", pod="q")
    assert not (tmp_path / KNOCK_FILE).exists()
    assert knocker.answers.works("n1") is None
    assert await knocker.knock(namespace="ns", pod="p", node="n1", token=TOKEN) is None
    assert len(transport.calls) == 3, "a knock after the close opens its own exec"


async def test_a_knock_whose_gate_ended_with_it_is_no_fault_of_the_node() -> None:
    """Exit 137: containerd killed the command with the gate's container, the gate having opened as the command
    ended; the node's exec works."""
    ended = LocalExec(faults=[lambda call: (ExecStatus(137, "command terminated with exit code 137"), b"")])
    knocker = ExecKnocker(ended)
    with structlog.testing.capture_logs() as logs:
        assert await knocker.knock(namespace="ns", pod="p", node="n1", token=TOKEN) is None
    assert logs[0]["event"] == "gate.knocked"
    assert logs[0]["gate_ended"] is True
    assert knocker.answers.works("n1") is True


async def test_discarding_a_pods_exec_opened_ahead_closes_it_and_bars_nothing(tmp_path: Path) -> None:
    """A held target removed (a rollback) does not keep its exec open until the door's own timeout."""
    _, knocker = await _opened_ahead_into_p_and_q(tmp_path)
    with structlog.testing.capture_logs() as logs:
        knocker.discard(namespace="ns", pod="p")
        knocker.discard(namespace="ns", pod="never-opened")
        await asyncio.sleep(0)
    assert not knocker.holds(namespace="ns", pod="p")
    assert knocker.holds(namespace="ns", pod="q"), "only that pod's"
    assert logs == []
    assert knocker.answers.works("n1") is None
    await knocker.close()
