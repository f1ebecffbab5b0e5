"""`kubectl migrate` (the kubectl-migrate executable): the plain CLI's commands with kubectl's defaults -- the
kubeconfig context's namespace, the pod's node -- against a canned orchestrator on 127.0.0.1."""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from ai_storage_orchestrator.cli import plugin
from ai_storage_orchestrator.cli.client import execute
from tests.cluster.processes import free_port
from tests.unit.cli.conftest import MIGRATION_ID, CannedApi, migration

POST = "POST /api/migrations"
LIST = "GET /api/migrations"


async def run_plugin(argv: Sequence[str]) -> int:
    args = plugin.build_parser().parse_args(plugin.plugin_argv(argv))
    return await execute(args.command_coroutine, args)


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$KUBECONFIG with context `dev` (namespace ml, current) and `prod` (namespace serving); its server is a closed
    loopback port, so nothing can be read from it."""
    path = tmp_path / "kubeconfig"
    server = f"http://127.0.0.1:{free_port()}"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dev",
                "clusters": [{"name": "local", "cluster": {"server": server}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "dev", "context": {"cluster": "local", "user": "me", "namespace": "ml"}},
                    {"name": "prod", "context": {"cluster": "local", "user": "me", "namespace": "serving"}},
                ],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["trainer", "--to", "b"], ["migrate", "trainer", "--to", "b"]),
        (["-n", "ml", "trainer", "--to", "b"], ["migrate", "-n", "ml", "trainer", "--to", "b"]),
        (["list", "-A"], ["list", "-A"]),
        (["status", "x"], ["status", "x"]),
        (["migrate", "list", "--to", "b"], ["migrate", "list", "--to", "b"]),  # a pod named like a command
        (["--help"], ["--help"]),
        ([], []),
        (["-n", "ml", "list"], ["list", "-n", "ml"]),  # kubectl's flags first, as kubectl users type them
        (["--context=prod", "-n", "ml", "drain", "gpu-1"], ["drain", "--context=prod", "-n", "ml", "gpu-1"]),
    ],
)
def test_a_first_word_that_is_no_command_is_the_pod_to_migrate(argv: list[str], expected: list[str]) -> None:
    assert plugin.plugin_argv(argv) == expected


async def test_migrate_takes_the_namespace_of_the_current_context(
    api: CannedApi, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answer(POST, (202, migration("Pending")))
    assert await run_plugin(["pod/trainer", "--to", "node-b", "--from", "node-a", "--url", api.url]) == 0
    body = api.requests("POST")[0].body
    assert (body["pod_name"], body["pod_namespace"], body["source_node"]) == ("trainer", "ml", "node-a")
    assert capsys.readouterr().out.splitlines()[-1] == f"Follow it with: kubectl migrate status {MIGRATION_ID} --wait"


async def test_migrate_namespace_flag_and_context_flag(api: CannedApi, kubeconfig: Path) -> None:
    api.answer(POST, (202, migration("Pending")))
    base = ["trainer", "--to", "node-b", "--from", "node-a", "--url", api.url]
    assert await run_plugin([*base, "--context", "prod"]) == 0
    assert await run_plugin([*base, "--context", "prod", "-n", "other"]) == 0
    assert [s.body["pod_namespace"] for s in api.requests("POST")] == ["serving", "other"]


async def test_migrate_without_from_asks_the_api_server_and_says_so_when_it_cannot(
    api: CannedApi, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_plugin(["trainer", "--to", "node-b", "--url", api.url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read pod ml/trainer (kubeconfig {kubeconfig}): ")
    assert err.rstrip().endswith("; or give --from NODE")
    assert api.requests("POST") == []


@pytest.mark.parametrize("pod", ["deploy/trainer", "pod/"])
async def test_only_pods_can_be_migrated(api: CannedApi, pod: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_plugin([pod, "--to", "b", "--from", "a", "-n", "ml", "--url", api.url]) == 2
    assert "POD must be NAME or pod/NAME" in capsys.readouterr().err


async def test_an_unknown_context_is_a_usage_error(
    api: CannedApi, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_plugin(["trainer", "--to", "b", "--from", "a", "--context", "nope", "--url", api.url]) == 2
    assert "error: context 'nope' not found in the kubeconfig" in capsys.readouterr().err


async def test_list_defaults_to_the_context_namespace_and_a_lists_all(api: CannedApi, kubeconfig: Path) -> None:
    api.answer(LIST, (200, {"migrations": [], "count": 0}))
    assert await run_plugin(["list", "--url", api.url]) == 0
    assert await run_plugin(["list", "-n", "x", "--url", api.url]) == 0
    assert await run_plugin(["list", "-A", "--url", api.url]) == 0
    assert [s.query.get("namespace") for s in api.requests("GET")] == ["ml", "x", None]


def test_list_namespace_and_all_namespaces_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        plugin.main(["list", "-A", "-n", "x"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_help_shows_both_forms(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        plugin.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kubectl migrate POD [--to NODE]")
    assert "kubectl migrate list [-n NAMESPACE | -A]" in out
    with pytest.raises(SystemExit):
        plugin.main(["trainer", "--help"])
    assert capsys.readouterr().out.startswith("usage: kubectl migrate [-h] [-n NAMESPACE] [--to NODE]")


async def test_logs_without_a_source_reads_the_deployed_orchestrator_with_the_kubeconfig_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(f'#!/bin/sh\necho "$@" > "{tmp_path}/args"\necho plain line\n')
    kubectl.chmod(0o755)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    argv = ["logs", "--kubectl", str(kubectl), "--kubeconfig", "/k", "--context", "c"]
    assert await run_plugin(argv) == 0
    assert (tmp_path / "args").read_text().split() == [
        *("--kubeconfig", "/k", "--context", "c", "logs", "-n", "kube-system", "deploy/ai-storage-orchestrator")
    ]
    assert capsys.readouterr().out == "plain line\n"


def test_completion_is_for_the_plugin_executable(capsys: pytest.CaptureFixture[str]) -> None:
    assert plugin.main(["completion", "bash"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("complete -F _kubectl_migrate kubectl-migrate")
