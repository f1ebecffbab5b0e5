"""The certification workload: requests as specified, k8s/workloads/ in step with the builders, scripts that the
image's Python 3.8 can run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from ai_storage_orchestrator.compare import workload as wl
from ai_storage_orchestrator.compare.workload_scripts import SCRIPTS
from ai_storage_orchestrator.controller.planning.quantities import pod_requests
from ai_storage_orchestrator.models import Resources

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
GIB = 1 << 30


def test_the_pod_requests_2200m_and_5gi_and_1700m_3_5gi_without_data_processor() -> None:
    for pod in (wl.tensorflow_pod(node="n"), wl.simulated_pod(node="n")):
        spec = pod["spec"]
        assert pod_requests(spec) == Resources(2200, 5 * GIB)
        without = {**spec, "containers": [c for c in spec["containers"] if c["name"] != "data-processor"]}
        assert pod_requests(without) == Resources(1700, 3 * GIB + GIB // 2)
        assert spec["restartPolicy"] == "OnFailure"
        assert spec["nodeName"] == "n"
        assert {c["image"] for c in spec["containers"]} == {"tensorflow/tensorflow:2.13.0"}
        assert spec["volumes"][0] == {"name": "shared-data", "persistentVolumeClaim": {"claimName": "training-data"}}


def test_the_simulated_pod_completes_data_processor_through_kwok_annotations() -> None:
    pod = wl.simulated_pod(node="sim-node-0", complete_after="3s", namespace="ns", labels={"x": "y"})
    assert pod["metadata"]["annotations"] == {
        "sim.ai-storage.io/complete-containers": "data-processor",
        "sim.ai-storage.io/complete-after": "3s",
    }
    assert pod["metadata"]["labels"] == {"app": "tensorflow-ai-workload", "x": "y"}
    assert pod["metadata"]["namespace"] == "ns"


def test_k8s_workloads_holds_what_the_builders_make() -> None:
    directory = ROOT / "k8s" / "workloads"
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(wl.MANIFEST_FILES)
    for name, (_, build) in wl.MANIFEST_FILES.items():
        on_disk = yaml.safe_load((directory / name).read_text())
        assert on_disk == build(), f"{name} is stale: python -m ai_storage_orchestrator.compare.workload k8s/workloads"


def test_the_manifests_mount_the_scripts_read_only_and_run_them() -> None:
    config_map, pod = wl.manifest_objects()
    assert config_map["metadata"]["namespace"] == pod["metadata"]["namespace"] == "default"
    assert "nodeName" not in pod["spec"]
    for container in pod["spec"]["containers"]:
        script = container["command"][-1]
        assert Path(script).name in config_map["data"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["scripts"]["readOnly"] is True
        assert mounts["shared-data"]["mountPath"] == "/data"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_are_python_3_8(name: str) -> None:
    ast.parse(SCRIPTS[name], filename=name, feature_version=(3, 8))


def test_the_trainer_checkpoints_every_epoch_and_resumes_from_the_newest() -> None:
    trainer = SCRIPTS["tensorflow-trainer.py"]
    assert "on_epoch_end" in trainer
    assert "load_model" in trainer
    assert "initial_epoch=epoch" in trainer
    processor = SCRIPTS["data-processor.py"]
    assert 'os.environ.get("PROCESS_SECONDS", "45")' in processor
    assert "_SUCCESS" in processor


def test_yaml_renders_scripts_as_literal_blocks() -> None:
    text = wl.render_yaml(wl.scripts_config_map())
    assert "tensorflow-trainer.py: |" in text
    assert yaml.safe_load(text) == wl.scripts_config_map()
