"""What the kubectl plugin reads from the kubeconfig, the way kubectl reads it: which files (``--kubeconfig``, else
every file of ``$KUBECONFIG``, else ``~/.kube/config``), which context (``--context``, else the first
``current-context`` set) and that context's namespace (else ``default``; in a pod without a kubeconfig, the service
account's namespace).

Merging follows kubectl's rules for what is read here: the first file that sets ``current-context`` wins, and the
first file that defines a context name wins for that name. Files of ``$KUBECONFIG`` that do not exist are skipped; a
``--kubeconfig`` that does not exist is an error."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ai_storage_orchestrator.cli.client import UsageError

DEFAULT_NAMESPACE = "default"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True, slots=True)
class KubeContext:
    """The kubeconfig files in use (empty: none, in-cluster credentials), the context and its namespace."""

    paths: tuple[str, ...]
    context: str | None
    namespace: str
    namespace_source: str

    @property
    def config_file(self) -> str | None:
        """The files as one ``KUBECONFIG``-style value (what kube.client's loader merges), or None."""
        return os.pathsep.join(self.paths) if self.paths else None


def kubeconfig_paths(given: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    env = os.environ if environ is None else environ
    if given:
        if not Path(given).expanduser().is_file():
            raise UsageError(f"--kubeconfig {given}: no such file")
        return (str(Path(given).expanduser()),)
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return tuple(str(Path(p).expanduser()) for p in listed if Path(p).expanduser().is_file())
    default = Path(env.get("HOME") or Path.home()) / ".kube" / "config"
    return (str(default),) if default.is_file() else ()


def _load(path: str) -> Mapping[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except OSError as error:
        raise UsageError(f"cannot read kubeconfig {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"kubeconfig {path} is not valid YAML: {error}") from None
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise UsageError(f"kubeconfig {path} is not a kubeconfig (a YAML mapping)")
    return document


def resolve(
    *,
    kubeconfig: str | None,
    context: str | None,
    environ: Mapping[str, str] | None = None,
    service_account_namespace: Path = SERVICE_ACCOUNT_NAMESPACE,
) -> KubeContext:
    """The context and namespace kubectl would use with these flags and this environment."""
    paths = kubeconfig_paths(kubeconfig, environ)
    current: str | None = None
    contexts: dict[str, Mapping[str, Any]] = {}
    for path in paths:
        document = _load(path)
        if current is None and isinstance(document.get("current-context"), str) and document["current-context"]:
            current = document["current-context"]
        for entry in document.get("contexts") or []:
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                body = entry.get("context")
                contexts.setdefault(entry["name"], body if isinstance(body, Mapping) else {})
    chosen = context or current
    if context and context not in contexts:
        where = ", ".join(paths) or "no kubeconfig found"
        known = ", ".join(sorted(contexts)) or "none"
        raise UsageError(f"context {context!r} not found in the kubeconfig ({where}; contexts: {known})")
    if chosen and chosen in contexts:
        namespace = contexts[chosen].get("namespace")
        if isinstance(namespace, str) and namespace:
            return KubeContext(paths, chosen, namespace, f"context {chosen}")
        return KubeContext(paths, chosen, DEFAULT_NAMESPACE, f"context {chosen} sets none")
    if not paths and service_account_namespace.is_file():
        namespace = service_account_namespace.read_text(encoding="utf-8").strip()
        if namespace:
            return KubeContext(paths, None, namespace, "the pod's service account")
    return KubeContext(paths, chosen, DEFAULT_NAMESPACE, "no current context")
