"""What ``auto`` resolves to and the sentence that says why, word for word (it is the plan's ``strategy_reason``)."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import classify_pod_volumes
from ai_storage_orchestrator.controller.planning.strategy import persistent_writers, resolve_strategy
from ai_storage_orchestrator.controller.planning.volumes import ClaimInfo
from ai_storage_orchestrator.models import Strategy
from tests.unit.planning.fixtures import RWX_NFS, catalog, container, make_pod, mount, pvc, running

pytestmark = pytest.mark.unit

RWO_ROX = ClaimInfo(("ReadWriteOnce", "ReadOnlyMany"), "standard", "csi")


def _resolve(pod: dict[str, Any], requested: Strategy = Strategy.AUTO) -> tuple[Strategy, str]:
    volumes = classify_pod_volumes(pod, catalog(shared=RWX_NFS, disk=RWO_ROX))
    return resolve_strategy(requested, pod, pod, volumes)


def test_nothing_persistent_is_make_before_break() -> None:
    pod = make_pod(
        containers=[container("c", mounts=[mount("tmp", "/tmp")])], volumes=[{"name": "tmp", "emptyDir": {}}]
    )
    assert _resolve(pod) == (
        Strategy.MAKE_BEFORE_BREAK,
        "make-before-break: no container writes persistent storage, no checkpoint hook and no ReadWriteOnce volume,"
        " so the target starts before the source stops (zero downtime)",
    )


def test_every_reason_for_checkpoint_restart_is_given() -> None:
    pod = make_pod(
        containers=[
            container("a", mounts=[mount("shared", "/s"), mount("shared", "/s2")]),
            container("b", mounts=[mount("disk", "/d", read_only=True)]),
        ],
        statuses=[running("a"), running("b")],
        volumes=[pvc("shared", "shared"), pvc("disk", "disk")],
        annotations={"ai-storage.io/checkpoint-hook.b": '["sync"]', "ai-storage.io/checkpoint-hook.a": '["sync"]'},
    )
    assert _resolve(pod) == (
        Strategy.CHECKPOINT_RESTART,
        "checkpoint-restart: container 'a' writes nfs 'shared' (PVC shared) (two copies writing it at once would"
        " corrupt training state); the pod declares checkpoint hook(s) ai-storage.io/checkpoint-hook.a,"
        " ai-storage.io/checkpoint-hook.b; csi 'disk' (PVC disk) is ReadWriteOnce/ReadOnlyMany: one node at a time",
    )


def test_a_container_writing_one_volume_twice_is_one_reason() -> None:
    pod = make_pod(
        containers=[container("a", mounts=[mount("shared", "/s"), mount("shared", "/s2")])],
        volumes=[pvc("shared", "shared")],
    )
    assert persistent_writers(pod, classify_pod_volumes(pod, catalog(shared=RWX_NFS))) == [
        "container 'a' writes nfs 'shared' (PVC shared)"
    ]


@pytest.mark.parametrize("requested", [Strategy.MAKE_BEFORE_BREAK, Strategy.CHECKPOINT_RESTART])
def test_an_explicit_strategy_is_kept(requested: Strategy) -> None:
    pod = make_pod(containers=[container("c", mounts=[mount("shared", "/s")])], volumes=[pvc("shared", "shared")])
    assert _resolve(pod, requested) == (requested, f"{requested.value} requested explicitly")
