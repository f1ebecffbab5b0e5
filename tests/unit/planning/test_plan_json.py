"""A dry run's plan as the API returns it (``MigrationPlan.to_json``): every field, check name, reason, message and
detail, for the certification example and for a pod that breaks every pod and volume rule; the error it raises."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import MigrationPlan, plan_migration
from ai_storage_orchestrator.errors import Conflict, NotFound, OrchestratorError
from ai_storage_orchestrator.models import Strategy
from tests.unit.planning.fixtures import (
    MIGRATION_ID,
    RWO_CSI,
    RWO_HOSTPATH,
    RWX_NFS,
    catalog,
    certification_catalog,
    certification_pod,
    container,
    make_node,
    make_pod,
    make_request,
    mount,
    pvc,
    running,
    terminated,
)

pytestmark = pytest.mark.unit


def test_the_certification_plan() -> None:
    plan = plan_migration(
        request=make_request(),
        pod=certification_pod(),
        target_node=make_node(),
        pods_on_target=[],
        catalog=certification_catalog(),
        migration_id=MIGRATION_ID,
    )
    assert plan.to_json() == CERTIFICATION_PLAN


def _unmovable() -> MigrationPlan:
    """Being deleted, not scheduled, finished, owned by a ReplicaSet, onto a node that does not exist, with a hostPath
    volume and ReadWriteOnce claims under make-before-break, preserve_pv without a shared volume."""
    pod = make_pod(
        name="worker",
        containers=[container("c", cpu="1", mounts=[mount("host", "/host"), mount("block", "/block")])],
        statuses=[terminated("c", 0)],
        volumes=[{"name": "host", "hostPath": {"path": "/mnt"}}, pvc("block", "rwo-csi"), pvc("disk", "rwo-hp")],
        node=None,
        phase="Succeeded",
    )
    pod["metadata"]["deletionTimestamp"] = "2024-05-01T12:00:00Z"
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Service", "name": "not-a-controller", "uid": "u0"},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "worker-5d9f", "uid": "u1", "controller": True},
    ]
    request = make_request(
        source_node="node-b", target_node="node-b", strategy=Strategy.MAKE_BEFORE_BREAK, preserve_pv=True
    )
    return plan_migration(
        request=request,
        pod=pod,
        target_node=None,
        pods_on_target=[],
        catalog=catalog(rwo_csi=RWO_CSI, rwo_hp=RWO_HOSTPATH),
        migration_id=MIGRATION_ID,
    )


def test_a_plan_that_breaks_every_pod_and_volume_rule() -> None:
    assert _unmovable().to_json() == UNMOVABLE_PLAN


def test_the_first_failure_in_priority_order_is_the_error_and_its_details_list_every_failure() -> None:
    plan = _unmovable()
    with pytest.raises(OrchestratorError) as caught:
        plan.raise_for_failures()
    assert type(caught.value) is Conflict
    assert caught.value.reason == "pod_terminating"
    assert str(caught.value) == "pod ml/worker is being deleted (since 2024-05-01T12:00:00Z)"
    failed = [c for c in UNMOVABLE_PLAN["checks"] if not c["passed"]]
    assert caught.value.details == {
        "deletion_timestamp": "2024-05-01T12:00:00Z",
        "check": "pod_not_terminating",
        "failed_checks": failed,
    }


def test_a_pod_without_a_namespace_is_in_default() -> None:
    pod = certification_pod()
    del pod["metadata"]["namespace"]
    plan = plan_migration(
        request=make_request(),
        pod=pod,
        target_node=make_node(),
        pods_on_target=[],
        catalog=certification_catalog(),
        migration_id=MIGRATION_ID,
    )
    assert plan.checks[0].message == "pod default/tensorflow-ai-workload is not being deleted"


GIB = 1 << 30

CERTIFICATION_PLAN: dict[str, Any] = {
    "strategy": "checkpoint-restart",
    "strategy_reason": "checkpoint-restart: container 'tensorflow-trainer' writes nfs 'shared-data' (PVC "
    "training-data) (two copies writing it at once would corrupt training state); container "
    "'model-monitor' writes nfs 'shared-data' (PVC training-data)",
    "new_pod_name": "tensorflow-ai-workload-migrated-3f2a9c1e",
    "containers": [
        {
            "name": "tensorflow-trainer",
            "kind": "container",
            "state": "running",
            "action": "migrate",
            "reason": "running: its work continues on the target",
        },
        {
            "name": "data-processor",
            "kind": "container",
            "state": "terminated (exit 0, Completed)",
            "action": "skip",
            "reason": "completed (exit 0) and its results are safe ('shared-data' is shared persistent "
            "storage): left out of the target pod",
        },
        {
            "name": "model-monitor",
            "kind": "container",
            "state": "running",
            "action": "migrate",
            "reason": "running: its work continues on the target",
        },
    ],
    "resources": {
        "before": {"cpu_millicores": 2200, "memory_bytes": 5 * GIB},
        "after": {"cpu_millicores": 1700, "memory_bytes": 7 * GIB // 2},
    },
    "checkpoint_volume": {"volume": "shared-data", "mount_path": "/data", "container": "tensorflow-trainer"},
    "checks": [
        {
            "name": "pod_not_terminating",
            "passed": True,
            "reason": "pod_terminating",
            "message": "pod ml/tensorflow-ai-workload is not being deleted",
            "details": {"deletion_timestamp": None},
        },
        {
            "name": "pod_on_source_node",
            "passed": True,
            "reason": "pod_not_on_source_node",
            "message": "pod ml/tensorflow-ai-workload is on node node-a, source node is node-a",
            "details": {"actual_node": "node-a", "source_node": "node-a"},
        },
        {
            "name": "source_differs_from_target",
            "passed": True,
            "reason": "source_equals_target",
            "message": "moving from node-a to node-b",
            "details": {},
        },
        {
            "name": "pod_running",
            "passed": True,
            "reason": "pod_not_running",
            "message": "pod ml/tensorflow-ai-workload is in phase Running",
            "details": {"phase": "Running"},
        },
        {
            "name": "not_owned_by_controller",
            "passed": True,
            "reason": "owned_by_controller",
            "message": "pod ml/tensorflow-ai-workload has no controlling owner",
            "details": {"owner": None},
        },
        {
            "name": "target_node_exists",
            "passed": True,
            "reason": "target_node_not_found",
            "message": "node node-b exists",
            "details": {},
        },
        {
            "name": "target_node_ready",
            "passed": True,
            "reason": "target_node_not_ready",
            "message": "node node-b is Ready",
            "details": {"ready": "True"},
        },
        {
            "name": "target_node_schedulable",
            "passed": True,
            "reason": "target_node_cordoned",
            "message": "node node-b is schedulable",
            "details": {},
        },
        {
            "name": "taints_tolerated",
            "passed": True,
            "reason": "taints_not_tolerated",
            "message": "every NoSchedule/NoExecute taint is tolerated",
            "details": {"taints": []},
        },
        {
            "name": "node_selector_matches",
            "passed": True,
            "reason": "node_selector_mismatch",
            "message": "nodeSelector matches",
            "details": {"missing": {}},
        },
        {
            "name": "node_affinity_matches",
            "passed": True,
            "reason": "node_affinity_mismatch",
            "message": "required node affinity matches",
            "details": {"terms": []},
        },
        {
            "name": "resources_fit",
            "passed": True,
            "reason": "insufficient_resources",
            "message": "target pod needs cpu 1700m, memory 3.5Gi and 1 pod slot; node node-b has cpu 8, memory "
            "32Gi and 110 pod slots free (allocatable cpu 8, memory 32Gi, 110 pods; 0 pods already "
            "request cpu 0, memory 0)",
            "details": {
                "insufficient": [],
                "needed": {"cpu_millicores": 1700, "memory_bytes": 7 * GIB // 2},
                "free": {"cpu_millicores": 8000, "memory_bytes": 32 * GIB, "pods": 110},
                "allocatable": {"cpu_millicores": 8000, "memory_bytes": 32 * GIB, "pods": 110},
            },
        },
        {
            "name": "extended_resources_fit",
            "passed": True,
            "reason": "insufficient_resources",
            "message": "the target pod requests no extended resources",
            "details": {"node": "node-b", "insufficient": [], "resources": {}},
        },
        {
            "name": "ephemeral_storage_fit",
            "passed": True,
            "reason": "insufficient_resources",
            "message": "node node-b reports no allocatable ephemeral-storage: not checked",
            "details": {"node": "node-b", "checked": False, "requested": 0},
        },
        {
            "name": "host_ports_free",
            "passed": True,
            "reason": "host_port_conflict",
            "message": "the target pod binds no host port",
            "details": {"node": "node-b", "host_ports": [], "conflicts": []},
        },
        {
            "name": "volume_node_affinity",
            "passed": True,
            "reason": "volume_node_affinity",
            "message": "no bound PersistentVolume restricts its nodes",
            "details": {"node": "node-b", "volumes": []},
        },
        {
            "name": "volumes_portable",
            "passed": True,
            "reason": "unsafe_volume",
            "message": "no volume is tied to the source node's disk",
            "details": {"volumes": []},
        },
        {
            "name": "rwo_volume_strategy",
            "passed": True,
            "reason": "rwo_volume_requires_checkpoint_restart",
            "message": "no ReadWriteOnce volume conflicts with the strategy",
            "details": {"volumes": []},
        },
        {
            "name": "shared_volume_present",
            "passed": True,
            "reason": "no_shared_volume",
            "message": "shared volume(s): shared-data",
            "details": {"shared_volumes": ["shared-data"]},
        },
        {
            "name": "something_to_run",
            "passed": True,
            "reason": "nothing_to_run",
            "message": "2 container(s) run on the target",
            "details": {
                "containers": [
                    {
                        "name": "tensorflow-trainer",
                        "action": "migrate",
                        "reason": "running: its work continues on the target",
                    },
                    {
                        "name": "data-processor",
                        "action": "skip",
                        "reason": "completed (exit 0) and its results are safe ('shared-data' is "
                        "shared persistent storage): left out of the target pod",
                    },
                    {
                        "name": "model-monitor",
                        "action": "migrate",
                        "reason": "running: its work continues on the target",
                    },
                ]
            },
        },
    ],
    "ok": True,
    "warnings": [],
}

UNMOVABLE_PLAN: dict[str, Any] = {
    "strategy": "make-before-break",
    "strategy_reason": "make-before-break requested explicitly",
    "new_pod_name": "worker-migrated-3f2a9c1e",
    "containers": [
        {
            "name": "c",
            "kind": "container",
            "state": "terminated (exit 0, Completed)",
            "action": "migrate",
            "reason": "completed (exit 0), but its results on hostPath 'host', csi 'block' (PVC rwo-csi) "
            "would be lost: it runs again",
        }
    ],
    "resources": {
        "before": {"cpu_millicores": 1000, "memory_bytes": 0},
        "after": {"cpu_millicores": 1000, "memory_bytes": 0},
    },
    "checkpoint_volume": None,
    "checks": [
        {
            "name": "pod_not_terminating",
            "passed": False,
            "reason": "pod_terminating",
            "message": "pod ml/worker is being deleted (since 2024-05-01T12:00:00Z)",
            "details": {"deletion_timestamp": "2024-05-01T12:00:00Z"},
        },
        {
            "name": "pod_on_source_node",
            "passed": False,
            "reason": "pod_not_on_source_node",
            "message": "pod ml/worker is on node (none: not scheduled), source node is node-b",
            "details": {"actual_node": None, "source_node": "node-b"},
        },
        {
            "name": "source_differs_from_target",
            "passed": False,
            "reason": "source_equals_target",
            "message": "source and target node are both node-b",
            "details": {},
        },
        {
            "name": "pod_running",
            "passed": False,
            "reason": "pod_not_running",
            "message": "pod ml/worker has already finished (phase Succeeded): there is nothing to move",
            "details": {"phase": "Succeeded"},
        },
        {
            "name": "not_owned_by_controller",
            "passed": False,
            "reason": "owned_by_controller",
            "message": "pod ml/worker: the pod is managed by ReplicaSet 'worker-5d9f', which would recreate or adopt a"
            " copy: moving it needs the orchestrator's admission webhook to capture the owner's replacement (serve"
            " --webhooks; docs/webhooks.md)",
            "details": {"owner": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "worker-5d9f", "uid": "u1"}},
        },
        {
            "name": "target_node_exists",
            "passed": False,
            "reason": "target_node_not_found",
            "message": "target node node-b does not exist",
            "details": {"node": "node-b"},
        },
        {
            "name": "volumes_portable",
            "passed": False,
            "reason": "unsafe_volume",
            "message": "hostPath 'host', hostPath 'disk' (PVC rwo-hp) keeps its data on node node-b's disk: it "
            "cannot follow the pod to node-b",
            "details": {
                "volumes": [
                    {"name": "host", "kind": "hostPath", "claim": None},
                    {"name": "disk", "kind": "hostPath", "claim": "rwo-hp"},
                ]
            },
        },
        {
            "name": "rwo_volume_strategy",
            "passed": False,
            "reason": "rwo_volume_requires_checkpoint_restart",
            "message": "csi 'block' (PVC rwo-csi), hostPath 'disk' (PVC rwo-hp) can be attached to one node at a "
            "time: make-before-break would need it on both nodes; use checkpoint-restart (or auto)",
            "details": {"volumes": ["block", "disk"]},
        },
        {
            "name": "shared_volume_present",
            "passed": True,
            "reason": "no_shared_volume",
            "message": "no shared persistent volume: nothing to preserve (accepted with a warning)",
            "details": {"shared_volumes": []},
        },
        {
            "name": "something_to_run",
            "passed": True,
            "reason": "nothing_to_run",
            "message": "1 container(s) run on the target",
            "details": {
                "containers": [
                    {
                        "name": "c",
                        "action": "migrate",
                        "reason": "completed (exit 0), but its results on hostPath 'host', csi "
                        "'block' (PVC rwo-csi) would be lost: it runs again",
                    }
                ]
            },
        },
    ],
    "ok": False,
    "warnings": [
        "preserve_pv was requested but pod ml/worker has no shared persistent volume (NFS or ReadWriteMany "
        "PVC): there is nothing to preserve; completed container(s) whose results would be lost run again on "
        "the target: c"
    ],
}


def _plan(pod: dict[str, Any], **request: Any) -> MigrationPlan:
    return plan_migration(
        request=make_request(**request),
        pod=pod,
        target_node=make_node(),
        pods_on_target=[],
        catalog=catalog(shared_a=RWX_NFS, shared_b=RWX_NFS),
        migration_id=MIGRATION_ID,
        checkpointed={"prep": ["/scratch"]},
    )


def _checks(plan: MigrationPlan) -> dict[str, Any]:
    return {c.name: c.to_json() for c in plan.checks}


def test_a_failed_pod_is_not_running() -> None:
    pod = certification_pod()
    pod["status"]["phase"] = "Failed"
    check = _checks(_plan(pod))["pod_running"]
    assert (check["passed"], check["message"]) == (
        False,
        "pod ml/tensorflow-ai-workload has already finished (phase Failed): there is nothing to move",
    )


def test_the_plan_carries_what_it_was_given() -> None:
    pod = make_pod(
        containers=[
            container("train", mounts=[mount("a", "/a"), mount("b", "/b")]),
            container("prep", mounts=[mount("scratch", "/scratch")]),
        ],
        statuses=[running("train"), terminated("prep")],
        volumes=[pvc("a", "shared-a"), pvc("b", "shared-b"), {"name": "scratch", "emptyDir": {}}],
    )
    plan = _plan(pod)
    assert [d.action.value for d in plan.decisions] == ["migrate", "skip"], "the checkpointed paths are used"
    assert plan.target_pod["spec"]["nodeName"] == "node-b"
    assert sorted(plan.volumes) == ["a", "b", "scratch"]
    assert _checks(plan)["shared_volume_present"]["message"] == "shared volume(s): a, b"


@pytest.mark.parametrize(
    ("preserve_pv", "message"),
    [
        (False, "preserve_pv not requested"),
        (True, "no shared persistent volume: nothing to preserve (accepted with a warning)"),
    ],
)
def test_the_shared_volume_check_without_one(preserve_pv: bool, message: str) -> None:
    pod = make_pod(containers=[container("c")], statuses=[running("c")])
    assert _checks(_plan(pod, preserve_pv=preserve_pv))["shared_volume_present"]["message"] == message


def test_nothing_left_to_run_and_every_rerun_named() -> None:
    done = make_pod(containers=[container("a"), container("b")], statuses=[terminated("a"), terminated("b")])
    check = _checks(_plan(done))["something_to_run"]
    assert (check["passed"], check["message"]) == (
        False,
        "every container has completed and its results are safe: the target pod would have nothing to run",
    )
    lost = make_pod(
        containers=[container("a", mounts=[mount("tmp", "/tmp")]), container("b", mounts=[mount("tmp", "/tmp")])],
        statuses=[terminated("a"), terminated("b")],
        volumes=[{"name": "tmp", "emptyDir": {}}],
    )
    [warning] = _plan(lost, preserve_pv=True).warnings
    assert warning.endswith("whose results would be lost run again on the target: a, b")


def test_a_missing_pod_is_not_found_with_its_name() -> None:
    request = make_request()
    with pytest.raises(NotFound) as caught:
        plan_migration(
            request=request,
            pod=None,
            target_node=make_node(),
            pods_on_target=[],
            catalog=catalog(),
            migration_id=MIGRATION_ID,
        )
    assert caught.value.details == {"pod_namespace": "ml", "pod_name": "tensorflow-ai-workload"}
