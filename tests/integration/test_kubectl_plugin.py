"""`kubectl migrate`: the kubectl-migrate executable found by kubectl's own plugin discovery, and a migration created
through it against a running orchestrator on the local control plane -- the namespace from the kubeconfig context,
the source node read from the pod, the progress of --wait as plain lines (stdout is a pipe)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from ai_storage_orchestrator.runtime import Orchestrator
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.moves import deploy_certification_pod, wait_data_processor_completed
from tests.cluster.processes import run_command
from tests.cluster.workloads import CERTIFICATION_POD

BIN = Path(sys.executable).parent  # the virtualenv's bin: where pip put kubectl-migrate
COMMAND_DEADLINE = 90.0


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl not found on PATH: this test runs kubectl's plugin discovery (`kubectl migrate --help`,"
            " `kubectl plugin list`); install kubectl (e.g. /usr/bin/kubectl) or put it on PATH"
        )
    return found


def _plugin_env(**extra: str) -> dict[str, str]:
    """PATH with the virtualenv's bin first (kubectl finds kubectl-migrate there), then kubectl's own directory."""
    kubectl_dir = str(Path(_kubectl()).parent)
    assert (BIN / "kubectl-migrate").exists(), f"kubectl-migrate is not installed in {BIN}: pip install -e ."
    path = os.pathsep.join([str(BIN), kubectl_dir, os.environ.get("PATH", "")])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AI_STORAGE_ORCHESTRATOR_")}
    return {**environ, "PATH": path, **extra}


def test_kubectl_finds_the_plugin_and_runs_its_help(tmp_path: Path) -> None:
    env = _plugin_env(KUBECONFIG=str(tmp_path / "none"))  # discovery and --help read no cluster
    shown = subprocess.run(
        [_kubectl(), "migrate", "--help"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: kubectl migrate POD [--to NODE]"), shown.stdout
    assert "kubectl migrate list [-n NAMESPACE | -A]" in shown.stdout
    listed = subprocess.run(
        [_kubectl(), "plugin", "list"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert str(BIN / "kubectl-migrate") in listed.stdout.splitlines(), (listed.stdout, listed.stderr)
    assert "kubectl-migrate is overshadowed" not in listed.stderr


def _kubeconfig_with_namespace(source: Path, target: Path, namespace: str) -> Path:
    """The cluster's kubeconfig with `namespace` as its current context's namespace (what `kubectl config
    set-context --current --namespace` writes)."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    current = config["current-context"]
    for entry in config["contexts"]:
        if entry["name"] == current:
            entry["context"]["namespace"] = namespace
    target.write_text(yaml.safe_dump(config))
    return target


async def _run(argv: list[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    return await run_command(argv, env=env, timeout=COMMAND_DEADLINE)


async def test_kubectl_migrate_pod_to_node_creates_the_migration(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    orchestrator: Orchestrator,
    rest_url: str,
    tmp_path: Path,
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await deploy_certification_pod(core, namespace, source, complete_after="1s")
    await wait_data_processor_completed(orchestrator, namespace)
    kubeconfig = _kubeconfig_with_namespace(cluster.kubeconfig, tmp_path / "kubeconfig", namespace)
    env = _plugin_env(KUBECONFIG=str(kubeconfig), AI_STORAGE_ORCHESTRATOR_URL=rest_url)

    # Neither -n nor --from: the namespace is the context's, the source node the pod's.
    argv = [_kubectl(), "migrate", CERTIFICATION_POD, "--to", target, "--preserve-pv", "--wait"]
    code, out, err = await _run([*argv, "--poll-interval", "0.2"], env)
    assert code == 0, (out, err)
    accepted = re.match(rf"Migration ([0-9a-f]+) accepted: {namespace}/{CERTIFICATION_POD} {source} -> {target}", out)
    assert accepted, out
    migration_id = accepted[1]
    progress = [line.split()[2] for line in out.splitlines() if line.startswith("[")]
    assert len(progress) >= 2, out  # one plain line per change of phase or message, as polled
    assert progress[-1] == "Completed", out
    assert f"Migration {migration_id} completed in " in out
    assert "\x1b[" not in out  # not a terminal: no escape codes

    assert orchestrator.service is not None
    migration = orchestrator.service.get(migration_id)
    assert (migration["status"], migration["pod_namespace"], migration["source_node"]) == (
        "completed",
        namespace,
        source,
    )
    new_pod = await core.read_namespaced_pod(migration["new_pod_name"], namespace)
    assert new_pod.spec.node_name == target

    # list and status through kubectl too: the context's namespace is the default filter.
    code, out, err = await _run([_kubectl(), "migrate", "list"], env)
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [(row[0], row[1], row[5]) for row in rows] == [(migration_id, namespace, "completed")], out
    code, out, err = await _run([_kubectl(), "migrate", "status", migration_id], env)
    assert code == 0, err
    assert f"Pod:          {namespace}/{CERTIFICATION_POD}" in out.splitlines()

    # The bash completion asks kubectl for nodes and pods with the same kubeconfig.
    script = tmp_path / "kubectl-migrate.bash"
    code, out, err = await _run([str(BIN / "kubectl-migrate"), "completion", "bash"], env)
    assert code == 0, err
    script.write_text(out)
    driver = (
        f'source "{script}"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _kubectl_migrate;'
        ' printf "%s\\n" "${COMPREPLY[@]}"'
    )
    code, out, err = await _run(["bash", "--norc", "-c", driver, "bash", "kubectl-migrate", "x", "--to", ""], env)
    assert code == 0, err
    assert set(out.split()) >= {source, target}, out
    code, out, err = await _run(["bash", "--norc", "-c", driver, "bash", "kubectl-migrate", ""], env)
    assert code == 0, err
    assert {migration["new_pod_name"], "list", "status"} <= set(out.split()), out


async def test_kubectl_migrate_names_a_pod_that_is_not_there(
    cluster: ClusterHandle, namespace: str, crd_installed: None, tmp_path: Path
) -> None:
    kubeconfig = _kubeconfig_with_namespace(cluster.kubeconfig, tmp_path / "kubeconfig", namespace)
    env = _plugin_env(KUBECONFIG=str(kubeconfig), AI_STORAGE_ORCHESTRATOR_URL="http://127.0.0.1:9")
    code, out, err = await _run([_kubectl(), "migrate", "no-such-pod", "--to", cluster.node_names[1]], env)
    assert code == 2, (out, err)
    assert f"error: pod {namespace}/no-such-pod not found (kubeconfig {kubeconfig}); or give --from NODE" in err
