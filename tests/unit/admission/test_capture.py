"""Which migration an owner's new pod belongs to, and the rewrite that makes it the move's target."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ai_storage_orchestrator.admission.capture import capture_patch, captured_pod, claiming_migration
from ai_storage_orchestrator.admission.owned import CLAIM_SECONDS, OwnerCapture
from ai_storage_orchestrator.checkpoint.layout import CHECKPOINT_DIR_ENV
from ai_storage_orchestrator.controller.planning.gate import GATE_CONTAINER, token_digest
from ai_storage_orchestrator.conventions import CHECKPOINT_PATH_ANNOTATION, MIGRATION_ID_ENV, MIGRATION_ID_LABEL
from ai_storage_orchestrator.watchers.state import ClusterState

JSON = dict[str, Any]
OWNER = {"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "job-uid", "controller": True}
TOKEN = "mig-1.0123456789abcdef0123456789abcdef"


def owner_pod(name: str = "", owner: JSON = OWNER) -> JSON:
    """A pod as the Job controller creates it, after the service-account plugin (its own token volume)."""
    token_mount = {"name": "kube-api-access-new", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    data = {"name": "data", "mountPath": "/data"}
    return {
        "metadata": {
            "name": name,
            "generateName": "train-",
            "namespace": "ml",
            "labels": {"job-name": "train"},
            "annotations": {"team": "vision"},
            "ownerReferences": [owner],
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "prep", "image": "numpy", "volumeMounts": [data, {"name": "scratch", "mountPath": "/s"}]},
                {"name": "trainer", "image": "numpy", "volumeMounts": [data, token_mount]},
                {"name": "monitor", "image": "numpy", "env": [{"name": "A", "value": "1"}]},
            ],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "shared"}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "kube-api-access-new", "projected": {"sources": []}},
            ],
        },
    }


def migration(*, phase: str = "StoppingSource", stopped: bool = True, pod: str = "train-abcde", **status: Any) -> JSON:
    restore = {
        "name": "ai-storage-restore-trainer",
        "image": "numpy",
        "volumeMounts": [{"name": "restore-tools", "mountPath": "/t"}],
    }
    template = {
        "metadata": {
            "name": "train-abcde-migrated-1",
            "labels": {MIGRATION_ID_LABEL: "mig-1"},
            "annotations": {CHECKPOINT_PATH_ANNOTATION: "/data/.ckpt/mig-1", "team": "old"},
        },
        "spec": {
            "nodeName": "node-b",
            "initContainers": [restore],
            "containers": [
                {"name": "trainer", "env": [{"name": CHECKPOINT_DIR_ENV, "value": "/data/.ckpt/mig-1"}]},
                {"name": "monitor"},
            ],
            "volumes": [{"name": "kube-api-access-old"}, {"name": "restore-tools", "emptyDir": {}}],
        },
    }
    return {
        "metadata": {"name": "mig-1", "namespace": "ml", "creationTimestamp": "2026-12-02T10:00:00Z"},
        "spec": {"podName": pod, "sourceNode": "node-a", "targetNode": "node-b"},
        "status": {
            "phase": phase,
            "sourceStopped": stopped,
            "sourcePodUID": "source-uid",
            "owner": {"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "job-uid", "token": TOKEN},
            "targetPodManifest": template,
            **status,
        },
    }


def test_the_migration_waiting_for_the_owner_claims_its_new_pod() -> None:
    assert claiming_migration(owner_pod(), "ml", [migration()], []) is not None


@pytest.mark.parametrize(
    ("why", "pod", "migrations", "pods"),
    [
        ("another owner", owner_pod(owner={**OWNER, "uid": "other"}), [migration()], []),
        ("no owner", {**owner_pod(), "metadata": {"name": "x"}}, [migration()], []),
        ("another namespace", owner_pod(), [{**migration(), "metadata": {"name": "mig-1", "namespace": "x"}}], []),
        ("source not yet evicted", owner_pod(), [migration(stopped=False)], []),
        ("checkpoint still running", owner_pod(), [migration(phase="Checkpointing")], []),
        ("already has its pod", owner_pod(), [migration()], [captured_pod(owner_pod(), migration(), gate=False)]),
    ],
)
def test_no_claim(why: str, pod: JSON, migrations: list[JSON], pods: list[JSON]) -> None:
    assert claiming_migration(pod, "ml", migrations, pods) is None, why


def test_a_pod_merely_labelled_with_the_move_does_not_count_as_its_capture() -> None:
    """Anyone who may patch pods can set the label; the move's own pod also carries the id in its environment."""
    labelled = {"metadata": {"namespace": "ml", "labels": {MIGRATION_ID_LABEL: "mig-1"}}, "spec": {"containers": []}}
    assert claiming_migration(owner_pod(), "ml", [migration()], [labelled]) is not None


