from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import (
    CheckpointVolume,
    ClaimInfo,
    StaticVolumeCatalog,
    VolumeInfo,
    choose_checkpoint_volume,
    claim_info_from_objects,
    classify_pod_volumes,
)
from ai_storage_orchestrator.controller.planning.volumes import Mount, container_mounts
from tests.unit.planning.fixtures import (
    RWO_CSI,
    RWO_HOSTPATH,
    RWX_LOCAL,
    RWX_NFS,
    UNBOUND,
    catalog,
    container,
    make_pod,
    mount,
    pvc,
)

pytestmark = pytest.mark.unit

CATALOG = catalog(rwx_nfs=RWX_NFS, rwo_csi=RWO_CSI, rwx_local=RWX_LOCAL, rwo_host=RWO_HOSTPATH, unbound=UNBOUND)


@pytest.mark.parametrize(
    ("volume", "kind", "shared", "persistent"),
    [
        ({"name": "v", "nfs": {"server": "10.0.0.1", "path": "/exports"}}, "nfs", True, True),
        (pvc("v", "rwx-nfs"), "nfs", True, True),
        (pvc("v", "rwo-csi"), "csi", False, True),
        (pvc("v", "rwx-local"), "local", False, True),  # RWX on a node-local PV is not shared
        (pvc("v", "rwo-host"), "hostPath", False, True),
        (pvc("v", "unbound"), "pvc-unbound", False, True),
        (pvc("v", "missing"), "pvc-unbound", False, True),
        ({"name": "v", "emptyDir": {}}, "emptyDir", False, False),
        ({"name": "v", "hostPath": {"path": "/mnt"}}, "hostPath", False, False),
        ({"name": "v", "configMap": {"name": "cm"}}, "configMap", False, False),
        ({"name": "v", "secret": {"secretName": "s"}}, "secret", False, False),
        ({"name": "v", "projected": {"sources": []}}, "projected", False, False),
        ({"name": "v", "downwardAPI": {"items": []}}, "downwardAPI", False, False),
        ({"name": "v", "csi": {"driver": "inline.csi"}}, "csi", False, False),
        ({"name": "v", "ephemeral": {"volumeClaimTemplate": {}}}, "other", False, False),
    ],
)
def test_classify(volume: dict[str, Any], kind: str, shared: bool, persistent: bool) -> None:
    info = classify_pod_volumes(make_pod(volumes=[volume]), CATALOG)["v"]
    assert (info.kind, info.shared, info.persistent) == (kind, shared, persistent)


def test_claim_details_are_carried() -> None:
    info = classify_pod_volumes(make_pod(volumes=[pvc("v", "rwo-csi")]), CATALOG)["v"]
    assert (info.access_modes, info.storage_class, info.claim_name, info.read_write_once) == (
        ("ReadWriteOnce",),
        "standard",
        "rwo-csi",
        True,
    )


SHARED_VOLUMES = [pvc("a-scratch", "rwo-csi"), pvc("b-shared", "rwx-nfs"), {"name": "c-nfs", "nfs": {"path": "/x"}}]


@pytest.mark.parametrize(
    ("annotation", "mounts", "expected"),
    [
        pytest.param(None, [mount("b-shared", "/ckpt"), mount("c-nfs", "/nfs")], ("b-shared", "/ckpt"), id="first"),
        pytest.param("c-nfs", [mount("b-shared", "/ckpt"), mount("c-nfs", "/nfs")], ("c-nfs", "/nfs"), id="annotated"),
        pytest.param(
            "a-scratch", [mount("a-scratch", "/s"), mount("b-shared", "/ckpt")], ("b-shared", "/ckpt"), id="not-shared"
        ),
        pytest.param(
            None,
            [mount("b-shared", "/ro", read_only=True), mount("c-nfs", "/nfs")],
            ("c-nfs", "/nfs"),
            id="read-only-skipped",
        ),
        pytest.param(None, [mount("a-scratch", "/s")], None, id="none"),
    ],
)
def test_choose_checkpoint_volume(
    annotation: str | None, mounts: list[dict[str, Any]], expected: tuple[str, str] | None
) -> None:
    pod = make_pod(
        containers=[container("trainer", mounts=mounts)],
        volumes=SHARED_VOLUMES,
        annotations={"ai-storage.io/checkpoint-volume": annotation} if annotation else None,
    )
    chosen = choose_checkpoint_volume(pod, classify_pod_volumes(pod, CATALOG))
    assert chosen == (None if expected is None else CheckpointVolume(*expected, "trainer"))


