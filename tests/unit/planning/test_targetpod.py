from __future__ import annotations

import copy
from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import (
    analyse_containers,
    build_target_pod,
    classify_pod_volumes,
    requests_summary,
)
from ai_storage_orchestrator.models import Resources
from tests.unit.planning.fixtures import (
    MIGRATION_ID,
    RWX_NFS,
    TARGET_NODE,
    catalog,
    certification_pod,
    container,
    make_pod,
    mount,
    pvc,
    running,
    terminated,
)

pytestmark = pytest.mark.unit

GI = 2**30


def build(pod: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    decisions = analyse_containers(pod, classify_pod_volumes(pod, catalog(shared_pvc=RWX_NFS, training_data=RWX_NFS)))
    return build_target_pod(pod, decisions, migration_id=MIGRATION_ID, target_node=TARGET_NODE, **kwargs)


def test_certification_target_pod() -> None:
    source = certification_pod()
    snapshot = copy.deepcopy(source)
    target = build(source, extra_annotations={"ai-storage.io/strategy": "checkpoint-restart"})
    assert source == snapshot  # the source object is untouched
    assert target["metadata"] == {
        "name": "tensorflow-ai-workload-migrated-3f2a9c1e",
        "namespace": "ml",
        "labels": {"app": "tensorflow-ai-workload", "ai-storage.io/migration-id": MIGRATION_ID},
        "annotations": {
            "ai-storage.io/source-pod": "ml/tensorflow-ai-workload",
            "ai-storage.io/source-node": "node-a",
            "ai-storage.io/skipped-containers": "data-processor",
            "ai-storage.io/migration-id": MIGRATION_ID,
            "ai-storage.io/strategy": "checkpoint-restart",
        },
    }
    assert [c["name"] for c in target["spec"]["containers"]] == ["tensorflow-trainer", "model-monitor"]
    assert target["spec"]["nodeName"] == TARGET_NODE
    assert [v["name"] for v in target["spec"]["volumes"]] == ["shared-data"]
    assert "status" not in target
    before, after = requests_summary(source, target)
    assert (before, after) == (Resources(2200, 5 * GI), Resources(1700, 7 * GI // 2))


@pytest.mark.parametrize(
    ("key", "kept"),
    [
        ("pod-template-hash", False),
        ("controller-revision-hash", False),
        ("statefulset.kubernetes.io/pod-name", False),
        ("apps.kubernetes.io/pod-index", False),
        ("job-name", False),
        ("controller-uid", False),
        ("batch.kubernetes.io/job-name", False),
        ("batch.kubernetes.io/controller-uid", False),
        ("team", True),
    ],
)
def test_labels(key: str, kept: bool) -> None:
    pod = make_pod(containers=[container("c")], statuses=[running("c")], labels={key: "v"})
    assert (key in build(pod)["metadata"]["labels"]) is kept


@pytest.mark.parametrize(
    ("key", "kept"),
    [
        ("ai-storage.io/migrate-to", False),
        ("ai-storage.io/migration-status", False),
        ("kubectl.kubernetes.io/last-applied-configuration", False),
        ("ai-storage.io/checkpoint-hook.c", True),
    ],
)
def test_annotations(key: str, kept: bool) -> None:
    pod = make_pod(containers=[container("c")], statuses=[running("c")], annotations={key: "v"})
    annotations = build(pod)["metadata"]["annotations"]
    assert (key in annotations) is kept
    assert annotations["ai-storage.io/skipped-containers"] == ""


def test_metadata_and_spec_are_cleaned() -> None:
    pod = make_pod(name="p-migrated-0badc0de", containers=[container("c")], statuses=[running("c")])
    pod["metadata"].update(
        generateName="p-",
        generation=1,
        managedFields=[{}],
        finalizers=["x"],
        ownerReferences=[{"kind": "Job", "name": "j"}],
    )
    pod["spec"].update(ephemeralContainers=[{"name": "debug"}], schedulingGates=[{"name": "g"}])
    target = build(pod)
    assert set(target["metadata"]) == {"name", "namespace", "labels", "annotations"}
    assert target["metadata"]["name"] == "p-migrated-3f2a9c1e"
    assert not {"ephemeralContainers", "schedulingGates"} & set(target["spec"])


def test_skipped_containers_and_their_volumes_are_removed() -> None:
    pod = make_pod(
        init_containers=[container("fetch", mounts=[mount("models", "/models")]), container("chown")],
        init_statuses=[terminated("fetch"), terminated("chown")],
        containers=[
            container("train", mounts=[mount("models", "/models", read_only=True), mount("both", "/b")]),
            container("prep", mounts=[mount("prep-only", "/p"), mount("both", "/b")]),
        ],
        statuses=[running("train"), terminated("prep")],
        volumes=[
            pvc("models", "shared-pvc"),
            pvc("prep-only", "shared-pvc"),
            pvc("both", "shared-pvc"),
            {"name": "unused", "emptyDir": {}},
        ],
    )
    target = build(pod)
    assert "initContainers" not in target["spec"]
    assert [c["name"] for c in target["spec"]["containers"]] == ["train"]
    assert [v["name"] for v in target["spec"]["volumes"]] == ["models", "both", "unused"]
    assert target["metadata"]["annotations"]["ai-storage.io/skipped-containers"] == "fetch,chown,prep"


def test_a_volume_only_a_skipped_container_used_is_removed_whichever_kind_it_was() -> None:
    pod = make_pod(
        init_containers=[
            container("fetch", mounts=[mount("cache", "/cache", read_only=True)]),
            container("proxy", mounts=[mount("sock", "/run")], restart_policy="Always"),
        ],
        init_statuses=[terminated("fetch"), running("proxy")],
        containers=[
            container("a", mounts=[mount("v1", "/v1")]),
            container("b", mounts=[mount("v2", "/v2", read_only=True)]),
            container("c", mounts=[mount("v3", "/v3")]),
        ],
        statuses=[running("a"), terminated("b"), running("c")],
        volumes=[{"name": name, "emptyDir": {}} for name in ("cache", "sock", "v1", "v2", "v3")],
    )
    target = build(pod)
    assert [c["name"] for c in target["spec"]["initContainers"]] == ["proxy"], "the running sidecar stays"
    assert [c["name"] for c in target["spec"]["containers"]] == ["a", "c"]
    assert [v["name"] for v in target["spec"]["volumes"]] == ["sock", "v1", "v3"]


def test_a_pod_as_the_cache_keeps_it_without_kind_namespace_or_node() -> None:
    pod = make_pod(name="p", containers=[container("c")], statuses=[running("c")], node=None)
    del pod["apiVersion"], pod["kind"], pod["metadata"]["namespace"]
    target = build(pod)
    assert (target["apiVersion"], target["kind"]) == ("v1", "Pod")
    assert target["metadata"]["namespace"] == "default"
    assert target["metadata"]["annotations"]["ai-storage.io/source-pod"] == "default/p"
    assert target["metadata"]["annotations"]["ai-storage.io/source-node"] == ""


def test_the_target_pod_shares_nothing_with_the_source() -> None:
    source = certification_pod()
    snapshot = copy.deepcopy(source)
    target = build(source)
    target["spec"]["containers"][0]["volumeMounts"].append(mount("restore", "/restore"))
    target["spec"]["containers"][0]["env"] = [{"name": "X", "value": "1"}]
    target["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"] = True
    assert source == snapshot