def test_a_statefulset_pod_is_claimed_only_under_the_source_name() -> None:
    owner = {**OWNER, "kind": "StatefulSet"}
    assert claiming_migration(owner_pod("db-1", owner), "ml", [migration(pod="db-0")], []) is None
    assert claiming_migration(owner_pod("db-0", owner), "ml", [migration(pod="db-0")], []) is not None


def test_the_rewrite_keeps_the_owner_pod_and_adds_only_the_move() -> None:
    pod = owner_pod()
    target = captured_pod(pod, migration(), gate=False)
    spec = target["spec"]
    assert [c["name"] for c in spec["containers"]] == ["trainer", "monitor"]
    trainer = spec["containers"][0]
    assert trainer["env"] == [
        {"name": CHECKPOINT_DIR_ENV, "value": "/data/.ckpt/mig-1"},
        {"name": MIGRATION_ID_ENV, "value": "mig-1"},
    ]
    assert {"name": "kube-api-access-new", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"} in trainer[
        "volumeMounts"
    ]
    assert spec["containers"][1]["env"] == [{"name": "A", "value": "1"}, {"name": MIGRATION_ID_ENV, "value": "mig-1"}]
    assert [c["name"] for c in spec["initContainers"]] == ["ai-storage-restore-trainer"]
    assert [v["name"] for v in spec["volumes"]] == ["data", "kube-api-access-new", "restore-tools"]
    assert spec["nodeName"] == "node-b"
    meta = target["metadata"]
    assert meta["labels"] == {"job-name": "train", MIGRATION_ID_LABEL: "mig-1"}
    assert meta["annotations"] == {"team": "vision", CHECKPOINT_PATH_ANNOTATION: "/data/.ckpt/mig-1"}
    assert meta["ownerReferences"] == [OWNER]
    assert meta["generateName"] == "train-"
    assert pod == owner_pod(), "the owner's pod itself is not changed"


def test_the_gate_holds_the_capture_while_the_source_may_run_and_no_longer_than_its_grace_period() -> None:
    target = captured_pod(owner_pod(), migration(), gate=True, now=1000.0)
    gate = target["spec"]["initContainers"][0]
    assert gate["name"] == GATE_CONTAINER
    assert gate["env"] == [
        {"name": "AI_STORAGE_GATE_SHA256", "value": token_digest(TOKEN)},
        {"name": "AI_STORAGE_GATE_OPEN_AT", "value": str(1000 + 30 + 60)},
    ]


def test_the_patch_replaces_spec_labels_and_annotations() -> None:
    pod = owner_pod()
    target = captured_pod(pod, migration(), gate=False)
    patch = capture_patch(pod, target)
    assert [(op["op"], op["path"]) for op in patch] == [
        ("replace", "/spec"),
        ("add", "/metadata/labels"),
        ("add", "/metadata/annotations"),
    ]
    assert patch[0]["value"] == target["spec"]


def _state(*migrations: JSON, pods: list[JSON] | None = None) -> ClusterState:
    state = ClusterState()
    state.migrations.replace(list(migrations), "1")
    state.pods.replace(pods or [], "1")
    return state


