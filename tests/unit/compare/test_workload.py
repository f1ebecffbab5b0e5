"""The certification workload: requests as specified, k8s/workloads/ in step with the builders, scripts that the
image's Python 3.8 can run; the numpy variant's pod, programs and trainer helpers (and the programs run for real where
numpy is at hand)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_storage_orchestrator.compare import workload as wl
from ai_storage_orchestrator.compare.numpy_scripts import SCRIPTS as NUMPY_SCRIPTS
from ai_storage_orchestrator.compare.workload_scripts import SCRIPTS
from ai_storage_orchestrator.controller.planning.quantities import cpu_millicores, pod_requests
from ai_storage_orchestrator.models import Resources

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


# The numpy variant ---------------------------------------------------------------------------------------------------


def _cpu(container: dict[str, Any], kind: str = "requests") -> int:
    return cpu_millicores(container["resources"][kind]["cpu"])


def test_the_numpy_pod_is_the_tensorflow_pod_on_the_local_image_with_cpu_that_fits_two_cores() -> None:
    tensorflow = wl.tensorflow_pod(node="n", namespace="ns", labels={"x": "y"})
    pod = wl.numpy_pod(node="n", namespace="ns", labels={"x": "y"})
    assert (
        wl.workload_pod(
            "numpy", node="n", namespace="ns", claim="training-data", complete_after="1s", labels={"x": "y"}
        )
        == pod
    )
    spec = pod["spec"]
    assert [c["name"] for c in spec["containers"]] == ["tensorflow-trainer", "data-processor", "model-monitor"]
    assert {c["image"] for c in spec["containers"]} == {"aiso.local/numpy-workload:1"} == {wl.NUMPY_IMAGE}
    assert {c["imagePullPolicy"] for c in spec["containers"]} == {"Never"}
    assert [_cpu(c) for c in spec["containers"]] == [750, 250, 100]
    assert all(c["resources"]["requests"] == c["resources"]["limits"] for c in spec["containers"])
    assert pod_requests(spec) == Resources(1100, 5 * GIB)
    assert pod_requests(spec).cpu_millicores <= 2000
    without = {**spec, "containers": [c for c in spec["containers"] if c["name"] != "data-processor"]}
    assert pod_requests(without) == Resources(850, 3 * GIB + GIB // 2)
    # everything else is the tensorflow pod's: memory, commands, env, mounts, volumes, policy, metadata
    for ours, theirs in zip(spec["containers"], tensorflow["spec"]["containers"], strict=True):
        assert ours["resources"]["requests"]["memory"] == theirs["resources"]["requests"]["memory"]
        assert ours["resources"]["limits"]["memory"] == theirs["resources"]["limits"]["memory"]
        assert _cpu(ours) * 2 == _cpu(theirs)
        assert _cpu(ours, "limits") * 2 == _cpu(theirs, "limits")
        same = {k: v for k, v in ours.items() if k not in ("image", "imagePullPolicy", "resources")}
        assert same == {k: v for k, v in theirs.items() if k not in ("image", "resources")}
    assert (
        spec["volumes"]
        == tensorflow["spec"]["volumes"]
        == [
            {"name": "shared-data", "persistentVolumeClaim": {"claimName": "training-data"}},
            {"name": "scripts", "configMap": {"name": "tensorflow-ai-workload-scripts"}},
        ]
    )
    assert {k: v for k, v in spec.items() if k != "containers"} == {
        k: v for k, v in tensorflow["spec"].items() if k != "containers"
    }
    assert pod["metadata"] == tensorflow["metadata"]


def test_the_tensorflow_variant_keeps_its_requests_and_default_pull_policy() -> None:
    assert wl.container_specs("tensorflow") == wl.CONTAINERS == wl.container_specs("simulated")
    assert [s.cpu for s in wl.CONTAINERS] == ["1500m", "500m", "200m"]
    assert [s.cpu for s in wl.container_specs("numpy")] == ["750m", "250m", "100m"]
    assert [s.memory for s in wl.container_specs("numpy")] == [s.memory for s in wl.CONTAINERS]
    assert all("imagePullPolicy" not in c for c in wl.tensorflow_pod(node="n")["spec"]["containers"])


def test_each_real_variant_ships_its_programs_in_the_same_config_map() -> None:
    tensorflow = wl.scripts_config_map(namespace="ns")
    numpy = wl.scripts_config_map(namespace="ns", workload="numpy")
    assert tensorflow["metadata"] == numpy["metadata"]
    assert tensorflow["data"] == dict(SCRIPTS)
    assert numpy["data"] == dict(NUMPY_SCRIPTS)
    assert numpy["data"]["tensorflow-trainer.py"] != tensorflow["data"]["tensorflow-trainer.py"]
    # data-processor (which redoes its work on every start) and model-monitor need only numpy: the very same programs
    assert numpy["data"]["data-processor.py"] == tensorflow["data"]["data-processor.py"]
    assert numpy["data"]["model-monitor.py"] == tensorflow["data"]["model-monitor.py"]
    for container in wl.numpy_pod()["spec"]["containers"]:
        assert Path(container["command"][-1]).name in numpy["data"]
    assert "import tensorflow" not in "".join(numpy["data"].values())
    assert set(wl.SCRIPTS_BY_WORKLOAD) == set(wl.REAL_WORKLOADS)
    with pytest.raises(ValueError, match="runs no scripts"):
        wl.scripts_config_map(workload="simulated")


@pytest.mark.parametrize("name", sorted(NUMPY_SCRIPTS))
def test_numpy_scripts_compile_for_python_3_11(name: str) -> None:
    compile(NUMPY_SCRIPTS[name], name, "exec")
    ast.parse(NUMPY_SCRIPTS[name], filename=name, feature_version=(3, 11))


def test_an_unknown_workload_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown workload 'keras'"):
        wl.workload_pod("keras", node="n", namespace="ns", claim="c", complete_after="1s", labels={})


# The numpy trainer's helpers, without numpy: the script is loaded with an empty stand-in module (nothing at module
# level or in these helpers touches it).


def _load_trainer(monkeypatch: pytest.MonkeyPatch, data_dir: Path, **env: str) -> Any:
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setitem(sys.modules, "numpy", types.ModuleType("numpy"))
    module = types.ModuleType("numpy_trainer")
    exec(compile(NUMPY_SCRIPTS["tensorflow-trainer.py"], "tensorflow-trainer.py", "exec"), module.__dict__)
    return module


def _touch(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(name.encode())


def test_the_trainer_lists_complete_checkpoints_oldest_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    trainer = _load_trainer(monkeypatch, tmp_path)
    assert trainer.checkpoints() == []  # no directory yet
    directory = tmp_path / "checkpoints"
    _touch(directory, "epoch-000010.npz", "epoch-000002.npz", "epoch-000011.npz.partial", "epoch-2.npz", "notes.txt")
    assert trainer.checkpoints() == [
        (2, str(directory / "epoch-000002.npz")),
        (10, str(directory / "epoch-000010.npz")),
    ]


def test_the_trainer_keeps_the_newest_checkpoints(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    trainer = _load_trainer(monkeypatch, tmp_path, KEEP_CHECKPOINTS="2")
    directory = tmp_path / "checkpoints"
    _touch(directory, *(f"epoch-{n:06d}.npz" for n in (1, 2, 3, 4)), "epoch-000005.npz.partial")
    trainer.prune()
    assert sorted(p.name for p in directory.iterdir()) == [
        "epoch-000003.npz", "epoch-000004.npz", "epoch-000005.npz.partial"
    ]  # fmt: skip


def test_the_trainer_replaces_files_whole(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    trainer = _load_trainer(monkeypatch, tmp_path)
    path = tmp_path / "metrics" / "trainer.json"
    trainer.write_atomically(str(path), lambda handle: handle.write('{"epoch": 1}'))
    assert path.read_text() == '{"epoch": 1}'

    def fails(handle: Any) -> None:
        handle.write('{"epo')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        trainer.write_atomically(str(path), fails)
    assert path.read_text() == '{"epoch": 1}'  # readers never see part of a file
    trainer.write_atomically(str(path), lambda handle: handle.write(b"\x00\x01"), mode="wb")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["trainer.json"]


def test_the_trainer_resumes_from_the_newest_checkpoint_that_reads_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = _load_trainer(monkeypatch, tmp_path)
    assert trainer.resume(lambda path: pytest.fail("nothing to load")) is None
    directory = tmp_path / "checkpoints"
    _touch(directory, "epoch-000001.npz", "epoch-000002.npz", "epoch-000003.npz")

    def load(path: str) -> str:
        if path.endswith("3.npz"):
            raise ValueError("File is not a zip file")
        return f"state of {Path(path).name}"

    assert trainer.resume(load) == (2, str(directory / "epoch-000002.npz"), "state of epoch-000002.npz")
    assert "cannot read" in capsys.readouterr().out
    assert trainer.resume(lambda path: f"state of {Path(path).name}")[0] == 3


# The numpy programs for real, where an interpreter with numpy is at hand: this one, or $AISO_NUMPY_PYTHON (for
# example a venv with Debian's numpy version). The project does not depend on numpy, so these skip without it.


@pytest.fixture(scope="module")
def numpy_python() -> str:
    python = os.environ.get("AISO_NUMPY_PYTHON") or sys.executable
    if subprocess.run([python, "-c", "import numpy"], capture_output=True).returncode != 0:
        pytest.skip(f"no numpy for {python} (set AISO_NUMPY_PYTHON to an interpreter that has it)")
    return python


def _run(python: str, name: str, data_dir: Path, **env: str) -> str:
    script = data_dir.parent / name
    script.write_text(NUMPY_SCRIPTS[name])
    variables = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATA_DIR": str(data_dir), "OPENBLAS_NUM_THREADS": "1", **env
    }  # fmt: skip
    done = subprocess.run([python, "-u", str(script)], capture_output=True, text=True, env=variables, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.tools
def test_the_numpy_trainer_trains_checkpoints_and_resumes(numpy_python: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    knobs = {"TRAIN_SAMPLES": "512", "KEEP_CHECKPOINTS": "2"}
    first = _run(numpy_python, "tensorflow-trainer.py", data, EPOCHS="3", **knobs)
    assert "starting from scratch" in first
    assert sorted(p.name for p in (data / "checkpoints").iterdir()) == ["epoch-000002.npz", "epoch-000003.npz"]
    metrics = json.loads((data / "metrics" / "trainer.json").read_text())
    assert metrics["epoch"] == 3
    assert 0 < metrics["loss"] < 10
    assert 0 < metrics["mae"] < 10
    second = _run(numpy_python, "tensorflow-trainer.py", data, EPOCHS="4", **knobs)
    assert "(epoch 3)" in second
    assert "epoch 4 saved" in second
    resumed = json.loads((data / "metrics" / "trainer.json").read_text())
    assert resumed["epoch"] == 4
    assert resumed["loss"] < metrics["loss"] * 1.5  # continued from the checkpoint, not from random weights
    assert sorted(p.name for p in (data / "checkpoints").iterdir()) == ["epoch-000003.npz", "epoch-000004.npz"]


@pytest.mark.tools
def test_the_numpy_data_processor_redoes_its_work_on_every_start(numpy_python: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    knobs = {"PROCESS_SECONDS": "0", "DATASET_SHARDS": "1"}
    assert "done: 1 passes" in _run(numpy_python, "data-processor.py", data, **knobs)
    dataset = data / "dataset"
    assert sorted(p.name for p in dataset.iterdir()) == ["_SUCCESS", "manifest.json", "shard-00.npz"]
    first = json.loads((dataset / "manifest.json").read_text())
    assert "done: 1 passes" in _run(numpy_python, "data-processor.py", data, **knobs)  # the marker is there: redone
    assert json.loads((dataset / "manifest.json").read_text())["finished"] > first["finished"]


@pytest.mark.tools
def test_programs_end_promptly_on_sigterm_as_pid_1_would_need(tmp_path: Path) -> None:
    """PID 1 of a container gets no default SIGTERM action: each program installs its own handler (143 = 128 + 15).
    model-monitor needs no numpy, so it runs here; the others carry the same two lines."""
    import signal

    from ai_storage_orchestrator.compare import numpy_scripts, workload_scripts

    handler = "signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))"
    programs = [workload_scripts.TRAINER, workload_scripts.DATA_PROCESSOR, workload_scripts.MODEL_MONITOR]
    assert all(handler in program for program in [*programs, numpy_scripts.TRAINER])
    script = tmp_path / "model-monitor.py"
    script.write_text(workload_scripts.MODEL_MONITOR)
    env = {"DATA_DIR": str(tmp_path), "MONITOR_INTERVAL": "60"}
    with subprocess.Popen([sys.executable, "-u", str(script)], stdout=subprocess.PIPE, env=env, text=True) as child:
        assert child.stdout is not None
        assert child.stdout.readline().startswith("watching")  # past start-up: the handler is installed
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 143


def test_the_tensorflow_local_pod_runs_the_tensorflow_programs_on_the_local_image_at_the_scaled_cpu() -> None:
    pod = wl.workload_pod(
        "tensorflow-local", node="n", namespace="ns", claim="training-data", complete_after="1s", labels={}
    )
    containers = pod["spec"]["containers"]
    assert {c["image"] for c in containers} == {"aiso.local/tensorflow-workload:2.13"}
    assert {c["imagePullPolicy"] for c in containers} == {"Never"}
    assert [c["resources"]["requests"]["cpu"] for c in containers] == ["750m", "250m", "100m"]
    assert wl.container_specs("tensorflow-local") == wl.container_specs("numpy")
    numpy = wl.numpy_pod(node="n", namespace="ns")["spec"]
    for field in ("volumes", "restartPolicy", "nodeName"):
        assert pod["spec"][field] == numpy[field]
    programs = wl.scripts_config_map(namespace="ns", workload="tensorflow-local")["data"]
    assert programs == wl.scripts_config_map(namespace="ns", workload="tensorflow")["data"]
    assert "import tensorflow as tf" in programs["tensorflow-trainer.py"]
