from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import analyse_containers, classify_pod_volumes, nothing_to_run
from ai_storage_orchestrator.models import Action, ContainerDecision, ContainerKind
from tests.unit.planning.fixtures import (
    RWO_CSI,
    RWX_NFS,
    catalog,
    container,
    make_pod,
    mount,
    pvc,
    running,
    terminated,
    waiting,
)

pytestmark = pytest.mark.unit

VOLUMES = [
    pvc("shared", "rwx-nfs"),
    pvc("block", "rwo-csi"),
    {"name": "scratch", "emptyDir": {}},
    {"name": "host", "hostPath": {"path": "/mnt/data"}},
    {"name": "config", "configMap": {"name": "cfg"}},
]
CATALOG = catalog(rwx_nfs=RWX_NFS, rwo_csi=RWO_CSI)


def decide(
    status: dict[str, Any] | None,
    *,
    kind: ContainerKind = ContainerKind.CONTAINER,
    mounts: Sequence[dict[str, Any]] = (),
    devices: Sequence[dict[str, Any]] = (),
    restart_policy: str = "OnFailure",
    checkpointed: Mapping[str, Sequence[str]] | None = None,
) -> ContainerDecision:
    """The decision for container "c" of a pod built around it."""
    statuses = [status] if status else []
    subject = container(
        "c", mounts=mounts, devices=devices, restart_policy="Always" if kind is ContainerKind.SIDECAR else None
    )
    if kind is ContainerKind.CONTAINER:
        pod = make_pod(containers=[subject], statuses=statuses, volumes=VOLUMES, restart_policy=restart_policy)
    else:
        pod = make_pod(
            init_containers=[subject],
            init_statuses=statuses,
            containers=[container("main")],
            statuses=[running("main")],
            volumes=VOLUMES,
            restart_policy=restart_policy,
        )
    decisions = analyse_containers(pod, classify_pod_volumes(pod, CATALOG), checkpointed=checkpointed or {})
    [decision] = [d for d in decisions if d.name == "c"]
    assert decision.kind is kind
    return decision


INIT = ContainerKind.INIT
SIDECAR = ContainerKind.SIDECAR
SCRATCH = [mount("scratch", "/scratch")]

