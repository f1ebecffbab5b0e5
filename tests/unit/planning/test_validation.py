from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import (
    CheckpointVolume,
    MigrationPlan,
    StaticVolumeCatalog,
    plan_migration,
)
from ai_storage_orchestrator.errors import Conflict, NotFound, OrchestratorError, Unprocessable
from ai_storage_orchestrator.models import Action, MigrationRequest, Resources, Strategy
from tests.unit.planning.fixtures import (
    MIGRATION_ID,
    RWO_CSI,
    RWO_HOSTPATH,
    RWX_NFS,
    SOURCE_NODE,
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

GI = 2**30


@dataclass
class Scenario:
    pod: dict[str, Any] | None = field(default_factory=certification_pod)
    node: dict[str, Any] | None = field(default_factory=make_node)
    pods_on_target: list[dict[str, Any]] = field(default_factory=list)
    request: MigrationRequest = field(default_factory=make_request)
    catalog: StaticVolumeCatalog = field(default_factory=certification_catalog)
    capture_owned: bool = False

    def plan(self) -> MigrationPlan:
        return plan_migration(
            request=self.request,
            pod=self.pod,
            target_node=self.node,
            pods_on_target=self.pods_on_target,
            catalog=self.catalog,
            migration_id=MIGRATION_ID,
            capture_owned=self.capture_owned,
        )

    @property
    def spec(self) -> dict[str, Any]:
        assert self.pod is not None
        spec: dict[str, Any] = self.pod["spec"]
        return spec


def test_certification_example() -> None:
    plan = Scenario().plan()
    plan.raise_for_failures()
    assert plan.ok
    assert [(d.name, d.action) for d in plan.decisions] == [
        ("tensorflow-trainer", Action.MIGRATE),
        ("data-processor", Action.SKIP),
        ("model-monitor", Action.MIGRATE),
    ]
    assert "shared persistent storage" in plan.decisions[1].reason
    assert [c["name"] for c in plan.target_pod["spec"]["containers"]] == ["tensorflow-trainer", "model-monitor"]
    assert plan.target_pod_name == "tensorflow-ai-workload-migrated-3f2a9c1e"
    assert (plan.requests_before, plan.requests_after) == (Resources(2200, 5 * GI), Resources(1700, 7 * GI // 2))
    assert plan.strategy is Strategy.CHECKPOINT_RESTART
    assert "corrupt training state" in plan.strategy_reason
    assert plan.checkpoint_volume == CheckpointVolume("shared-data", "/data", "tensorflow-trainer")
    assert plan.to_json()["resources"]["after"] == {"cpu_millicores": 1700, "memory_bytes": 7 * GI // 2}


def test_missing_pod_raises_not_found() -> None:
    with pytest.raises(NotFound, match="tensorflow-ai-workload") as caught:
        Scenario(pod=None).plan()
    assert caught.value.reason == "pod_not_found"
    assert caught.value.http_status == 404


def _set(path: str, value: Any) -> Callable[[Scenario], None]:
    """Set a dotted path inside the pod."""

    def apply(s: Scenario) -> None:
        target: Any = s.pod
        *parents, last = path.split(".")
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value

    return apply


def _node(**kwargs: Any) -> Callable[[Scenario], None]:
    def apply(s: Scenario) -> None:
        s.node = make_node(**kwargs)

    return apply


def _request(**kwargs: Any) -> Callable[[Scenario], None]:
    def apply(s: Scenario) -> None:
        s.request = replace(s.request, **kwargs)

    return apply


def _add_volume(volume: dict[str, Any], claims: dict[str, Any] | None = None) -> Callable[[Scenario], None]:
    def apply(s: Scenario) -> None:
        s.spec["volumes"].append(volume)
        s.spec["containers"][0]["volumeMounts"].append(mount(volume["name"], "/extra"))
        if claims:
            s.catalog = catalog(training_data=RWX_NFS, **claims)

    return apply


def _same_node(s: Scenario) -> None:
    s.request = replace(s.request, target_node=SOURCE_NODE)
    s.node = make_node(SOURCE_NODE)


def _owned(s: Scenario) -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9", "uid": "u1", "controller": True}
    assert s.pod is not None
    s.pod["metadata"]["ownerReferences"] = [owner]


def _no_node(s: Scenario) -> None:
    s.node = None


def _busy_node(s: Scenario) -> None:
    s.node = make_node(cpu="4", memory="8Gi")
    s.pods_on_target = [make_pod(name="other", containers=[container("x", cpu="3", memory="1Gi")])]


def _affinity(s: Scenario) -> None:
    term = {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}]}
    s.spec["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    }


def _emptydir_only(s: Scenario) -> None:
    s.spec["volumes"] = [{"name": "shared-data", "emptyDir": {}}]
    s.request = replace(s.request, preserve_pv=True)


def _all_done(s: Scenario) -> None:
    assert s.pod is not None
    s.pod["status"]["containerStatuses"] = [terminated(c["name"]) for c in s.spec["containers"]]


def _rwo_make_before_break(s: Scenario) -> None:
    _add_volume(pvc("rwo", "block"), {"block": RWO_CSI})(s)
    s.request = replace(s.request, strategy=Strategy.MAKE_BEFORE_BREAK)


RULES = [
    pytest.param(
        _set("metadata.deletionTimestamp", "2024-05-01T12:00:00Z"),
        Conflict,
        "pod_terminating",
        "is being deleted",
        id="terminating",
    ),
    pytest.param(
        _set("spec.nodeName", "node-c"), Conflict, "pod_not_on_source_node", "is on node node-c", id="wrong-node"
    ),
    pytest.param(_same_node, Unprocessable, "source_equals_target", "both node-a", id="same-node"),
    pytest.param(
        _set("status.phase", "Succeeded"), Unprocessable, "pod_not_running", "already finished", id="succeeded"
    ),
    pytest.param(_set("status.phase", "Failed"), Unprocessable, "pod_not_running", "phase Failed", id="failed"),
    pytest.param(_owned, Unprocessable, "owned_by_controller", "ReplicaSet 'web-7d4b9'", id="owned"),
    pytest.param(_no_node, Unprocessable, "target_node_not_found", "node-b does not exist", id="no-node"),
    pytest.param(_node(ready=False), Unprocessable, "target_node_not_ready", "not Ready", id="not-ready"),
    pytest.param(_node(unschedulable=True), Unprocessable, "target_node_cordoned", "cordoned", id="cordoned"),
    pytest.param(
        _node(taints=[{"key": "dedicated", "value": "infra", "effect": "NoExecute"}]),
        Unprocessable,
        "taints_not_tolerated",
        "dedicated=infra:NoExecute",
        id="taint",
    ),
    pytest.param(
        _set("spec.nodeSelector", {"gpu": "h100"}),
        Unprocessable,
        "node_selector_mismatch",
        "gpu=h100",
        id="node-selector",
    ),
    pytest.param(_affinity, Unprocessable, "node_affinity_mismatch", "required node affinity", id="affinity"),
    pytest.param(_busy_node, Unprocessable, "insufficient_resources", "not enough cpu", id="resources"),
    pytest.param(
        _add_volume({"name": "host-cache", "hostPath": {"path": "/var/cache"}}),
        Unprocessable,
        "unsafe_volume",
        "hostPath 'host-cache'",
        id="hostpath",
    ),
    pytest.param(
        _add_volume(pvc("local", "on-disk"), {"on_disk": RWO_HOSTPATH}),
        Unprocessable,
        "unsafe_volume",
        "cannot follow the pod",
        id="pv-hostpath",
    ),
    pytest.param(
        _rwo_make_before_break,
        Unprocessable,
        "rwo_volume_requires_checkpoint_restart",
        "one node at a time",
        id="rwo-make-before-break",
    ),
    pytest.param(_all_done, Unprocessable, "nothing_to_run", "nothing to run", id="nothing-to-run"),
]


@pytest.mark.parametrize(("mutate", "error", "reason", "phrase"), RULES)
def test_validation_rule(
    mutate: Callable[[Scenario], None], error: type[OrchestratorError], reason: str, phrase: str
) -> None:
    scenario = Scenario()
    mutate(scenario)
    plan = scenario.plan()
    with pytest.raises(error) as caught:
        plan.raise_for_failures()
    assert type(caught.value) is error
    assert caught.value.reason == reason
    assert phrase in caught.value.message
    assert [c["reason"] for c in caught.value.details["failed_checks"]] == [reason]


def test_details_carry_data() -> None:
    scenario = Scenario()
    _set("spec.nodeName", "node-c")(scenario)
    with pytest.raises(Conflict) as caught:
        scenario.plan().raise_for_failures()
    assert caught.value.details["actual_node"] == "node-c"
    scenario = Scenario()
    _owned(scenario)
    with pytest.raises(Unprocessable, match="admission webhook to capture") as owned:
        scenario.plan().raise_for_failures()
    assert owned.value.details["owner"]["kind"] == "ReplicaSet"


def test_an_owned_pod_moves_checkpoint_restart_when_the_webhook_captures_its_replacement() -> None:
    scenario = Scenario(capture_owned=True, request=make_request(strategy=Strategy.MAKE_BEFORE_BREAK))
    assert scenario.pod is not None
    job = {"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "u1", "controller": True}
    scenario.pod["metadata"]["ownerReferences"] = [job]
    plan = scenario.plan()
    assert plan.ok, plan.failures
    assert plan.owner == {"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "u1"}
    assert plan.strategy is Strategy.CHECKPOINT_RESTART
    assert "make-before-break was asked for" in plan.strategy_reason
    owned = next(c for c in plan.checks if c.name == "not_owned_by_controller")
    assert "replacement its owner creates is captured" in owned.message


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (Strategy.MAKE_BEFORE_BREAK, Strategy.MAKE_BEFORE_BREAK),
        (Strategy.AUTO, Strategy.CHECKPOINT_RESTART),  # the certification pod writes its shared volume
        (Strategy.CHECKPOINT_RESTART, Strategy.CHECKPOINT_RESTART),
    ],
)
def test_a_replicaset_pod_surges_when_it_would_move_make_before_break(requested: Strategy, expected: Strategy) -> None:
    scenario = Scenario(capture_owned=True, request=make_request(strategy=requested))
    _owned(scenario)
    plan = scenario.plan()
    assert plan.ok, plan.failures
    assert plan.strategy is expected
    assert ("through surge" in plan.strategy_reason) is (expected is Strategy.MAKE_BEFORE_BREAK)


@pytest.mark.parametrize(
    ("kind", "phrase"), [("DaemonSet", "one pod on each node"), ("Node", "static pod, run by the kubelet")]
)
def test_daemonset_and_static_pods_never_move(kind: str, phrase: str) -> None:
    scenario = Scenario(capture_owned=True)
    assert scenario.pod is not None
    scenario.pod["metadata"]["ownerReferences"] = [{"kind": kind, "name": "x", "uid": "u", "controller": True}]
    with pytest.raises(Unprocessable, match=phrase) as caught:
        scenario.plan().raise_for_failures()
    assert caught.value.reason == "owned_by_controller"


def test_every_check_runs_and_priority_picks_the_error() -> None:
    scenario = Scenario(node=make_node(ready=False, unschedulable=True))
    _set("spec.nodeName", "node-c")(scenario)
    _all_done(scenario)
    plan = scenario.plan()
    assert [c.reason for c in plan.failures] == [
        "pod_not_on_source_node",
        "target_node_not_ready",
        "target_node_cordoned",
        "nothing_to_run",
    ]
    with pytest.raises(Conflict):
        plan.raise_for_failures()


def _stateless(**kwargs: Any) -> dict[str, Any]:
    """A pod whose running container writes only emptyDir; kwargs go to make_pod."""
    containers = kwargs.pop("containers", [container("c", mounts=[mount("tmp", "/tmp")])])
    statuses = kwargs.pop("statuses", [running("c")])
    volumes = kwargs.pop("volumes", [{"name": "tmp", "emptyDir": {}}])
    return make_pod(name="tensorflow-ai-workload", containers=containers, statuses=statuses, volumes=volumes, **kwargs)


STRATEGIES = [
    pytest.param(
        certification_pod(),
        Strategy.AUTO,
        Strategy.CHECKPOINT_RESTART,
        "container 'tensorflow-trainer' writes nfs 'shared-data'",
        id="writer",
    ),
    pytest.param(_stateless(), Strategy.AUTO, Strategy.MAKE_BEFORE_BREAK, "zero downtime", id="stateless"),
    pytest.param(
        _stateless(annotations={"ai-storage.io/checkpoint-hook.c": "kill -USR1 1"}),
        Strategy.AUTO,
        Strategy.CHECKPOINT_RESTART,
        "checkpoint hook(s) ai-storage.io/checkpoint-hook.c",
        id="hook",
    ),
    pytest.param(
        _stateless(
            containers=[container("c", mounts=[mount("blk", "/m", read_only=True)])], volumes=[pvc("blk", "block")]
        ),
        Strategy.AUTO,
        Strategy.CHECKPOINT_RESTART,
        "ReadWriteOnce: one node at a time",
        id="rwo-read-only",
    ),
    pytest.param(
        _stateless(
            containers=[
                container("c", mounts=[mount("shared-data", "/d", read_only=True)]),
                container("done", mounts=[mount("shared-data", "/d")]),
            ],
            statuses=[running("c"), terminated("done")],
            volumes=[pvc("shared-data", "training-data")],
        ),
        Strategy.AUTO,
        Strategy.MAKE_BEFORE_BREAK,
        "zero downtime",
        id="only-skipped-container-writes",
    ),
    pytest.param(
        certification_pod(),
        Strategy.MAKE_BEFORE_BREAK,
        Strategy.MAKE_BEFORE_BREAK,
        "requested explicitly",
        id="explicit-mbb-rwx",
    ),
    pytest.param(
        _stateless(), Strategy.CHECKPOINT_RESTART, Strategy.CHECKPOINT_RESTART, "requested explicitly", id="explicit-cr"
    ),
]


@pytest.mark.parametrize(("pod", "requested", "expected", "phrase"), STRATEGIES)
def test_strategy(pod: dict[str, Any], requested: Strategy, expected: Strategy, phrase: str) -> None:
    scenario = Scenario(pod=pod, request=make_request(strategy=requested))
    scenario.catalog = catalog(training_data=RWX_NFS, block=RWO_CSI)
    plan = scenario.plan()
    assert plan.ok, plan.failures
    assert plan.strategy is expected
    assert phrase in plan.strategy_reason


def test_preserve_pv_without_a_shared_volume_is_accepted_with_a_warning() -> None:
    """Nothing to preserve: the plan passes, says so once, and runs again the completed container whose results
    (on the emptyDir now) the move would lose -- restarted, not skipped."""
    scenario = Scenario()
    _emptydir_only(scenario)
    plan = scenario.plan()
    plan.raise_for_failures()
    assert plan.ok
    assert [(d.name, d.action) for d in plan.decisions] == [
        ("tensorflow-trainer", Action.MIGRATE),
        ("data-processor", Action.MIGRATE),
        ("model-monitor", Action.MIGRATE),
    ]
    (warning,) = plan.warnings
    assert "preserve_pv was requested but pod ml/tensorflow-ai-workload has no shared persistent volume" in warning
    assert warning.endswith(
        "nothing to preserve; completed container(s) whose results would be lost run again on"
        " the target: data-processor"
    )
    assert plan.to_json()["warnings"] == [warning]
    (shared_check,) = [c for c in plan.checks if c.name == "shared_volume_present"]
    assert shared_check.passed
    assert "accepted with a warning" in shared_check.message


def test_preserve_pv_on_a_pod_with_no_volume_at_all() -> None:
    """The seed's zero-downtime demo: no volume anywhere. A completed container with no writable mount has no
    results at stake (the decision table skips it); the warning says so."""
    scenario = Scenario()
    scenario.spec["volumes"] = []
    for spec_container in scenario.spec["containers"]:
        spec_container.pop("volumeMounts", None)
    scenario.request = replace(scenario.request, preserve_pv=True)
    plan = scenario.plan()
    assert plan.ok
    (warning,) = plan.warnings
    assert warning.endswith("nothing to preserve; no completed container's results are at stake")


@pytest.mark.parametrize("preserve_pv", [True, False])
def test_no_warning_when_something_is_shared_or_preserve_pv_was_not_asked(preserve_pv: bool) -> None:
    scenario = Scenario()
    scenario.request = replace(scenario.request, preserve_pv=preserve_pv)
    assert scenario.plan().warnings == []
    _emptydir_only(scenario)
    scenario.request = replace(scenario.request, preserve_pv=False)
    plan = scenario.plan()
    assert (plan.ok, plan.warnings) == (True, [])
