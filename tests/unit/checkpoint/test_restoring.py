"""The target pod learns where its checkpoint is and restores the artifacts before its containers start."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ai_storage_orchestrator.checkpoint import (
    CHECKPOINT_DIR_ENV,
    CHECKPOINT_PATH_ANNOTATION,
    InvalidCheckpointAnnotation,
    Location,
    PVCheckpointer,
    parse_checkpoint_annotations,
    prepare_target_pod,
    without_checkpoint,
)
from ai_storage_orchestrator.checkpoint.errors import CheckpointError
from ai_storage_orchestrator.checkpoint.layout import checksum_list
from ai_storage_orchestrator.checkpoint.restoring import (
    RESTORE_SCRIPT,
    RESTORE_STATE_ENV,
    RESTORE_STATE_PATH,
    RESTORE_STATE_VOLUME,
    restore_container_name,
)
from tests.unit.checkpoint.fakes import LocalExec
from tests.unit.checkpoint.pods import target_of, volume, workload

ROOT = Path("/work")
DIRECTORY = "/work/shared/.ai-storage/namespaces/ml/checkpoints/trainer-pod/abc123"


def location() -> Location:
    return Location("shared-data", "trainer", "/work/shared", DIRECTORY, "trainer-pod")


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def test_env_annotation_and_one_restore_init_container_per_artifact_container() -> None:
    pod = workload(
        ROOT,
        artifacts={"trainer": ["/work/scratch-trainer", "/tmp/rootfs-state"], "processor": ["/work/scratch-processor"]},
    )
    target, summary = prepare_target_pod(
        source_pod=pod, target_pod=target_of(pod), spec=parse_checkpoint_annotations(pod), location=location()
    )
    assert target["metadata"]["annotations"][CHECKPOINT_PATH_ANNOTATION] == DIRECTORY
    init = target["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["ai-storage-restore-trainer", "ai-storage-restore-processor"]
    trainer = init[0]
    assert trainer["image"] == "example.com/trainer:1"
    assert trainer["command"] == [
        "sh",
        "-c",
        RESTORE_SCRIPT,
        "ai-storage-restore",
        DIRECTORY,
        "trainer",
        "/work/scratch-trainer",
        checksum_list("trainer", "/work/scratch-trainer"),
    ]
    assert trainer["volumeMounts"] == [
        {"name": "shared-data", "mountPath": "/work/shared", "readOnly": True},
        {"name": "optimizer", "mountPath": "/work/scratch-trainer"},
        {"name": RESTORE_STATE_VOLUME, "mountPath": RESTORE_STATE_PATH},
    ]
    assert env(trainer)[RESTORE_STATE_ENV] == RESTORE_STATE_PATH
    assert {"name": RESTORE_STATE_VOLUME, "emptyDir": {}} in target["spec"]["volumes"], "as long as the pod lives"
    assert trainer["securityContext"] == {"runAsUser": 1000}, "restored files get the container's owner"
    assert trainer["resources"] == {"requests": {"cpu": "1"}}
    processor = init[1]
    assert processor["volumeMounts"][1] == {"name": "processed", "mountPath": "/work/scratch-processor"}
    assert "resources" not in processor, "a skipped container's resources are not requested again"
    for container in [*init, *target["spec"]["containers"]]:
        assert env(container)[CHECKPOINT_DIR_ENV] == DIRECTORY
    assert summary["restored"] == [
        {"container": "trainer", "path": "/work/scratch-trainer"},
        {"container": "processor", "path": "/work/scratch-processor"},
    ]
    # The processor is left out of the target: its artifact is re-declared for the trainer, which mounts that
    # emptyDir too, so a later move copies it again; the processor's own annotation would name a missing container.
    annotations = target["metadata"]["annotations"]
    assert "ai-storage.io/checkpoint-artifacts.processor" not in annotations
    assert json.loads(annotations["ai-storage.io/checkpoint-artifacts.trainer"]) == [
        "/work/scratch-trainer",
        "/tmp/rootfs-state",
        "/work/scratch-processor",
    ]
    assert summary["carried"] == [{"from": "processor", "to": "trainer", "path": "/work/scratch-processor"}]
    assert parse_checkpoint_annotations(target).checkpointed_paths() == {
        "trainer": ("/work/scratch-trainer", "/tmp/rootfs-state", "/work/scratch-processor")
    }
    [missing] = summary["notRestored"]
    assert missing["path"] == "/tmp/rootfs-state"
    assert "own filesystem" in missing["why"]


def test_env_is_each_containers_own_view_of_the_directory() -> None:
    pod = workload(ROOT)
    monitor = pod["spec"]["containers"][2]
    monitor["volumeMounts"] = [{"name": "shared-data", "mountPath": "/mnt/ckpt", "subPath": ".ai-storage"}]
    target, _ = prepare_target_pod(
        source_pod=pod, target_pod=target_of(pod), spec=parse_checkpoint_annotations(pod), location=location()
    )
    views = {c["name"]: env(c)[CHECKPOINT_DIR_ENV] for c in target["spec"]["containers"]}
    assert views == {"trainer": DIRECTORY, "monitor": "/mnt/ckpt/namespaces/ml/checkpoints/trainer-pod/abc123"}
    assert "initContainers" not in target["spec"], "no artifacts: nothing to restore"


def test_artifact_on_a_volume_the_target_dropped_is_not_restored() -> None:
    pod = workload(ROOT, artifacts={"processor": ["/work/scratch-processor"]})
    target = target_of(pod)
    target["spec"]["volumes"] = [v for v in target["spec"]["volumes"] if v["name"] != "processed"]
    for container in target["spec"]["containers"]:
        container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "processed"]
    prepared, summary = prepare_target_pod(
        source_pod=pod, target_pod=target, spec=parse_checkpoint_annotations(pod), location=location()
    )
    assert "initContainers" not in prepared["spec"]
    assert "not part of the target pod" in summary["notRestored"][0]["why"]


def test_earlier_restore_containers_are_replaced_and_the_change_can_be_undone() -> None:
    pod = workload(ROOT, artifacts={"trainer": ["/work/scratch-trainer"]})
    target = target_of(pod)
    original = copy.deepcopy(target)
    target["spec"]["initContainers"] = [{"name": "ai-storage-restore-trainer", "image": "old"}, {"name": "setup"}]
    prepared, summary = prepare_target_pod(
        source_pod=pod, target_pod=target, spec=parse_checkpoint_annotations(pod), location=location()
    )
    names = [c["name"] for c in prepared["spec"]["initContainers"]]
    assert names == ["ai-storage-restore-trainer", "setup"]
    assert prepared["spec"]["initContainers"][0]["image"] == "example.com/trainer:1"
    assert summary["replaced"] == ["ai-storage-restore-trainer"]
    undone = without_checkpoint(prepared)
    assert [c["name"] for c in undone["spec"]["initContainers"]] == ["setup"]
    del undone["spec"]["initContainers"]
    assert undone == original


def test_restore_container_names_fit_63_characters() -> None:
    assert restore_container_name("trainer") == "ai-storage-restore-trainer"
    long = restore_container_name("x" * 63)
    assert len(long) <= 63
    assert long.startswith("ai-storage-restore-xxx")
    assert long != restore_container_name("x" * 62 + "y")


def _prepare(pod: dict[str, Any], *, shared: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkpointer's `prepare` of `pod` as planning calls it (migration abc123; `shared`: planning found the
    pod's shared volume)."""
    checkpointer = PVCheckpointer(LocalExec())
    return checkpointer.prepare(
        source_pod=pod,
        target_pod=target_of(pod),
        migration_id="abc123",
        pod_base="trainer-pod",
        volume=volume(ROOT) if shared else None,
        spec=checkpointer.declared(pod),
    )