TABLE = [
    # regular containers
    pytest.param(running("c"), {}, Action.MIGRATE, "running: its work continues on the target", id="running"),
    pytest.param(running("c"), {"restart_policy": "Always"}, Action.MIGRATE, "its work continues", id="running-always"),
    pytest.param(terminated("c"), {}, Action.SKIP, "no writable volume mounts", id="done-no-mounts"),
    pytest.param(
        terminated("c"),
        {"mounts": [mount("shared", "/data")]},
        Action.SKIP,
        "'shared' is shared persistent storage",
        id="done-shared",
    ),
    pytest.param(
        terminated("c"),
        {"mounts": [mount("config", "/etc/cfg", read_only=True), mount("scratch", "/s", read_only=True)]},
        Action.SKIP,
        "no writable volume mounts",
        id="done-read-only-mounts",
    ),
    pytest.param(
        terminated("c"), {"mounts": SCRATCH}, Action.MIGRATE, "emptyDir 'scratch' would be lost", id="done-emptydir"
    ),
    pytest.param(
        terminated("c"),
        {"mounts": [mount("shared", "/data"), mount("host", "/host")]},
        Action.MIGRATE,
        "hostPath 'host' would be lost",
        id="done-hostpath",
    ),
    pytest.param(
        terminated("c"),
        {"devices": [{"name": "block", "devicePath": "/dev/xvda"}]},
        Action.MIGRATE,
        "csi 'block' (PVC rwo-csi) would be lost",
        id="done-rwo-block-device",
    ),
    pytest.param(
        terminated("c"),
        {"mounts": SCRATCH, "checkpointed": {"c": ["/scratch"]}},
        Action.SKIP,
        "'scratch' at /scratch is copied by the checkpoint",
        id="done-checkpointed",
    ),
    pytest.param(
        terminated("c"),
        {"mounts": [mount("scratch", "/work/out")], "checkpointed": {"c": ["/work/"]}},
        Action.SKIP,
        "copied by the checkpoint",
        id="done-checkpointed-parent",
    ),
    pytest.param(
        terminated("c"),
        {"mounts": SCRATCH, "checkpointed": {"c": ["/scratch2"], "other": ["/scratch"]}},
        Action.MIGRATE,
        "would be lost",
        id="done-checkpoint-misses-it",
    ),
    pytest.param(
        terminated("c"),
        {"restart_policy": "Always"},
        Action.MIGRATE,
        "restartPolicy Always the kubelet would run it again",
        id="done-restart-always",
    ),
    pytest.param(terminated("c"), {"restart_policy": "Never"}, Action.SKIP, "left out of the target pod", id="never"),
    pytest.param(terminated("c", 1, "Error"), {}, Action.RESTART, "failed (exit 1, Error)", id="failed"),
    pytest.param(
        terminated("c", 137, "OOMKilled"), {"mounts": SCRATCH}, Action.RESTART, "exit 137, OOMKilled", id="oom"
    ),
    pytest.param(
        waiting("c", "CrashLoopBackOff", restarts=5),
        {},
        Action.MIGRATE,
        "waiting (CrashLoopBackOff): kept, never dropped",
        id="crashloop",
    ),
    pytest.param(waiting("c", "ContainerCreating"), {}, Action.MIGRATE, "waiting (ContainerCreating)", id="creating"),
    pytest.param(waiting("c", "ImagePullBackOff"), {}, Action.MIGRATE, "waiting (ImagePullBackOff)", id="imagepull"),
    pytest.param(None, {}, Action.MIGRATE, "no status reported yet: kept, never dropped", id="unknown"),
    # init containers
    pytest.param(terminated("c"), {"kind": INIT}, Action.SKIP, "init container completed (exit 0)", id="init-done"),
    pytest.param(
        terminated("c"),
        {"kind": INIT, "restart_policy": "Always", "mounts": [mount("shared", "/models")]},
        Action.SKIP,
        "'shared' is shared persistent storage",
        id="init-done-shared-always",
    ),
    pytest.param(
        terminated("c"),
        {"kind": INIT, "mounts": SCRATCH},
        Action.MIGRATE,
        "init container completed (exit 0), but its results on emptyDir 'scratch' would be lost",
        id="init-done-unsafe",
    ),
    pytest.param(
        terminated("c", 2, "Error"), {"kind": INIT}, Action.RESTART, "init container failed (exit 2", id="init-fail"
    ),
    pytest.param(running("c"), {"kind": INIT}, Action.MIGRATE, "init container running", id="init-running"),
    pytest.param(
        waiting("c", "PodInitializing"), {"kind": INIT}, Action.MIGRATE, "init container waiting", id="init-waiting"
    ),
    # restartable sidecars
    pytest.param(running("c"), {"kind": SIDECAR}, Action.MIGRATE, "sidecar: keeps running beside", id="sidecar"),
    pytest.param(terminated("c"), {"kind": SIDECAR}, Action.MIGRATE, "sidecar", id="sidecar-terminated"),
    pytest.param(None, {"kind": SIDECAR}, Action.MIGRATE, "sidecar", id="sidecar-unknown"),
]


@pytest.mark.parametrize(("status", "options", "action", "phrase"), TABLE)
def test_decision_table(status: dict[str, Any] | None, options: dict[str, Any], action: Action, phrase: str) -> None:
    decision = decide(status, **options)
    assert decision.action is action
    assert phrase in decision.reason


def test_state_is_described() -> None:
    assert decide(waiting("c", "CrashLoopBackOff")).state == "waiting (CrashLoopBackOff)"


def _d(name: str, kind: ContainerKind, action: Action) -> ContainerDecision:
    return ContainerDecision(name, kind, "x", action, "r")


C = ContainerKind.CONTAINER


@pytest.mark.parametrize(
    ("decisions", "expected"),
    [
        ([_d("a", C, Action.SKIP), _d("b", C, Action.SKIP)], True),
        ([_d("a", C, Action.SKIP), _d("b", C, Action.MIGRATE)], False),
        ([_d("a", C, Action.RESTART)], False),
        ([_d("i", INIT, Action.MIGRATE), _d("s", SIDECAR, Action.MIGRATE), _d("a", C, Action.SKIP)], True),
        ([], True),
    ],
)
def test_nothing_to_run(decisions: list[ContainerDecision], expected: bool) -> None:
    assert nothing_to_run(decisions) is expected


