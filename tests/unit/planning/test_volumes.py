from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import (
    CheckpointVolume,
    ClaimInfo,
    choose_checkpoint_volume,
    claim_info_from_objects,
    classify_pod_volumes,
)
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