@pytest.mark.parametrize(
    ("pvc_obj", "pv_obj", "expected"),
    [
        (
            {"spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "nfs"}, "status": {"phase": "Bound"}},
            {"spec": {"nfs": {"server": "s", "path": "/"}}},
            ClaimInfo(("ReadWriteMany",), "nfs", "nfs"),
        ),
        (
            {"spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"phase": "Bound"}},
            {"spec": {"awsElasticBlockStore": {}}},
            ClaimInfo(("ReadWriteOnce",), None, "other"),
        ),
        (
            {"spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"phase": "Pending"}},
            None,
            ClaimInfo(("ReadWriteOnce",)),
        ),
    ],
)
def test_claim_info_from_objects(pvc_obj: dict[str, Any], pv_obj: dict[str, Any] | None, expected: ClaimInfo) -> None:
    assert claim_info_from_objects(pvc_obj, pv_obj) == expected


@pytest.mark.parametrize(
    ("pvc_obj", "pv_obj", "expected"),
    [
        pytest.param(
            {
                "spec": {"accessModes": ["ReadWriteOnce"]},
                "status": {"phase": "Bound", "accessModes": ["ReadWriteMany"]},
            },
            {"spec": {"nfs": {}}},
            ClaimInfo(("ReadWriteMany",), None, "nfs"),
            id="bound-status-modes-win",
        ),
        pytest.param(
            {"spec": {"accessModes": ["ReadWriteMany"]}},
            {"spec": {"csi": {}}},
            ClaimInfo(("ReadWriteMany",), None, "csi"),
            id="no-status-yet",
        ),
        pytest.param(
            {"spec": {"accessModes": ["ReadWriteMany"]}, "status": {"phase": "Lost"}},
            {"spec": {"nfs": {}}},
            ClaimInfo(("ReadWriteMany",)),
            id="lost-is-not-bound",
        ),
        pytest.param({}, None, ClaimInfo(), id="empty"),
    ],
)
def test_claim_info_edges(pvc_obj: dict[str, Any], pv_obj: dict[str, Any] | None, expected: ClaimInfo) -> None:
    assert claim_info_from_objects(pvc_obj, pv_obj) == expected


def test_an_unbound_claim_keeps_what_the_claim_says() -> None:
    [info] = classify_pod_volumes(make_pod(volumes=[pvc("v", "unbound")]), CATALOG).values()
    assert info == VolumeInfo("v", "pvc-unbound", ("ReadWriteMany",), "nfs-client", False, "unbound")
    [missing] = classify_pod_volumes(make_pod(volumes=[pvc("v", "missing")]), CATALOG).values()
    assert missing == VolumeInfo("v", "pvc-unbound", (), None, False, "missing")


def test_claims_are_looked_up_in_the_pods_namespace_default_when_unset() -> None:
    pod = make_pod(volumes=[pvc("v", "data")])
    del pod["metadata"]["namespace"]
    infos = classify_pod_volumes(pod, StaticVolumeCatalog({("default", "data"): RWX_NFS}))
    assert infos["v"].shared


def test_mounts_and_devices_with_their_defaults() -> None:
    spec = {
        "name": "c",
        "volumeMounts": [{"name": "a"}, {"name": "b", "mountPath": "/b", "readOnly": True}],
        "volumeDevices": [{"name": "d", "devicePath": "/dev/xvdb"}, {"name": "e"}],
    }
    assert container_mounts(spec) == [
        Mount("a", "", False),
        Mount("b", "/b", True),
        Mount("d", "/dev/xvdb", False),
        Mount("e", "", False),
    ]


def test_an_annotated_volume_mounted_only_read_only_is_still_chosen() -> None:
    pod = make_pod(
        containers=[
            container("reader", mounts=[mount("c-nfs", "/ro", read_only=True)]),
            container("writer", mounts=[mount("b-shared", "/ckpt")]),
        ],
        volumes=SHARED_VOLUMES,
        annotations={"ai-storage.io/checkpoint-volume": "c-nfs"},
    )
    assert choose_checkpoint_volume(pod, classify_pod_volumes(pod, CATALOG)) == CheckpointVolume(
        "c-nfs", "/ro", "reader"
    )


def test_an_annotated_volume_prefers_a_read_write_mount() -> None:
    pod = make_pod(
        containers=[
            container("reader", mounts=[mount("c-nfs", "/ro", read_only=True)]),
            container("writer", mounts=[mount("c-nfs", "/rw")]),
        ],
        volumes=SHARED_VOLUMES,
        annotations={"ai-storage.io/checkpoint-volume": "c-nfs"},
    )
    assert choose_checkpoint_volume(pod, classify_pod_volumes(pod, CATALOG)) == CheckpointVolume(
        "c-nfs", "/rw", "writer"
    )


def test_an_annotated_volume_no_container_mounts_falls_back_to_the_first_shared_one() -> None:
    pod = make_pod(
        containers=[container("writer", mounts=[mount("b-shared", "/ckpt")])],
        volumes=SHARED_VOLUMES,
        annotations={"ai-storage.io/checkpoint-volume": "c-nfs"},
    )
    assert choose_checkpoint_volume(pod, classify_pod_volumes(pod, CATALOG)) == CheckpointVolume(
        "b-shared", "/ckpt", "writer"
    )
