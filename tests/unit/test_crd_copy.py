from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit


def test_k8s_crd_is_the_packaged_crd() -> None:
    """The CRD the package installs (--install-crd) and the one `kubectl apply -k k8s/` applies are the same file."""
    packaged = ROOT / "src/ai_storage_orchestrator/crds/podmigrations.yaml"
    deployed = ROOT / "k8s/crds/podmigrations.yaml"
    assert deployed.read_text() == packaged.read_text()
