"""Where checkpoints live: one directory per namespace and workload."""

from __future__ import annotations

import pytest

from ai_storage_orchestrator.checkpoint.layout import checkpoint_dir, pod_checkpoints_dir


def test_the_checkpoint_directory_holds_the_namespace() -> None:
    assert checkpoint_dir("/data/", "ml", "trainer", "abc123") == (
        "/data/.ai-storage/namespaces/ml/checkpoints/trainer/abc123"
    )
    assert pod_checkpoints_dir("/data", "ml", "trainer") != pod_checkpoints_dir("/data", "other", "trainer")


@pytest.mark.parametrize(
    ("namespace", "pod", "migration"),
    [("../x", "p", "m1"), ("ml", "../p", "m1"), ("ml", "..", "m1"), ("ml", "p", "../m"), ("", "p", "m1")],
)
def test_names_that_could_leave_the_layout_are_refused(namespace: str, pod: str, migration: str) -> None:
    with pytest.raises(ValueError, match="unexpected"):
        checkpoint_dir("/data", namespace, pod, migration)