@pytest.mark.parametrize(
    ("mount_path", "checkpointed", "action"),
    [
        pytest.param("/workspace", ["/work"], Action.MIGRATE, id="sibling-with-a-common-prefix"),
        pytest.param("/workspace", ["/work/"], Action.MIGRATE, id="sibling-trailing-slash"),
        pytest.param("/work", ["/workspace"], Action.MIGRATE, id="artifact-below-the-mount"),
        pytest.param("/workspace", ["/workspace/"], Action.SKIP, id="same-path-trailing-slash"),
        pytest.param("/workspace/", ["/workspace"], Action.SKIP, id="mount-path-trailing-slash"),
        pytest.param("/workspace/run", ["/workspace"], Action.SKIP, id="mount-below-the-artifact"),
    ],
)
def test_an_artifact_covers_only_its_own_subtree(mount_path: str, checkpointed: list[str], action: Action) -> None:
    """An artifact `/work` does not copy an emptyDir at `/workspace`: counting it as covered would skip the finished
    container and lose its results."""
    decision = decide(terminated("c"), mounts=[mount("scratch", mount_path)], checkpointed={"c": checkpointed})
    assert decision.action is action
    if action is Action.MIGRATE:
        assert "emptyDir 'scratch' would be lost" in decision.reason


@pytest.mark.parametrize(
    ("status", "options", "reason"),
    [
        pytest.param(
            running("c"), {"kind": SIDECAR}, "sidecar: keeps running beside the main containers", id="sidecar"
        ),
        pytest.param(
            running("c"),
            {"kind": INIT},
            "init container running: it runs again to completion on the target",
            id="init-running",
        ),
        pytest.param(running("c"), {}, "running: its work continues on the target", id="running"),
        pytest.param(
            {"name": "c", "state": {"waiting": {}}}, {}, "waiting (no reason): kept, never dropped", id="waiting"
        ),
        pytest.param(
            {"name": "c", "state": {"waiting": {}}},
            {"kind": INIT},
            "init container waiting (no reason): kept, never dropped",
            id="init-waiting",
        ),
        pytest.param(None, {}, "no status reported yet: kept, never dropped", id="unknown"),
        pytest.param(
            {"name": "c", "state": {"terminated": {"exitCode": 3}}},
            {},
            "failed (exit 3, no reason): restarted on the target",
            id="failed",
        ),
        pytest.param(
            terminated("c"),
            {"restart_policy": "Always"},
            "completed (exit 0), but under restartPolicy Always the kubelet would run it again: kept on the target",
            id="always",
        ),
        pytest.param(
            terminated("c"),
            {},
            "completed (exit 0) and its results are safe (it has no writable volume mounts): left out of the target"
            " pod",
            id="no-mounts",
        ),
        pytest.param(
            terminated("c"),
            {"mounts": [mount("shared", "/data"), mount("scratch", "/scratch")], "checkpointed": {"c": ["/scratch"]}},
            "completed (exit 0) and its results are safe ('shared' is shared persistent storage; 'scratch' at /scratch"
            " is copied by the checkpoint): left out of the target pod",
            id="two-safe",
        ),
        pytest.param(
            terminated("c"),
            {"mounts": [mount("scratch", "/scratch"), mount("host", "/host"), mount("ghost", "/ghost")]},
            "completed (exit 0), but its results on emptyDir 'scratch', hostPath 'host', unknown volume 'ghost' would"
            " be lost: it runs again",
            id="three-lost",
        ),
        pytest.param(
            terminated("c"),
            {"mounts": [mount("config", "/etc/cfg", read_only=True), mount("scratch", "/scratch")]},
            "completed (exit 0), but its results on emptyDir 'scratch' would be lost: it runs again",
            id="read-only-mount-first",
        ),
    ],
)
def test_decision_reasons(status: dict[str, Any] | None, options: dict[str, Any], reason: str) -> None:
    assert decide(status, **options).reason == reason


def test_a_pod_without_a_restart_policy_restarts_always() -> None:
    pod = make_pod(containers=[container("c")], statuses=[terminated("c")])
    del pod["spec"]["restartPolicy"]
    [decision] = analyse_containers(pod, {})
    assert decision.action is Action.MIGRATE
    assert "restartPolicy Always" in decision.reason
