"""Automatic target choice (controller/planning/choice.py): which nodes are refused and why, how the eligible ones
rank, what the explanation says, and how a plan for a request without a target uses it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import StaticVolumeCatalog, plan_migration
from ai_storage_orchestrator.controller.planning.choice import (
    MAX_LISTED,
    MAX_RUNNERS_UP,
    TargetChoice,
    choose_target,
    normalize_image,
    same_workload,
)
from ai_storage_orchestrator.controller.planning.targetpod import build_target_pod
from ai_storage_orchestrator.controller.planning.volumes import VolumeInfo
from ai_storage_orchestrator.errors import Conflict, Unprocessable
from ai_storage_orchestrator.models import AUTO_TARGET, ContainerDecision
from tests.unit.planning.fixtures import (
    MIGRATION_ID,
    SOURCE_NODE,
    container,
    make_node,
    make_pod,
    make_request,
    running,
)

pytestmark = pytest.mark.unit

JSON = dict[str, Any]
GPU = "nvidia.com/gpu"
NO_DECISIONS: list[ContainerDecision] = []


def _pod(*, cpu: str = "1", memory: str = "1Gi", **spec: Any) -> JSON:
    main = container("train", cpu=cpu, memory=memory)
    pod = make_pod(containers=[main], statuses=[running("train")], labels={"app": "trainer"})
    pod["spec"].update(spec)
    return pod


def _target(pod: Mapping[str, Any]) -> JSON:
    return build_target_pod(pod, NO_DECISIONS, migration_id=MIGRATION_ID, target_node=AUTO_TARGET)


def _other(name: str, *, cpu: str = "0", memory: str = "0", labels: Mapping[str, str] | None = None) -> JSON:
    pod = make_pod(name=name, containers=[container("c", cpu=cpu, memory=memory)], labels=labels or {"app": name})
    pod["metadata"]["uid"] = f"uid-{name}"  # distinct pods for the requests cache
    return pod


def _with_images(node: JSON, *names: str) -> JSON:
    node["status"]["images"] = [{"names": [name], "sizeBytes": 1} for name in names]
    return node


def _choose(
    pod: JSON,
    nodes: Sequence[JSON],
    pods_by_node: Mapping[str, Sequence[JSON]] | None = None,
    volumes: Sequence[VolumeInfo] = (),
) -> TargetChoice:
    return choose_target(
        pod=pod,
        target_pod=_target(pod),
        nodes=nodes,
        pods_by_node=pods_by_node or {},
        source_node=SOURCE_NODE,
        volumes=volumes,
    )


# Images ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reference", "normalized"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox:1.36", "docker.io/library/busybox:1.36"),
        ("docker.io/busybox:1.36", "docker.io/library/busybox:1.36"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("tensorflow/tensorflow:2.15.0", "docker.io/tensorflow/tensorflow:2.15.0"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        ("localhost:5000/model", "localhost:5000/model:latest"),
        ("localhost/model:1", "localhost/model:1"),
        ("aiso.local/numpy-workload:1", "aiso.local/numpy-workload:1"),
        ("busybox:1.36@sha256:abc", "docker.io/library/busybox@sha256:abc"),
        ("ghcr.io/org/img@sha256:abc", "ghcr.io/org/img@sha256:abc"),
    ],
)
def test_image_references_are_compared_as_nodes_list_them(reference: str, normalized: str) -> None:
    assert normalize_image(reference) == normalized


# Filters --------------------------------------------------------------------------------------------------------------
def _node_case(name: str, **kwargs: Any) -> JSON:
    return make_node(name, **kwargs)


REFUSALS: list[tuple[JSON, JSON, str | None, str | None]] = [
    # (pod spec additions, node, expected reason (None: eligible), expected check)
    ({}, _node_case(SOURCE_NODE), "source_equals_target", "source_differs_from_target"),
    ({}, _node_case("n", ready=False), "target_node_not_ready", "target_node_ready"),
    ({}, _node_case("n", unschedulable=True), "target_node_cordoned", "target_node_schedulable"),
    ({}, _node_case("n", taints=[{"key": "gpu", "effect": "NoSchedule"}]), "taints_not_tolerated", "taints_tolerated"),
    ({}, _node_case("n", taints=[{"key": "gpu", "effect": "NoExecute"}]), "taints_not_tolerated", "taints_tolerated"),
    ({}, _node_case("n", taints=[{"key": "gpu", "effect": "PreferNoSchedule"}]), None, None),
    (
        {"tolerations": [{"key": "gpu", "operator": "Exists"}]},
        _node_case("n", taints=[{"key": "gpu", "effect": "NoSchedule"}]),
        None,
        None,
    ),
    ({"nodeSelector": {"pool": "a100"}}, _node_case("n"), "node_selector_mismatch", "node_selector_matches"),
    ({"nodeSelector": {"pool": "a100"}}, _node_case("n", labels={"pool": "a100"}), None, None),
    (
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}
                        ]
                    }
                }
            }
        },
        _node_case("n", labels={"zone": "z2"}),
        "node_affinity_mismatch",
        "node_affinity_matches",
    ),
    ({}, _node_case("n", cpu="500m"), "insufficient_resources", "resources_fit"),
    # NotReady and cordoned at once: the first reason in REASON_PRIORITY order is given.
    ({}, _node_case("n", ready=False, unschedulable=True), "target_node_not_ready", "target_node_ready"),
]


@pytest.mark.parametrize(("spec", "node", "reason", "check"), REFUSALS)
def test_every_fit_check_filters(spec: JSON, node: JSON, reason: str | None, check: str | None) -> None:
    choice = _choose(_pod(**spec), [node])
    assert choice.considered == 1
    if reason is None:
        assert choice.chosen is not None
        assert choice.chosen.node == node["metadata"]["name"]
        assert choice.refused == ()
    else:
        assert choice.chosen is None
        assert [(r.node, r.reason, r.check) for r in choice.refused] == [(node["metadata"]["name"], reason, check)]


def test_a_gpu_pod_is_refused_by_nodes_without_free_gpus() -> None:
    pod = _pod()
    pod["spec"]["containers"][0]["resources"]["limits"] = {GPU: "1"}
    with_gpu = make_node("gpu-1")
    with_gpu["status"]["allocatable"][GPU] = "1"
    taken = make_node("gpu-2")
    taken["status"]["allocatable"][GPU] = "1"
    holder = _other("holder")
    holder["spec"]["containers"][0]["resources"] = {"limits": {GPU: "1"}}
    choice = _choose(pod, [make_node("cpu-1"), taken, with_gpu], {"gpu-2": [holder]})
    assert choice.chosen is not None
    assert choice.chosen.node == "gpu-1"
    refused = {r.node: (r.reason, r.check) for r in choice.refused}
    assert refused == {
        "cpu-1": ("insufficient_resources", "extended_resources_fit"),
        "gpu-2": ("insufficient_resources", "extended_resources_fit"),
    }
    assert GPU in next(r.message for r in choice.refused if r.node == "cpu-1")


def test_the_volumes_node_affinity_filters() -> None:
    terms = ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},)
    volume = VolumeInfo(name="data", kind="csi", claim_name="data", pv_name="pv-1", node_affinity=terms)
    choice = _choose(_pod(), [make_node("z1", labels={"zone": "z1"}), make_node("z2")], volumes=[volume])
    assert choice.chosen is not None
    assert choice.chosen.node == "z1"
    assert [(r.node, r.reason) for r in choice.refused] == [("z2", "volume_node_affinity")]


# Ranking --------------------------------------------------------------------------------------------------------------
def test_a_node_with_every_image_beats_a_less_allocated_one() -> None:
    pod = _pod()
    image = pod["spec"]["containers"][0]["image"]
    busy = _with_images(make_node("busy"), image)
    idle = make_node("idle")
    choice = _choose(pod, [idle, busy], {"busy": [_other("load", cpu="6")]})
    assert [s.node for s in choice.ranking] == ["busy", "idle"]
    chosen = choice.chosen
    assert chosen is not None
    assert chosen.images_present
    assert chosen.images_missing == ()
    assert choice.ranking[1].images_missing == (image,)


def test_least_allocated_after_the_move_wins_among_nodes_with_the_same_images() -> None:
    pod = _pod(cpu="1", memory="1Gi")
    nodes = [make_node("a-full"), make_node("b-half"), make_node("c-empty")]  # 8 cpu, 32Gi each
    load = {"a-full": [_other("x", cpu="5", memory="16Gi")], "b-half": [_other("y", cpu="3", memory="8Gi")]}
    choice = _choose(pod, nodes, load)
    assert [s.node for s in choice.ranking] == ["c-empty", "b-half", "a-full"]
    empty = choice.ranking[0]
    assert (empty.cpu_after, empty.memory_after) == (0.125, 0.0312)
    assert empty.allocated_after == round((0.125 + 0.0312) / 2, 4)
    full = choice.ranking[2]
    assert (full.cpu_after, full.memory_after) == (0.75, 0.5312)


def test_finished_pods_and_the_target_pod_itself_do_not_count() -> None:
    pod = _pod()
    done = _other("done", cpu="7")
    done["status"]["phase"] = "Succeeded"
    again = _target(pod)  # a target created by an earlier pass of this migration
    again["metadata"]["uid"] = "uid-target"
    again["status"] = {"phase": "Running"}
    choice = _choose(pod, [make_node("b")], {"b": [done, again]})
    assert choice.chosen is not None
    assert choice.chosen.cpu_after == 0.125


def test_fewer_pods_of_the_same_workload_break_a_tie_in_allocation() -> None:
    pod = _pod()
    peer = _other("peer", labels={"app": "trainer", "role": "worker"})
    stranger = _other("stranger", labels={"app": "other"})
    choice = _choose(pod, [make_node("a"), make_node("b")], {"a": [peer], "b": [stranger]})
    assert [(s.node, s.same_workload_pods) for s in choice.ranking] == [("b", 0), ("a", 1)]


def test_the_name_breaks_a_full_tie() -> None:
    choice = _choose(_pod(), [make_node("node-c"), make_node("node-b"), make_node("node-d")])
    assert [s.node for s in choice.ranking] == ["node-b", "node-c", "node-d"]


def test_same_workload_is_the_controlling_owner_when_there_is_one() -> None:
    owned = _pod()
    owned["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "j", "uid": "job-1", "controller": True}]
    sibling = _other("sibling", labels={"app": "unrelated"})
    sibling["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "j", "uid": "job-1", "controller": True}]
    lookalike = _other("lookalike", labels={"app": "trainer"})
    assert same_workload(owned, sibling)
    assert not same_workload(owned, lookalike)
    # Without an owner: every workload label must be there; controllers' bookkeeping labels do not count.
    bare = _pod()
    bare["metadata"]["labels"] = {"app": "trainer", "pod-template-hash": "abc"}
    assert same_workload(bare, lookalike)
    assert not same_workload(bare, sibling)
    unlabelled = _pod()
    unlabelled["metadata"]["labels"] = {}
    assert not same_workload(unlabelled, lookalike)


# The explanation ------------------------------------------------------------------------------------------------------
def test_the_explanation_is_bounded_and_complete_in_its_counts() -> None:
    nodes = [make_node(f"cordoned-{i:02}", unschedulable=True) for i in range(MAX_LISTED + 5)]
    nodes += [make_node(f"ok-{i}") for i in range(MAX_RUNNERS_UP + 3)]
    nodes.append(make_node(SOURCE_NODE))
    explained = _choose(_pod(), nodes).to_json()
    assert explained["considered"] == len(nodes)
    assert explained["eligible"] == MAX_RUNNERS_UP + 3
    assert explained["chosen"]["node"] == "ok-0"
    assert set(explained["chosen"]["score"]) == {
        "images_present",
        "images_missing",
        "cpu_after",
        "memory_after",
        "allocated_after",
        "same_workload_pods",
    }
    assert [s["node"] for s in explained["runners_up"]] == [f"ok-{i}" for i in range(1, MAX_RUNNERS_UP + 1)]
    assert len(explained["refused"]) == MAX_LISTED
    assert explained["refused_total"] == MAX_LISTED + 5 + 1
    assert explained["refused"][0] == {
        "node": "cordoned-00",
        "reason": "target_node_cordoned",
        "check": "target_node_schedulable",
        "message": "node cordoned-00 is cordoned (spec.unschedulable)",
    }
    assert "least allocated" in explained["ranking"]


def test_the_choice_as_a_check() -> None:
    chosen = _choose(_pod(), [make_node(SOURCE_NODE), make_node("b")]).as_check("ml/trainer")
    assert (chosen.name, chosen.passed, chosen.reason) == ("target_node_chosen", True, "no_target_node")
    assert chosen.message.startswith("chose node b among 1 eligible of 2 node(s): 1 image(s) to pull, ")
    none = _choose(_pod(), [make_node(SOURCE_NODE), make_node("b", ready=False)]).as_check("ml/trainer")
    assert (none.passed, none.reason) == (False, "no_target_node")
    assert none.message == (
        "no node can take pod ml/trainer: none of the 2 node(s) passes every fit check"
        " (b: target_node_not_ready; node-a: source_equals_target)"
    )
    assert [r["node"] for r in none.details["refused"]] == ["b", "node-a"]


# Plans for a request without a target ---------------------------------------------------------------------------------
def _auto_plan(pod: JSON, nodes: Sequence[JSON], pods_by_node: Mapping[str, Sequence[JSON]] | None = None) -> Any:
    """What controller/planner.py does: a sketch for the target pod, the choice, then the plan for the chosen node."""
    request = make_request(pod_name=pod["metadata"]["name"], target_node=AUTO_TARGET)
    catalog = StaticVolumeCatalog({})
    common: JSON = {"pod": pod, "catalog": catalog, "migration_id": MIGRATION_ID}
    sketch = plan_migration(request=request, target_node=None, pods_on_target=[], **common)
    choice = choose_target(
        pod=pod,
        target_pod=sketch.target_pod,
        nodes=nodes,
        pods_by_node=pods_by_node or {},
        source_node=request.source_node,
        volumes=sketch.target_volumes.values(),
    )
    chosen = choice.chosen
    final = request if chosen is None else replace(request, target_node=chosen.node)
    by_name = {n["metadata"]["name"]: n for n in nodes}
    return plan_migration(
        request=final,
        target_node=by_name.get(final.target_node),
        pods_on_target=(pods_by_node or {}).get(final.target_node, []),
        target_choice=choice,
        **common,
    )


def test_a_plan_for_the_chosen_node_is_the_plan_for_that_node_named() -> None:
    pod = _pod()
    plan = _auto_plan(pod, [make_node(SOURCE_NODE), make_node("b"), make_node("c")], {"b": [_other("x", cpu="4")]})
    assert plan.ok
    assert plan.target_pod["spec"]["nodeName"] == "c"
    assert plan.checks[5].name == "target_node_chosen"  # after the pod's checks, before the node's
    named = plan_migration(
        request=make_request(pod_name="trainer", target_node="c"),
        pod=pod,
        target_node=make_node("c"),
        pods_on_target=[],
        catalog=StaticVolumeCatalog({}),
        migration_id=MIGRATION_ID,
    )
    assert plan.target_pod == named.target_pod
    assert [c.to_json() for c in plan.checks if c.name != "target_node_chosen"] == [c.to_json() for c in named.checks]
    assert plan.to_json()["target_choice"]["chosen"]["node"] == "c"
    assert "target_choice" not in named.to_json()  # a named target's plan is as it always was


def test_no_node_fits_is_422_no_target_node_with_every_nodes_reason() -> None:
    pod = _pod()
    pod["spec"]["containers"][0]["resources"]["limits"] = {GPU: "1"}
    plan = _auto_plan(pod, [make_node(SOURCE_NODE), make_node("b"), make_node("c", unschedulable=True)])
    assert not plan.ok
    assert [c.name for c in plan.failures] == ["target_node_chosen"]
    with pytest.raises(Unprocessable) as caught:
        plan.raise_for_failures()
    error = caught.value
    assert error.reason == "no_target_node"
    assert error.message.startswith("no node can take pod ml/trainer: none of the 3 node(s) passes every fit check")
    assert {r["node"]: r["reason"] for r in error.details["refused"]} == {
        "b": "insufficient_resources",
        "c": "target_node_cordoned",
        SOURCE_NODE: "source_equals_target",
    }
    assert (error.details["considered"], error.details["eligible"], error.details["chosen"]) == (3, 0, None)
    source_check = next(c for c in plan.checks if c.name == "source_differs_from_target")
    assert source_check.message == f"moving from {SOURCE_NODE} to a node the orchestrator chooses"


def test_a_pod_problem_comes_before_the_choice() -> None:
    pod = _pod()
    pod["spec"]["nodeName"] = "elsewhere"
    plan = _auto_plan(pod, [make_node(SOURCE_NODE), make_node("b", ready=False)])
    with pytest.raises(Conflict) as caught:
        plan.raise_for_failures()
    assert caught.value.reason == "pod_not_on_source_node"