def test_one_capture_per_migration_until_the_claim_expires() -> None:
    now = [100.0]
    capture = OwnerCapture(_state(migration()), clock=lambda: now[0])
    assert capture.mutate_pod_create(owner_pod(), "ml")
    assert capture.mutate_pod_create(owner_pod(), "ml") == [], "a second pod of the owner at once goes its own way"
    now[0] += CLAIM_SECONDS + 1
    assert capture.mutate_pod_create(owner_pod(), "ml"), "the first capture never became a pod: capture again"


def test_gated_only_while_the_source_pod_may_still_run() -> None:
    source = {
        "metadata": {"name": "train-abcde", "namespace": "ml", "uid": "source-uid", "deletionTimestamp": "t"},
        "status": {"containerStatuses": [{"name": "trainer", "state": {"running": {}}}]},
    }
    stopping = OwnerCapture(_state(migration(), pods=[source]))
    spec = next(op["value"] for op in stopping.mutate_pod_create(owner_pod(), "ml") if op["path"] == "/spec")
    assert spec["initContainers"][0]["name"] == GATE_CONTAINER
    gone = OwnerCapture(_state(migration()))
    spec = next(op["value"] for op in gone.mutate_pod_create(owner_pod(), "ml") if op["path"] == "/spec")
    assert spec["initContainers"][0]["name"] != GATE_CONTAINER


def test_a_pod_of_the_owner_made_while_the_source_is_not_being_removed_is_not_captured() -> None:
    """Its eviction was refused (a PodDisruptionBudget) or has not happened yet: an owner replaces a pod only once
    it is being removed, so this is a sibling or a scale-up. Captured, its gate would open by itself at its deadline
    while the source still runs."""
    source = {"metadata": {"name": "train-abcde", "namespace": "ml", "uid": "source-uid"}, "status": {}}
    capture = OwnerCapture(_state(migration(), pods=[source]))
    assert capture.mutate_pod_create(owner_pod(), "ml") == []
    source["metadata"]["deletionTimestamp"] = "t"
    assert capture.mutate_pod_create(owner_pod(), "ml") != [], "once it is being removed, its replacement is ours"


def test_unrelated_pods_are_left_alone() -> None:
    capture = OwnerCapture(_state(migration()))
    pod = copy.deepcopy(owner_pod(owner={**OWNER, "uid": "other"}))
    assert capture.mutate_pod_create(pod, "ml") == []


def test_a_surge_claims_the_owner_new_pod_while_it_creates_or_waits_for_the_target() -> None:
    surge = migration(phase="CreatingTarget", stopped=False)
    surge["status"]["owner"]["surge"] = True
    assert claiming_migration(owner_pod(), "ml", [surge], []) is not None
    surge["status"]["phase"] = "RemovingSource"
    assert claiming_migration(owner_pod(), "ml", [surge], []) is None, "the count is going back: not one more"


def test_a_surge_capture_is_never_gated() -> None:
    surge = migration(phase="WaitingForTarget", stopped=False)
    surge["status"]["owner"]["surge"] = True
    source = {"metadata": {"name": "train-abcde", "namespace": "ml", "uid": "source-uid"}, "status": {}}
    capture = OwnerCapture(_state(surge, pods=[source]))
    spec = next(op["value"] for op in capture.mutate_pod_create(owner_pod(), "ml") if op["path"] == "/spec")
    assert GATE_CONTAINER not in [c["name"] for c in spec.get("initContainers") or []]


def test_an_indexed_job_pod_is_claimed_only_with_the_source_completion_index() -> None:
    index = "batch.kubernetes.io/job-completion-index"
    indexed = migration()
    indexed["status"]["targetPodManifest"]["metadata"]["annotations"][index] = "3"
    other = owner_pod()
    other["metadata"]["annotations"][index] = "4"
    assert claiming_migration(other, "ml", [indexed], []) is None, "the Job's next index, not the replacement"
    same = owner_pod()
    same["metadata"]["annotations"][index] = "3"
    assert claiming_migration(same, "ml", [indexed], []) is not None