def test_prepare_refuses_artifacts_on_the_shared_volume_and_artifacts_without_one() -> None:
    pod = workload(ROOT, artifacts={"trainer": ["/work/shared/models"]})
    with pytest.raises(InvalidCheckpointAnnotation, match="on the shared volume"):
        _prepare(pod)
    pod = workload(ROOT, artifacts={"trainer": ["/work/scratch-trainer"]})
    with pytest.raises(CheckpointError) as no_volume:
        _prepare(pod, shared=False)
    assert no_volume.value.reason == "no_shared_volume"


def test_prepare_refuses_artifacts_the_restore_could_not_read() -> None:
    """Written through the checkpoint's container as its user, restored as the artifact container's user: two
    non-root users the pod spec names cannot both read 0600 files. Refused before anything runs."""
    pod = workload(ROOT, artifacts={"monitor": ["/work/scratch-trainer"]})
    writer = str(volume(ROOT)["container"])
    owner = next(c for c in pod["spec"]["containers"] if c["name"] == "monitor")
    assert writer != "monitor"
    pod["spec"]["securityContext"] = {"runAsUser": 1000}
    owner["securityContext"] = {"runAsUser": 2000}

    with pytest.raises(CheckpointError) as refused:
        _prepare(pod)
    assert refused.value.reason == "checkpoint_users_differ"
    assert "container monitor (user 2000)" in refused.value.message
    owner["securityContext"] = {"runAsUser": 1000}
    _prepare(pod)  # one user: readable
    del owner["securityContext"]
    del pod["spec"]["securityContext"]
    _prepare(pod)  # only the images know: not refused on a guess


def test_prepare_records_location_and_declared_spec() -> None:
    pod = workload(ROOT, hooks={"trainer": ["true"]})
    _, status = _prepare(pod)
    assert status["directory"] == DIRECTORY
    assert status["location"]["volume"] == "shared-data"
    assert status["declared"]["hooks"] == [{"container": "trainer", "command": ["true"]}]
    assert json.loads(json.dumps(status)) == status, "status is plain JSON"


POD_NAME_ENV = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def with_sub_path_expr(pod: dict[str, Any], container: str, volume: str, expression: str) -> dict[str, Any]:
    """Give ``container``'s mount of ``volume`` a subPathExpr (`workload` shares mount dicts: replaced, not changed)."""
    spec: dict[str, Any] = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    spec["volumeMounts"] = [
        {**mount, "subPathExpr": expression} if mount["name"] == volume else mount for mount in spec["volumeMounts"]
    ]
    return spec


