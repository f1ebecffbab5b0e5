"""Where checkpoints live: one directory per namespace and workload."""

from __future__ import annotations

import pytest

from ai_storage_orchestrator.checkpoint.layout import checkpoint_dir, mount_covering, mounts_of, pod_checkpoints_dir


def test_the_checkpoint_directory_holds_the_namespace() -> None:
    assert checkpoint_dir("/data/", "ml", "trainer", "abc123") == (
        "/data/.ai-storage/namespaces/ml/checkpoints/trainer/abc123"
    )
    assert pod_checkpoints_dir("/data", "ml", "trainer") != pod_checkpoints_dir("/data", "other", "trainer")


@pytest.mark.parametrize(
    ("namespace", "pod", "migration"),
    [
        ("../x", "p", "m1"),
        ("ml", "../p", "m1"),
        ("ml", "..", "m1"),
        ("ml", "p", "../m"),
        ("ml", "p", ".."),
        ("", "p", "m1"),
        ("ml", "p", "m" * 64),
    ],
)
def test_names_that_could_leave_the_layout_are_refused(namespace: str, pod: str, migration: str) -> None:
    with pytest.raises(ValueError, match="unexpected"):
        checkpoint_dir("/data", namespace, pod, migration)


def test_a_mount_covers_only_paths_below_it() -> None:
    """An artifact under /workspace lies on the /workspace mount, never on a /work mount (a mere common prefix)."""
    container = {
        "name": "c",
        "volumeMounts": [{"name": "work", "mountPath": "/work"}, {"name": "space", "mountPath": "/workspace"}],
    }
    assert mount_covering(container, "/workspace/model.bin") == mounts_of(container)[1]
    assert mount_covering(container, "/work/model.bin") == mounts_of(container)[0]
    assert mount_covering(container, "/work") == mounts_of(container)[0]
    assert mount_covering({"name": "c", "volumeMounts": [{"name": "work", "mountPath": "/work"}]}, "/workspace") is None
