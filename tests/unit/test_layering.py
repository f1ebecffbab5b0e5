"""The layering of DESIGN.md §2 stays true: imports only point downwards, and only `kube` imports
kubernetes_asyncio."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "ai_storage_orchestrator"
# "conventions" (the ai-storage.io keys) imports only stdlib: every layer may import it, the pure planning one too.
CORE = {"models", "errors", "settings", "logging", "metrics", "rest_client", "conventions", ""}
ALLOWED: dict[str, set[str]] = {
    "conventions": set(),  # stdlib only
    "kube": CORE | {"kube"},
    "watchers": CORE | {"kube", "watchers"},
    "checkpoint": CORE | {"kube", "checkpoint"},
    "controller/planning": {"models", "errors", "conventions", "controller/planning"},
    "controller": CORE | {"kube", "watchers", "checkpoint", "controller", "controller/planning"},
    "compare": CORE | {"kube", "compare", "controller/planning"},
}
ENTRY_POINTS = {"cli", "api", "runtime"}


def _layer(module: str) -> str:
    """'controller/planning/x.py' → 'controller/planning'; 'controller/phases.py' → 'controller'; 'models.py' →
    'models'."""
    parts = module.removesuffix(".py").split("/")
    if parts[:2] == ["controller", "planning"]:
        return "controller/planning"
    return parts[0]


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def _target_layer(module: str) -> str | None:
    if module == "ai_storage_orchestrator":
        return ""
    if not module.startswith("ai_storage_orchestrator."):
        return None
    parts = module.split(".")[1:]
    if parts[:2] == ["controller", "planning"]:
        return "controller/planning"
    return parts[0]


MODULES = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_downwards(module: str) -> None:
    layer = _layer(module)
    if layer in ENTRY_POINTS:
        return
    allowed = ALLOWED.get(layer, CORE)
    for imported in _imports(PACKAGE / module):
        target = _target_layer(imported)
        if target is not None:
            assert target in allowed, f"{module} (layer {layer}) imports {imported} (layer {target})"


@pytest.mark.parametrize("module", MODULES)
def test_only_kube_imports_kubernetes_asyncio(module: str) -> None:
    if _layer(module) == "kube":
        return
    offenders = [m for m in _imports(PACKAGE / module) if m.split(".")[0] == "kubernetes_asyncio"]
    assert not offenders, f"{module} imports {offenders}: kubernetes_asyncio belongs in kube/"