def test_an_artifact_on_a_sub_path_expr_mount_is_restored_through_the_same_expression() -> None:
    """The kubelet expands subPathExpr from the container's env: the init container gets the same expression and the
    env entries it needs, so the artifact lands where the container sees it (not in the volume's root)."""
    pod = workload(ROOT, artifacts={"trainer": ["/work/scratch-trainer"]})
    trainer = with_sub_path_expr(pod, "trainer", "optimizer", "$(RUN)/opt")
    trainer["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        POD_NAME_ENV,
        {"name": "RUN", "value": "run-$(POD_NAME)"},
    ]
    target, summary = prepare_target_pod(
        source_pod=pod, target_pod=target_of(pod), spec=parse_checkpoint_annotations(pod), location=location()
    )
    [init] = target["spec"]["initContainers"]
    assert init["volumeMounts"][1] == {
        "name": "optimizer",
        "mountPath": "/work/scratch-trainer",
        "subPathExpr": "$(RUN)/opt",
    }
    assert init["env"] == [
        POD_NAME_ENV,
        {"name": "RUN", "value": "run-$(POD_NAME)"},
        {"name": RESTORE_STATE_ENV, "value": RESTORE_STATE_PATH},
        {"name": CHECKPOINT_DIR_ENV, "value": DIRECTORY},
    ]
    assert summary["restored"] == [{"container": "trainer", "path": "/work/scratch-trainer"}]


def test_a_sub_path_expr_the_restore_cannot_reproduce_is_refused_at_planning() -> None:
    pod = workload(ROOT, artifacts={"trainer": ["/work/scratch-trainer"]})
    trainer = with_sub_path_expr(pod, "trainer", "optimizer", "$(RUN)")
    trainer["env"] = [{"name": "RUN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "run"}}}]
    with pytest.raises(InvalidCheckpointAnnotation, match=r"subPathExpr '\$\(RUN\)'.*secretKeyRef") as refused:
        parse_checkpoint_annotations(pod)
    assert refused.value.details == {"annotation": "ai-storage.io/checkpoint-artifacts.trainer"}


def test_a_checkpoint_volume_mounted_with_sub_path_expr_is_reached_through_another_container() -> None:
    pod = workload(ROOT, artifacts={"trainer": ["/work/scratch-trainer"]})
    with_sub_path_expr(pod, "trainer", "shared-data", "$(POD_NAME)")
    target, status = _prepare(pod)  # planning picked the trainer's mount
    assert status["location"]["container"] == "processor"
    assert status["directory"] == DIRECTORY
    [init] = target["spec"]["initContainers"]
    assert init["volumeMounts"][0] == {"name": "shared-data", "mountPath": "/work/shared", "readOnly": True}
    for name in ("processor", "monitor"):
        with_sub_path_expr(pod, name, "shared-data", "$(POD_NAME)")
    with pytest.raises(CheckpointError, match="only with subPathExpr") as refused:
        _prepare(pod)
    assert refused.value.reason == "no_shared_volume"


def test_a_restore_never_mounts_an_artifact_volume_with_more_rights_than_its_container() -> None:
    """An artifact under a readOnly mount is refused at parsing; a spec that names one anyway (recorded by an older
    orchestrator, say) is refused here too, before any restore container is written to mount it read-write."""
    pod = workload(ROOT, artifacts={"trainer": ["/work/scratch-trainer/state"]})
    spec = parse_checkpoint_annotations(pod)
    pod["spec"]["containers"][0]["volumeMounts"][1]["readOnly"] = True
    with pytest.raises(InvalidCheckpointAnnotation, match="mounts read-only"):
        parse_checkpoint_annotations(pod)
    with pytest.raises(InvalidCheckpointAnnotation, match="'trainer' mounts read-only"):
        prepare_target_pod(source_pod=pod, target_pod=target_of(pod), spec=spec, location=location())


def test_an_artifact_is_carried_only_to_a_container_that_mounts_its_volume_read_write() -> None:
    """The processor is left out; the trainer mounts its emptyDir read-only: carrying the artifact to the trainer
    would make the target's next move refuse its annotations, so it stays in the checkpoint only."""
    pod = workload(ROOT, artifacts={"processor": ["/work/scratch-processor"]})
    pod["spec"]["containers"][0]["volumeMounts"][2] = {**pod["spec"]["containers"][0]["volumeMounts"][2]}
    pod["spec"]["containers"][0]["volumeMounts"][2]["readOnly"] = True
    target, summary = prepare_target_pod(
        source_pod=pod, target_pod=target_of(pod), spec=parse_checkpoint_annotations(pod), location=location()
    )
    assert summary["carried"] == []
    assert not any(k.startswith("ai-storage.io/checkpoint-artifacts.") for k in target["metadata"]["annotations"])
    parse_checkpoint_annotations(target)  # the next move's planning accepts the target's annotations
