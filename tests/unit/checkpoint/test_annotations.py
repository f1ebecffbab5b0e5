"""Checkpoint annotations: hooks as argv arrays, artifact paths, the hook timeout; anything else is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ai_storage_orchestrator.checkpoint import (
    Artifact,
    CheckpointSpec,
    Hook,
    InvalidCheckpointAnnotation,
    parse_checkpoint_annotations,
)
from ai_storage_orchestrator.checkpoint.annotations import HOOK_PREFIX
from ai_storage_orchestrator.controller.planning import CHECKPOINT_HOOK_PREFIX

HOOK = "ai-storage.io/checkpoint-hook."
ARTIFACTS = "ai-storage.io/checkpoint-artifacts."
TIMEOUT = "ai-storage.io/checkpoint-hook-timeout"


def pod(annotations: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "annotations": annotations},
        "spec": {
            "initContainers": [{"name": "fetch"}],
            "containers": [{"name": "trainer"}, {"name": "monitor"}],
        },
    }


def test_no_annotations_is_an_empty_spec() -> None:
    spec = parse_checkpoint_annotations(pod({}))
    assert spec == CheckpointSpec()
    assert spec.empty
    assert spec.checkpointed_paths() == {}


def test_hooks_artifacts_and_timeout() -> None:
    spec = parse_checkpoint_annotations(
        pod(
            {
                HOOK + "monitor": json.dumps(["kill", "-USR1", "1"]),
                HOOK + "trainer": json.dumps(["python", "/scripts/save.py", "--fast"]),
                ARTIFACTS + "trainer": json.dumps(["/scratch/opt/", "/tmp/state.bin", "/scratch/opt"]),
                ARTIFACTS + "fetch": json.dumps(["/cache"]),
                TIMEOUT: "120",
                "unrelated": "x",
            }
        )
    )
    # In container spec order (init containers first), whatever the annotation order.
    assert spec.hooks == (
        Hook("trainer", ("python", "/scripts/save.py", "--fast")),
        Hook("monitor", ("kill", "-USR1", "1")),
    )
    assert spec.artifacts == (
        Artifact("fetch", "/cache"),
        Artifact("trainer", "/scratch/opt"),
        Artifact("trainer", "/tmp/state.bin"),
    )
    assert spec.hook_timeout == 120.0
    assert spec.checkpointed_paths() == {"fetch": ("/cache",), "trainer": ("/scratch/opt", "/tmp/state.bin")}
    assert CheckpointSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_hook_prefix_is_the_one_planning_reads() -> None:
    assert HOOK_PREFIX == CHECKPOINT_HOOK_PREFIX


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        (HOOK + "trainer", "python /save.py", "not valid JSON"),
        (HOOK + "trainer", json.dumps("python /save.py"), "non-empty JSON array of strings"),
        (HOOK + "trainer", json.dumps({"cmd": "x"}), "non-empty JSON array of strings"),
        (HOOK + "trainer", json.dumps([]), "non-empty JSON array of strings"),
        (HOOK + "trainer", json.dumps(["python", 3]), "only strings"),
        (HOOK + "trainer", json.dumps(["", "x"]), "must be non-empty"),
        (HOOK + "trainer", json.dumps(["a\x00b"]), "NUL"),
        (HOOK + "ghost", json.dumps(["true"]), "container 'ghost'"),
        (ARTIFACTS + "trainer", json.dumps("/scratch"), "JSON array of absolute paths"),
        (ARTIFACTS + "trainer", json.dumps(["scratch/opt"]), "not absolute"),
        (ARTIFACTS + "trainer", json.dumps(["/scratch/../etc"]), "contains . or .."),
        (ARTIFACTS + "trainer", json.dumps(["/"]), "root directory"),
        (ARTIFACTS + "trainer", json.dumps(["/a\nb"]), "control characters"),
        (ARTIFACTS + "trainer", json.dumps([42]), "non-empty string"),
        (ARTIFACTS + "trainer", json.dumps(["/scratch", "/scratch/opt"]), "lies inside /scratch"),
        (ARTIFACTS + "ghost", json.dumps(["/x"]), "container 'ghost'"),
        (TIMEOUT, "soon", "number of seconds"),
        (TIMEOUT, "0", "more than 0"),
        (TIMEOUT, "nan", "more than 0"),
        (TIMEOUT, "100000", "at most 3600"),
    ],
)
def test_invalid_annotations_are_refused(key: str, value: str, fragment: str) -> None:
    with pytest.raises(InvalidCheckpointAnnotation) as refused:
        parse_checkpoint_annotations(pod({key: value}))
    assert refused.value.reason == "invalid_checkpoint_annotation"
    assert refused.value.http_status == 422
    assert fragment in refused.value.message
    assert refused.value.details == {"annotation": key}


def test_hook_argv_is_kept_verbatim_never_split() -> None:
    argv = ["sh", "-c", "echo $HOME; rm -rf /nothing", "arg with spaces"]
    spec = parse_checkpoint_annotations(pod({HOOK + "trainer": json.dumps(argv)}))
    assert spec.hooks[0].argv == tuple(argv)


def test_annotations_of_containers_a_migration_left_out_are_ignored() -> None:
    annotations = {
        HOOK + "done": json.dumps(["true"]),
        ARTIFACTS + "done": json.dumps(["/out"]),
        "ai-storage.io/skipped-containers": "done",
    }
    assert parse_checkpoint_annotations(pod(annotations)) == CheckpointSpec()
    with pytest.raises(InvalidCheckpointAnnotation):
        parse_checkpoint_annotations(pod({**annotations, "ai-storage.io/skipped-containers": "other"}))


def test_paths_with_a_common_prefix_are_not_nested() -> None:
    """/workspace is not inside /work: both can be declared."""
    spec = parse_checkpoint_annotations(pod({ARTIFACTS + "trainer": json.dumps(["/work", "/workspace"])}))
    assert spec.checkpointed_paths() == {"trainer": ("/work", "/workspace")}
    with pytest.raises(InvalidCheckpointAnnotation, match="/work/x lies inside /work"):
        parse_checkpoint_annotations(pod({ARTIFACTS + "trainer": json.dumps(["/work", "/work/x"])}))


def test_an_artifact_that_holds_another_mount_is_refused() -> None:
    """tar reads across the inner mount, but the restore would write its files beneath it, out of the container's
    sight: an emptyDir at /state with another at /state/cache."""
    mounted = pod({ARTIFACTS + "trainer": json.dumps(["/state"])})
    mounted["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "scratch", "mountPath": "/state"},
        {"name": "cache", "mountPath": "/state/cache"},
    ]
    with pytest.raises(InvalidCheckpointAnnotation, match="/state holds the mount of volume 'cache' at /state/cache"):
        parse_checkpoint_annotations(mounted)
    mounted["metadata"]["annotations"][ARTIFACTS + "trainer"] = json.dumps(["/state/model", "/state/cache"])
    spec = parse_checkpoint_annotations(mounted)
    assert spec.checkpointed_paths() == {"trainer": ("/state/model", "/state/cache")}, "beside it and inside it"
    mounted["metadata"]["annotations"][ARTIFACTS + "trainer"] = json.dumps(["/"])
    with pytest.raises(InvalidCheckpointAnnotation):
        parse_checkpoint_annotations(mounted)


@pytest.mark.parametrize(
    ("volume", "said"),
    [
        ({"configMap": {"name": "settings"}}, "configMap volume 'data', which the kubelet keeps read-only"),
        ({"secret": {"secretName": "keys"}}, "secret volume 'data'"),
        ({"projected": {"sources": []}}, "projected volume 'data'"),
        ({"persistentVolumeClaim": {"claimName": "models", "readOnly": True}}, "whose claim is mounted read-only"),
    ],
)
def test_an_artifact_the_restore_could_not_write_back_is_refused(volume: dict[str, object], said: str) -> None:
    """Refused at planning: the restore would fail on the target after the source stopped."""
    declared = pod({ARTIFACTS + "trainer": json.dumps(["/data/state"])})
    declared["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    declared["spec"]["volumes"] = [{"name": "data", **volume}]
    with pytest.raises(InvalidCheckpointAnnotation, match=said):
        parse_checkpoint_annotations(declared)


def test_an_artifact_under_a_read_only_mount_of_a_writable_volume_is_refused() -> None:
    """The restore would write through a mount the pod declares read-only (its container may not write there): refused
    at planning, naming the mount. The same files declared for a container that mounts the volume read-write pass."""
    declared = pod({ARTIFACTS + "trainer": json.dumps(["/data/state"])})
    declared["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data", "readOnly": True}]
    declared["spec"]["containers"][1]["volumeMounts"] = [{"name": "data", "mountPath": "/mnt/data"}]
    declared["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    with pytest.raises(InvalidCheckpointAnnotation) as refused:
        parse_checkpoint_annotations(declared)
    assert refused.value.reason == "invalid_checkpoint_annotation"
    assert refused.value.details == {"annotation": ARTIFACTS + "trainer"}
    assert (
        "/data/state is on the mount of volume 'data' at /data, which container 'trainer' mounts read-only"
        " (readOnly: true)" in str(refused.value)
    )
    del declared["metadata"]["annotations"][ARTIFACTS + "trainer"]
    declared["metadata"]["annotations"][ARTIFACTS + "monitor"] = json.dumps(["/mnt/data/state"])
    assert parse_checkpoint_annotations(declared).checkpointed_paths() == {"monitor": ("/mnt/data/state",)}


def test_a_read_only_mount_elsewhere_in_the_container_does_not_refuse_an_artifact() -> None:
    """Only the mount that holds the artifact counts (the deepest one above it)."""
    declared = pod({ARTIFACTS + "trainer": json.dumps(["/data/state"])})
    declared["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "models", "mountPath": "/models", "readOnly": True},
        {"name": "data", "mountPath": "/data"},
    ]
    declared["spec"]["volumes"] = [{"name": "models", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]
    assert parse_checkpoint_annotations(declared).checkpointed_paths() == {"trainer": ("/data/state",)}
