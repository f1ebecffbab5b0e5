"""The kubectl plugin's kubeconfig reading: files, context and namespace chosen as kubectl chooses them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_storage_orchestrator.cli.client import UsageError
from ai_storage_orchestrator.cli.kubeconfig import resolve


def write(path: Path, current: str | None, contexts: dict[str, str | None]) -> str:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "contexts": [
            {"name": name, "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})}}
            for name, ns in contexts.items()
        ],
    }
    if current:
        document["current-context"] = current
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_the_current_contexts_namespace(tmp_path: Path) -> None:
    config = write(tmp_path / "config", "dev", {"dev": "ml", "prod": "serving"})
    context = resolve(kubeconfig=config, context=None, environ={})
    assert (context.context, context.namespace, context.paths) == ("dev", "ml", (config,))


def test_context_flag_and_a_context_without_namespace(tmp_path: Path) -> None:
    config = write(tmp_path / "config", "dev", {"dev": "ml", "prod": None})
    assert resolve(kubeconfig=config, context="prod", environ={}).namespace == "default"


def test_an_unknown_context_names_the_known_ones(tmp_path: Path) -> None:
    config = write(tmp_path / "config", "dev", {"dev": "ml"})
    with pytest.raises(UsageError, match=r"context 'nope' not found in the kubeconfig .*contexts: dev"):
        resolve(kubeconfig=config, context="nope", environ={})


def test_kubeconfig_env_merges_first_wins_and_skips_missing_files(tmp_path: Path) -> None:
    first = write(tmp_path / "a", None, {"dev": "from-a"})
    second = write(tmp_path / "b", "dev", {"dev": "from-b", "other": "x"})
    environ = {"KUBECONFIG": os.pathsep.join([str(tmp_path / "missing"), first, second])}
    context = resolve(kubeconfig=None, context=None, environ=environ)
    assert (context.context, context.namespace) == ("dev", "from-a")  # current-context from b, the context from a
    assert context.config_file == os.pathsep.join([first, second])


def test_home_config_then_service_account_then_default(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    write(home / ".kube" / "config", "dev", {"dev": "ml"})
    assert resolve(kubeconfig=None, context=None, environ={"HOME": str(home)}).namespace == "ml"
    account = tmp_path / "namespace"
    account.write_text("team-a\n")
    empty = {"HOME": str(tmp_path / "nowhere")}
    in_pod = resolve(kubeconfig=None, context=None, environ=empty, service_account_namespace=account)
    assert (in_pod.namespace, in_pod.config_file) == ("team-a", None)
    nothing = resolve(kubeconfig=None, context=None, environ=empty, service_account_namespace=tmp_path / "none")
    assert nothing.namespace == "default"


def test_a_missing_or_broken_kubeconfig_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--kubeconfig .*: no such file"):
        resolve(kubeconfig=str(tmp_path / "absent"), context=None, environ={})
    broken = tmp_path / "broken"
    broken.write_text("contexts: [\n")
    with pytest.raises(UsageError, match="is not valid YAML"):
        resolve(kubeconfig=str(broken), context=None, environ={})
    listed = tmp_path / "list"
    listed.write_text("- a\n- b\n")
    with pytest.raises(UsageError, match="is not a kubeconfig"):
        resolve(kubeconfig=str(listed), context=None, environ={})
