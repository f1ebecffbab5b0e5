"""`migrate`, `status`, `list`, `cancel` against a canned API served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
from typing import Any

import pytest

from ai_storage_orchestrator.cli import main
from ai_storage_orchestrator.cli.client import TOKEN_ENV, URL_ENV
from ai_storage_orchestrator.rest_client import DEFAULT_URL
from tests.unit.cli.conftest import (
    CONTAINERS,
    MIGRATION_ID,
    CannedApi,
    error_body,
    finished,
    migration,
    parse,
    run_cli,
    screen,
)

pytestmark = pytest.mark.unit

POST = "POST /api/migrations"
LIST = "GET /api/migrations"
GET = "GET /api/migrations/{id}"
DELETE = "DELETE /api/migrations/{id}"
FAST = ["--poll-interval", "0"]

PLAN: dict[str, Any] = {
    "dry_run": True,
    "strategy": "make-before-break",
    "strategy_reason": "the target node has room for both pods",
    "new_pod_name": "trainer-migrated-01234",
    "containers": CONTAINERS,
    "resources": {
        "before": {"cpu_millicores": 1500, "memory_bytes": 3 << 30},
        "after": {"cpu_millicores": 1000, "memory_bytes": 2 << 30},
    },
    "checkpoint_volume": {"volume": "shared", "mount_path": "/data", "container": "trainer"},
    "checks": [
        {"name": "pod_on_source_node", "passed": True, "reason": "pod_not_on_source_node", "message": "pod on a"},
        {"name": "target_ready", "passed": True, "reason": "target_not_ready", "message": "node-b is Ready"},
    ],
    "ok": True,
    "active_migration": None,
    "request": {
        "pod_name": "trainer",
        "pod_namespace": "ml",
        "source_node": "node-a",
        "target_node": "node-b",
        "preserve_pv": True,
        "timeout_seconds": 600,
        "strategy": "auto",
    },
}


def migrate_argv(api: CannedApi, *extra: str) -> list[str]:
    return ["migrate", "trainer", "-n", "ml", "--from", "node-a", "--to", "node-b", "--url", api.url, *extra]


# migrate --------------------------------------------------------------------------------------------------------------
async def test_migrate_wait_follows_the_phases_until_completed(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer(POST, (202, migration("Pending", "waiting for the controller")))
    api.answer(
        GET,
        (200, migration("Validating", "checking the pod and the target node")),
        (200, migration("Validating", "checking the pod and the target node")),
        (200, migration("CreatingTarget", "creating pod trainer-migrated-01234")),
        (200, finished("Completed", "trainer-migrated-01234 is running on node-b")),
    )
    code = await run_cli(migrate_argv(api, "--preserve-pv", "--timeout-seconds", "900", "--wait", *FAST))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert api.requests("POST")[0].body == {
        "pod_name": "trainer",
        "pod_namespace": "ml",
        "source_node": "node-a",
        "target_node": "node-b",
        "preserve_pv": True,
        "strategy": "auto",
        "timeout_seconds": 900,
    }
    assert len(api.requests("GET")) == 4
    assert all(s.path == f"/api/migrations/{MIGRATION_ID}" for s in api.requests("GET"))
    lines = out.splitlines()
    assert lines[0].startswith(f"Migration {MIGRATION_ID} accepted: ml/trainer node-a -> node-b")
    progress = [line for line in lines if line.startswith("[")]
    # One line per change: the repeated Validating answer prints nothing new.
    assert [line.split()[2] for line in progress] == ["Pending", "Validating", "CreatingTarget", "Completed"]
    assert "checking the pod and the target node" in progress[1]
    assert f"Migration {MIGRATION_ID} completed in 12.5s: ml/trainer now runs as pod trainer-migrated-01234" in lines
    assert any(line.split()[:5] == ["data-prep", "init", "terminated", "(exit", "0,"] for line in lines)
    assert any(line.split()[:4] == ["trainer", "container", "running", "migrate"] for line in lines)
    assert "Requests:     before cpu 1500m, memory 3Gi; after cpu 1, memory 2Gi" in lines
    assert err == ""


@pytest.mark.parametrize(
    ("phase", "reason", "message"),
    [
        ("Failed", "target_not_ready", "target pod did not become ready within 600s"),
        ("Cancelled", "cancelled", "cancelled by the user; rolled back to the source pod"),
    ],
)
async def test_migrate_wait_exits_1_when_it_fails_or_is_cancelled(
    api: CannedApi, capsys: pytest.CaptureFixture[str], phase: str, reason: str, message: str
) -> None:
    api.answer(POST, (202, migration("Pending")))
    api.answer(
        GET,
        (200, migration("WaitingForTarget", "waiting for trainer-migrated-01234")),
        (200, migration("RollingBack", message)),
        (200, finished(phase, message, error={"reason": reason, "message": message})),
    )
    assert await run_cli(migrate_argv(api, "--wait", *FAST)) == 1
    out = capsys.readouterr().out
    status = phase.lower()
    assert f"Migration {MIGRATION_ID} of ml/trainer (node-a -> node-b) {status} after 12.5s: {reason}: {message}" in out
    assert f"Error:        {reason}: {message}" in out.splitlines()
    assert "RollingBack" in out


async def test_migrate_wait_rides_out_a_restarting_orchestrator(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer(POST, (202, migration("Pending")))
    api.answer(
        GET,
        (503, error_body("not_ready", "the orchestrator is starting: caches not synced")),
        (200, finished("Completed", "done")),
    )
    assert await run_cli(migrate_argv(api, "--wait", *FAST)) == 0
    captured = capsys.readouterr()
    assert "warning: the orchestrator is starting: caches not synced; still trying" in captured.err
    assert "completed in 12.5s" in captured.out


async def test_migrate_wait_stops_on_a_client_error(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(POST, (202, migration("Pending")))
    api.answer(GET, (404, error_body("migration_not_found", f"no migration with id {MIGRATION_ID}")))
    assert await run_cli(migrate_argv(api, "--wait", *FAST)) == 2
    assert f"error: no migration with id {MIGRATION_ID} (migration_not_found)" in capsys.readouterr().err


async def test_migrate_wait_that_gives_up_says_the_migration_goes_on(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer(POST, (202, migration("Pending")))
    api.answer(GET, (401, error_body("unauthorized", "the token has expired")))
    assert await run_cli(migrate_argv(api, "--wait", *FAST)) == 2
    assert f"migration {MIGRATION_ID} goes on (follow it again with: " in capsys.readouterr().err


async def test_migrate_wait_json_prints_only_the_final_object(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    final = finished("Completed", "done")
    api.answer(POST, (202, migration("Pending")))
    api.answer(GET, (200, migration("CreatingTarget")), (200, final))
    assert await run_cli(migrate_argv(api, "--wait", "-o", "json", *FAST)) == 0
    assert json.loads(capsys.readouterr().out) == final


async def test_migrate_wait_on_a_terminal_redraws_the_progress_line(
    api: CannedApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("TERM", "xterm-256color")
    api.answer(POST, (202, migration("Pending")))
    api.answer(GET, (200, migration("CreatingTarget")), (200, finished("Completed", "done")))
    assert await run_cli(migrate_argv(api, "--wait", *FAST)) == 0
    text = terminal.getvalue()
    # rich's live line: the cursor hidden while it is drawn, each redraw erasing the line, the cursor back at the end.
    assert text.count("\r\x1b[2K") >= 3
    assert text.index("\x1b[?25l") < text.rindex("\x1b[?25h")
    # What stays on the screen once the escapes have done their work: one line per phase, then the summary.
    kept = [line for line in screen(text) if line.startswith("[")]
    assert [line.split()[2] for line in kept] == ["Pending", "CreatingTarget", "Completed"]
    assert "completed in 12.5s" in text


async def test_migrate_without_wait_prints_the_id(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(POST, (202, migration("Pending", "waiting for the controller")))
    code = await run_cli(migrate_argv(api, "--strategy", "checkpoint-restart", "--token", "s3cret"))
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == [
        f"Migration {MIGRATION_ID} accepted: ml/trainer node-a -> node-b (status pending)",
        f"Follow it with: ai-storage-orchestrator status {MIGRATION_ID} --wait",
    ]
    (post,) = api.requests("POST")
    assert post.body["strategy"] == "checkpoint-restart"
    assert "timeout_seconds" not in post.body
    assert "dry_run" not in post.body
    assert post.headers["Authorization"] == "Bearer s3cret"
    assert post.headers["X-Request-ID"].startswith("cli-")
    assert api.requests("GET") == []


async def test_migrate_json_is_the_api_object(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    accepted = migration("Pending")
    api.answer(POST, (202, accepted))
    assert await run_cli(migrate_argv(api, "--output", "json")) == 0
    assert json.loads(capsys.readouterr().out) == accepted


async def test_dry_run_prints_the_plan(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(POST, (200, PLAN))
    assert await run_cli(migrate_argv(api, "--preserve-pv", "--dry-run")) == 0
    assert api.requests("POST")[0].body["dry_run"] is True
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Plan for ml/trainer (node-a -> node-b), dry run: nothing was changed"
    assert "Strategy:        make-before-break (requested auto): the target node has room for both pods" in lines
    assert "Requests before: cpu 1500m, memory 3Gi" in lines
    assert "Requests after:  cpu 1, memory 2Gi" in lines
    assert "Checkpoint:      volume shared at /data (container trainer)" in lines
    assert any(line.split()[:4] == ["data-prep", "init", "terminated", "(exit"] and "skip" in line for line in lines)
    assert "Checks: 2 passed, 0 failed" in lines
    assert "  [ok  ] target_ready: node-b is Ready" in lines
    assert lines[-1] == "Result: the migration would be accepted"


CHOICE: dict[str, Any] = {
    "considered": 3,
    "eligible": 2,
    "chosen": {
        "node": "node-c",
        "score": {
            "images_present": True,
            "images_missing": [],
            "cpu_after": 0.25,
            "memory_after": 0.125,
            "allocated_after": 0.1875,
            "same_workload_pods": 0,
        },
    },
    "runners_up": [],
    "refused": [{"node": "node-a", "reason": "source_equals_target", "check": "c", "message": "source"}],
    "refused_total": 1,
    "ranking": "images, allocation, spread, name",
}


async def test_migrate_without_to_lets_the_orchestrator_choose(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = {**migration("Pending"), "target_node": "node-c", "target_choice": CHOICE}
    api.answer(POST, (202, chosen))
    argv = ["migrate", "trainer", "-n", "ml", "--from", "node-a", "--url", api.url]
    assert await run_cli(argv) == 0
    assert "target_node" not in api.requests("POST")[0].body  # omitted: the orchestrator chooses
    assert await run_cli([*argv, "--to", "auto"]) == 0
    assert api.requests("POST")[1].body["target_node"] == "auto"
    assert "node-a -> node-c" in capsys.readouterr().out
    api.answer(GET, (200, chosen))
    assert await run_cli(["status", MIGRATION_ID, "--url", api.url]) == 0
    assert (
        "Target:       chosen by the orchestrator: node-c (3 node(s) considered, 2 eligible; images already there,"
        " 18.8% allocated after the move, 0 pod(s) of the same workload)"
    ) in capsys.readouterr().out.splitlines()


async def test_dry_run_without_a_fitting_node_says_so(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    check = {"name": "target_node_chosen", "passed": False, "reason": "no_target_node", "message": "no node can take"}
    plan = {**PLAN, "ok": False, "checks": [check], "target_choice": {**CHOICE, "eligible": 0, "chosen": None}}
    api.answer(POST, (200, plan))
    argv = ["migrate", "trainer", "-n", "ml", "--from", "node-a", "--dry-run", "--url", api.url]
    assert await run_cli(argv) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "Target:          no node fits (3 node(s) considered, 0 eligible)" in lines
    assert "  [FAIL] target_node_chosen: no node can take" in lines


async def test_migrate_ignore_pdb_is_sent_only_when_asked(api: CannedApi) -> None:
    api.answer(POST, (202, migration("Pending")))
    assert await run_cli(migrate_argv(api, "--ignore-pdb")) == 0
    assert await run_cli(migrate_argv(api)) == 0
    with_flag, without = api.requests("POST")
    assert with_flag.body["ignore_pdb"] is True
    assert "ignore_pdb" not in without.body


async def test_dry_run_with_ignore_pdb_shows_it_in_the_plan(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(POST, (200, {**PLAN, "request": {**PLAN["request"], "ignore_pdb": True}}))
    assert await run_cli(migrate_argv(api, "--dry-run", "--ignore-pdb")) == 0
    assert api.requests("POST")[0].body["ignore_pdb"] is True
    lines = capsys.readouterr().out.splitlines()
    assert "Ignore PDB:      yes: the source pod is deleted, not evicted" in lines
    assert "Strategy:        make-before-break (requested auto): the target node has room for both pods" in lines


async def test_plan_without_ignore_pdb_has_no_such_line(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(POST, (200, {**PLAN, "request": {**PLAN["request"], "ignore_pdb": False}}))
    assert await run_cli(migrate_argv(api, "--dry-run")) == 0
    assert not any(line.startswith("Ignore PDB") for line in capsys.readouterr().out.splitlines())


async def test_dry_run_that_would_be_refused_exits_1(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    refused = {
        **PLAN,
        "ok": False,
        "checks": [
            *PLAN["checks"][:1],
            {"name": "target_ready", "passed": False, "reason": "target_not_ready", "message": "node-b is NotReady"},
        ],
    }
    api.answer(POST, (200, refused))
    assert await run_cli(migrate_argv(api, "--dry-run")) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "  [FAIL] target_ready: node-b is NotReady" in lines
    assert lines[-1] == "Result: the migration would be refused (target_not_ready)"


async def test_dry_run_with_an_active_migration_exits_1(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(POST, (200, {**PLAN, "active_migration": "ffffffffffff"}))
    assert await run_cli(migrate_argv(api, "--dry-run")) == 1
    out = capsys.readouterr().out
    assert "migration ffffffffffff is already active for the pod" in out


async def test_dry_run_json_round_trips(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(POST, (200, PLAN))
    assert await run_cli(migrate_argv(api, "--dry-run", "-o", "json")) == 0
    assert json.loads(capsys.readouterr().out) == PLAN


async def test_migrate_requires_from(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_cli(["migrate", "trainer", "-n", "ml", "--to", "node-b", "--url", api.url])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --from NODE is required")
    assert "kubectl get pod -n ml trainer -o jsonpath='{.spec.nodeName}'" in err
    assert api.seen == []


def test_dry_run_and_wait_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(["migrate", "p", "-n", "ml", "--from", "a", "--to", "b", "--dry-run", "--wait"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


async def test_api_error_is_reported_with_its_reason(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    failed_checks = [
        {"name": "target_ready", "message": "node-b is NotReady"},
        {"name": "target_fits", "message": "node-b lacks 500m CPU"},
    ]
    api.answer(
        POST,
        (422, error_body("target_not_ready", "node-b is NotReady", check="target_ready", failed_checks=failed_checks)),
    )
    assert await run_cli(migrate_argv(api)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "error: node-b is NotReady (target_not_ready)",
        "  - target_ready: node-b is NotReady",
        "  - target_fits: node-b lacks 500m CPU",
        "  request id: req-canned",
    ]


async def test_conflict_names_the_active_migration(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    message = "migration ffffffffffff is already active for pod ml/trainer"
    api.answer(POST, (409, error_body("migration_in_progress", message, migration_id="ffffffffffff")))
    assert await run_cli(migrate_argv(api, "-o", "json")) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["details"] == {"migration_id": "ffffffffffff"}  # scripts get the raw error
    assert captured.err.splitlines()[:2] == [
        f"error: {message} (migration_in_progress)",
        "  migration already active: ffffffffffff",
    ]


async def test_error_without_a_json_body(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(LIST, (502, "<html>Bad Gateway</html>"))
    assert await run_cli(["list", "--url", api.url]) == 2
    assert capsys.readouterr().err.startswith("error: the orchestrator answered HTTP 502: <html>Bad Gateway</html>")


async def test_unreachable_orchestrator_through_main(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code = await asyncio.to_thread(main, ["status", MIGRATION_ID, "--url", url])
    assert code == 2
    assert capsys.readouterr().err.startswith(f"error: cannot reach the orchestrator at {url}: ")


async def test_http_timeout_is_reported(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.hold = asyncio.Event()
    try:
        assert await run_cli(["status", MIGRATION_ID, "--url", api.url, "--timeout", "0.05"]) == 2
    finally:
        api.hold.set()
    assert "no answer within 0.05s (see --timeout)" in capsys.readouterr().err


def test_connection_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    args = parse(["list"])
    assert (args.url, args.token, args.output) == (DEFAULT_URL, None, "table")
    monkeypatch.setenv(URL_ENV, "https://orchestrator.example:8443")
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    args = parse(["cancel", MIGRATION_ID])
    assert (args.url, args.token) == ("https://orchestrator.example:8443", "from-env")
    assert parse(["cancel", MIGRATION_ID, "--token", "flag"]).token == "flag"


# status ---------------------------------------------------------------------------------------------------------------
async def test_status_shows_the_migration(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(GET, (200, finished("Completed", "trainer-migrated-01234 is running on node-b")))
    assert await run_cli(["status", MIGRATION_ID, "--url", api.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == [
        f"Migration:    {MIGRATION_ID}",
        "Pod:          ml/trainer",
        "Nodes:        node-a -> node-b",
        "Status:       completed (phase Completed)",
        "Message:      trainer-migrated-01234 is running on node-b",
    ]
    assert "Strategy:     auto (resolved to make-before-break)" in lines
    assert "New pod:      trainer-migrated-01234" in lines
    assert "Duration:     12.5s" in lines
    assert "Phases:" in lines
    assert any(line.split()[:2] == ["2024-05-01T10:00:01Z", "Validating"] for line in lines)


async def test_status_shows_ignore_pdb_only_when_set(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(GET, (200, {**migration("RemovingSource"), "ignore_pdb": True}), (200, migration("RemovingSource")))
    assert await run_cli(["status", MIGRATION_ID, "--url", api.url]) == 0
    assert "Ignore PDB:   yes: the source pod is deleted, not evicted" in capsys.readouterr().out.splitlines()
    assert await run_cli(["status", MIGRATION_ID, "--url", api.url]) == 0
    assert "Ignore PDB" not in capsys.readouterr().out


async def test_status_json_round_trips(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    running = migration("Checkpointing", "saving the checkpoint")
    api.answer(GET, (200, running))
    assert await run_cli(["status", MIGRATION_ID, "--url", api.url, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == running


async def test_status_wait_uses_the_exit_codes_of_migrate(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(GET, (200, migration("RemovingSource")), (200, finished("Failed", "boom", error={"reason": "x"})))
    assert await run_cli(["status", MIGRATION_ID, "--url", api.url, "--wait", *FAST]) == 1
    assert f"Migration {MIGRATION_ID} of ml/trainer (node-a -> node-b) failed" in capsys.readouterr().out


async def test_status_of_an_unknown_migration(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(GET, (404, error_body("migration_not_found", "no migration with id ffffffffffff")))
    assert await run_cli(["status", "ffffffffffff", "--url", api.url]) == 2
    assert capsys.readouterr().err.startswith("error: no migration with id ffffffffffff (migration_not_found)")


# list -----------------------------------------------------------------------------------------------------------------
async def test_list_prints_a_table_and_passes_the_filters(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    items = [migration("CreatingTarget", migration_id="bbbbbbbbbbbb"), finished("Completed", "done")]
    api.answer(LIST, (200, {"migrations": items, "count": 2}))
    argv = ["list", "--url", api.url, "--status", "running", "-n", "ml", "--pod", "trainer"]
    assert await run_cli(argv) == 0
    (seen,) = api.requests("GET")
    assert seen.query == {"status": "running", "namespace": "ml", "pod": "trainer"}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "NAMESPACE", "POD", "SOURCE", "TARGET", "STATUS", "PHASE", "AGE"]
    assert lines[1].split()[:7] == ["bbbbbbbbbbbb", "ml", "trainer", "node-a", "node-b", "running", "CreatingTarget"]
    assert lines[2].split()[:7] == [MIGRATION_ID, "ml", "trainer", "node-a", "node-b", "completed", "Completed"]
    assert lines[1].index("CreatingTarget") == lines[0].index("PHASE")  # aligned columns


async def test_list_without_filters_and_empty(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(LIST, (200, {"migrations": [], "count": 0}))
    assert await run_cli(["list", "--url", api.url]) == 0
    assert api.requests("GET")[0].query == {}
    assert capsys.readouterr().out == "No migrations found.\n"


async def test_list_json_round_trips_through_main(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    body = {"migrations": [finished("Completed", "done")], "count": 1}
    api.answer(LIST, (200, body))
    assert await asyncio.to_thread(main, ["list", "--url", api.url, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == body


def page(*items: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"migrations": list(items), "count": len(items)}
    if token is not None:
        body["continue"] = token
    return body


def three_migrations() -> list[dict[str, Any]]:
    return [
        migration("CreatingTarget", migration_id="cccccccccccc"),
        {**migration("Pending", migration_id="bbbbbbbbbbbb"), "pod_name": "a-much-longer-pod-name"},
        finished("Completed", "done"),
    ]


async def test_list_limit_follows_every_page(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    first, second, third = three_migrations()
    api.answer(LIST, (200, page(first, second, token="tok-1")), (200, page(third)))
    assert await run_cli(["list", "--url", api.url, "--limit", "2", "-n", "ml", "--status", "running"]) == 0
    queries = [seen.query for seen in api.requests("GET")]
    assert queries == [
        {"status": "running", "namespace": "ml", "limit": "2"},
        {"status": "running", "namespace": "ml", "limit": "2", "continue": "tok-1"},
    ]
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["ID", "NAMESPACE", "POD", "SOURCE", "TARGET", "STATUS", "PHASE", "AGE"]
    assert [line.split()[0] for line in lines[1:]] == ["cccccccccccc", "bbbbbbbbbbbb", MIGRATION_ID]
    assert lines[1].index("CreatingTarget") == lines[0].index("PHASE")
    assert lines[3].index("node-a") == lines[0].index("SOURCE")  # the second page keeps the first page's columns
    assert captured.err == ""


async def test_list_limit_json_is_one_document_with_every_page(
    api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, third = three_migrations()
    api.answer(LIST, (200, page(first, token="a")), (200, page(second, token="b")), (200, page(third)))
    assert await run_cli(["list", "--url", api.url, "--limit", "1", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"migrations": [first, second, third], "count": 3}
    assert [seen.query.get("continue") for seen in api.requests("GET")] == [None, "a", "b"]


async def test_list_continue_fetches_one_page(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    first, second, _ = three_migrations()
    body = page(first, second, token="tok-2")
    api.answer(LIST, (200, body))
    assert await run_cli(["list", "--url", api.url, "--limit", "2", "--continue", "tok-1", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == body, "the raw page, its token included"
    assert await run_cli(["list", "--url", api.url, "--limit", "2", "--continue", "tok-1"]) == 0
    captured = capsys.readouterr()
    assert [line.split()[0] for line in captured.out.splitlines()] == ["ID", "cccccccccccc", "bbbbbbbbbbbb"]
    assert captured.err == "more migrations: repeat with --continue tok-2\n"
    assert [seen.query for seen in api.requests("GET")] == [{"limit": "2", "continue": "tok-1"}] * 2


async def test_list_continue_on_the_last_page(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(LIST, (200, page()))
    assert await run_cli(["list", "--url", api.url, "--limit", "5", "--continue", "tok-9"]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("No migrations found.\n", "")


async def test_list_limit_with_nothing_to_list(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(LIST, (200, page()))
    assert await run_cli(["list", "--url", api.url, "--limit", "10"]) == 0
    assert capsys.readouterr().out == "No migrations found.\n"


async def test_list_stops_when_a_token_comes_back(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    first, second, _ = three_migrations()
    api.answer(LIST, (200, page(first, token="same")), (200, page(second, token="same")))
    assert await run_cli(["list", "--url", api.url, "--limit", "1"]) == 2
    captured = capsys.readouterr()
    assert "answered the same continue token twice" in captured.err
    assert len(api.requests("GET")) == 2
    assert [line.split()[0] for line in captured.out.splitlines()] == ["ID", "cccccccccccc", "bbbbbbbbbbbb"]


async def test_list_error_on_a_later_page(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    first, _, _ = three_migrations()
    api.answer(
        LIST,
        (200, page(first, token="gone")),
        (400, error_body("invalid_continue", "invalid query: continue is not a continue token this server issued")),
    )
    assert await run_cli(["list", "--url", api.url, "--limit", "1"]) == 2
    captured = capsys.readouterr()
    assert [line.split()[0] for line in captured.out.splitlines()] == ["ID", "cccccccccccc"]
    assert captured.err.startswith("error: invalid query: continue is not a continue token this server issued")


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "1.5"])
def test_list_limit_out_of_range_is_a_usage_error(limit: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(["list", "--limit", limit])
    assert exit_info.value.code == 2
    assert "--limit" in capsys.readouterr().err


# cancel ---------------------------------------------------------------------------------------------------------------
async def test_cancel(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(DELETE, (202, migration("CreatingTarget", "cancel requested")))
    assert await run_cli(["cancel", MIGRATION_ID, "--url", api.url]) == 0
    assert api.requests("DELETE")[0].path == f"/api/migrations/{MIGRATION_ID}"
    assert capsys.readouterr().out.splitlines()[0] == (
        f"Cancel requested for migration {MIGRATION_ID} (status running, phase CreatingTarget);"
        " it rolls back to the source pod."
    )


async def test_cancel_json_and_conflict(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    cancelled = migration("Cancelled", "cancelled")
    api.answer(DELETE, (202, cancelled), (409, error_body("migration_finished", "migration already ended")))
    assert await run_cli(["cancel", MIGRATION_ID, "--url", api.url, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == cancelled
    assert await run_cli(["cancel", MIGRATION_ID, "--url", api.url]) == 2
    assert capsys.readouterr().err.startswith("error: migration already ended (migration_finished)")


async def test_ids_are_escaped_in_the_path(api: CannedApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.answer(GET, (404, error_body("migration_not_found", "no such migration")))
    assert await run_cli(["status", "a b?c", "--url", api.url + "/"]) == 2
    (seen,) = api.seen
    assert seen.raw_path == "/api/migrations/a%20b%3Fc"
    assert seen.query == {}
