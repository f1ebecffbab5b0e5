"""Every node check as a dry run shows it (name, reason, message, details), and the rules behind them at their edges:
node selector requirements, taint values, allocatable defaults, the per-version requests cache."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import fit
from ai_storage_orchestrator.controller.planning.fit import (
    node_affinity_matches,
    node_fit_checks,
    placed_requests,
    requirement_matches,
    resources_fit,
    tolerates,
)
from ai_storage_orchestrator.controller.planning.quantities import pod_requests
from tests.unit.planning.fixtures import container, make_node, make_pod, running

pytestmark = pytest.mark.unit

GIB = 1 << 30


def _pod(name: str = "trainer", *, cpu: str = "1", memory: str = "1Gi", **kwargs: Any) -> dict[str, Any]:
    return make_pod(name=name, containers=[container("c", cpu=cpu, memory=memory)], statuses=[running("c")], **kwargs)


def _checks(node: dict[str, Any], pod: dict[str, Any], others: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {c.name: c.to_json() for c in node_fit_checks(node, pod, others or [])}


def test_a_node_that_fits_passes_every_check_and_says_so() -> None:
    checks = _checks(make_node(), _pod(), [_pod("other", cpu="500m", memory="512Mi")])
    assert list(checks) == [
        "target_node_ready",
        "target_node_schedulable",
        "taints_tolerated",
        "node_selector_matches",
        "node_affinity_matches",
        "resources_fit",
        "extended_resources_fit",
        "ephemeral_storage_fit",
        "host_ports_free",
        "volume_node_affinity",
    ]
    assert checks["target_node_ready"] == {
        "name": "target_node_ready",
        "passed": True,
        "reason": "target_node_not_ready",
        "message": "node node-b is Ready",
        "details": {"ready": "True"},
    }
    assert checks["target_node_schedulable"] == {
        "name": "target_node_schedulable",
        "passed": True,
        "reason": "target_node_cordoned",
        "message": "node node-b is schedulable",
        "details": {},
    }
    assert checks["taints_tolerated"] == {
        "name": "taints_tolerated",
        "passed": True,
        "reason": "taints_not_tolerated",
        "message": "every NoSchedule/NoExecute taint is tolerated",
        "details": {"taints": []},
    }
    assert checks["node_selector_matches"] == {
        "name": "node_selector_matches",
        "passed": True,
        "reason": "node_selector_mismatch",
        "message": "nodeSelector matches",
        "details": {"missing": {}},
    }
    assert checks["node_affinity_matches"] == {
        "name": "node_affinity_matches",
        "passed": True,
        "reason": "node_affinity_mismatch",
        "message": "required node affinity matches",
        "details": {"terms": []},
    }
    assert checks["resources_fit"] == {
        "name": "resources_fit",
        "passed": True,
        "reason": "insufficient_resources",
        "message": "target pod needs cpu 1, memory 1Gi and 1 pod slot; node node-b has cpu 7500m, memory 31.5Gi and"
        " 109 pod slots free (allocatable cpu 8, memory 32Gi, 110 pods; 1 pods already request cpu 500m, memory"
        " 512Mi)",
        "details": {
            "insufficient": [],
            "needed": {"cpu_millicores": 1000, "memory_bytes": GIB},
            "free": {"cpu_millicores": 7500, "memory_bytes": 31 * GIB + GIB // 2, "pods": 109},
            "allocatable": {"cpu_millicores": 8000, "memory_bytes": 32 * GIB, "pods": 110},
        },
    }


def test_a_node_that_does_not_fit_says_why_in_every_check() -> None:
    node = make_node(
        ready=False,
        unschedulable=True,
        taints=[
            {"key": "gpu", "value": "h100", "effect": "NoSchedule"},
            {"key": "maint", "effect": "NoExecute"},
            {"key": "soft", "effect": "PreferNoSchedule"},
        ],
        labels={"zone": "a"},
        cpu="2",
        memory="2Gi",
        pods="2",
    )
    pod = _pod(cpu="1500m", memory="1Gi")
    pod["spec"]["nodeSelector"] = {"zone": "b", "disk": "ssd"}
    terms = [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]
    pod["spec"]["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
    }
    checks = _checks(node, pod, [_pod("a", cpu="1", memory="1536Mi"), _pod("b", cpu="0", memory="0")])
    node_rules = ("target_node_ready", "target_node_schedulable", "taints_tolerated", "node_selector_matches")
    assert not any(checks[name]["passed"] for name in (*node_rules, "node_affinity_matches", "resources_fit"))
    assert checks["target_node_ready"]["message"] == "node node-b is not Ready (Ready=False)"
    assert checks["target_node_ready"]["details"] == {"ready": "False"}
    assert checks["target_node_schedulable"]["message"] == "node node-b is cordoned (spec.unschedulable)"
    assert checks["taints_tolerated"]["message"] == (
        "node node-b has taints the pod does not tolerate: gpu=h100:NoSchedule, maint:NoExecute"
    )
    assert checks["taints_tolerated"]["details"] == {
        "taints": [{"key": "gpu", "value": "h100", "effect": "NoSchedule"}, {"key": "maint", "effect": "NoExecute"}]
    }
    assert checks["node_selector_matches"]["message"] == "node node-b lacks nodeSelector labels: zone=b, disk=ssd"
    assert checks["node_selector_matches"]["details"] == {"missing": {"zone": "b", "disk": "ssd"}}
    assert checks["node_affinity_matches"]["message"] == (
        "node node-b matches none of the pod's required node affinity terms"
    )
    assert checks["node_affinity_matches"]["details"] == {"terms": terms}
    assert checks["resources_fit"]["message"] == (
        "not enough cpu, memory, pods: target pod needs cpu 1500m, memory 1Gi and 1 pod slot; node node-b has"
        " cpu 1, memory 512Mi and 0 pod slots free (allocatable cpu 2, memory 2Gi, 2 pods; 2 pods already request"
        " cpu 1, memory 1.5Gi)"
    )
    assert checks["resources_fit"]["details"] == {
        "insufficient": ["cpu", "memory", "pods"],
        "needed": {"cpu_millicores": 1500, "memory_bytes": GIB},
        "free": {"cpu_millicores": 1000, "memory_bytes": GIB // 2, "pods": 0},
        "allocatable": {"cpu_millicores": 2000, "memory_bytes": 2 * GIB, "pods": 2},
    }


@pytest.mark.parametrize(
    ("conditions", "ready"),
    [
        pytest.param([], "missing", id="no-conditions"),
        pytest.param([{"type": "MemoryPressure", "status": "False"}], "missing", id="no-ready-condition"),
        pytest.param([{"type": "Ready", "status": "Unknown"}], "Unknown", id="unknown"),
    ],
)
def test_a_node_without_a_true_ready_condition_is_not_ready(conditions: list[dict[str, str]], ready: str) -> None:
    node = make_node()
    node["status"]["conditions"] = conditions
    check = node_fit_checks(node, _pod(), [])[0]
    assert not check.passed
    assert check.message == f"node node-b is not Ready (Ready={ready})"
    assert check.details == {"ready": None if ready == "missing" else ready}


def test_a_node_without_a_name_or_spec() -> None:
    node = make_node()
    del node["metadata"]["name"]
    del node["spec"]
    ready, schedulable = node_fit_checks(node, _pod(), [])[:2]
    assert ready.message == "node  is Ready"
    assert schedulable.passed


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        pytest.param({"key": "gpu", "operator": "Equal"}, {"key": "gpu", "effect": "NoSchedule"}, True, id="no-values"),
        pytest.param({"key": "gpu"}, {"key": "gpu", "value": "", "effect": "NoSchedule"}, True, id="empty-value"),
        pytest.param({"key": "gpu", "value": "x"}, {"key": "gpu", "effect": "NoSchedule"}, False, id="taint-no-value"),
        pytest.param({"key": "gpu"}, {"key": "gpu", "value": "x", "effect": "NoSchedule"}, False, id="tol-no-value"),
        pytest.param({"key": "gpu", "operator": "Gt", "value": "1"}, {"key": "gpu", "value": "1"}, False, id="bad-op"),
    ],
)
def test_toleration_values(toleration: dict[str, str], taint: dict[str, str], expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


def test_each_taint_needs_a_toleration_of_its_own() -> None:
    node = make_node(taints=[{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}])
    pod = _pod()
    pod["spec"]["tolerations"] = [{"key": "a", "operator": "Exists"}]
    taints = node_fit_checks(node, pod, [])[2]
    assert taints.details == {"taints": [{"key": "b", "effect": "NoSchedule"}]}
    pod["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    assert node_fit_checks(node, pod, [])[2].passed


def test_a_soft_taint_is_never_in_the_way() -> None:
    node = make_node(taints=[{"key": "soft", "effect": "PreferNoSchedule"}])
    assert node_fit_checks(node, _pod(), [])[2].passed


def _req(operator: str, *values: str, key: str = "gen") -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)}


@pytest.mark.parametrize(
    ("labels", "requirement", "expected"),
    [
        pytest.param({"gen": "5"}, _req("In", "4", "5"), True, id="in"),
        pytest.param({}, _req("In", "5"), False, id="in-absent"),
        pytest.param({"gen": "5"}, _req("NotIn", "5"), False, id="not-in-listed"),
        pytest.param({"gen": "4"}, _req("NotIn", "5"), True, id="not-in-other"),
        pytest.param({}, _req("NotIn", "5"), True, id="not-in-absent"),
        pytest.param({"gen": "5"}, _req("Exists"), True, id="exists"),
        pytest.param({}, _req("Exists"), False, id="exists-absent"),
        pytest.param({"gen": "5"}, _req("DoesNotExist"), False, id="does-not-exist-present"),
        pytest.param({}, _req("DoesNotExist"), True, id="does-not-exist"),
        pytest.param({"gen": "5"}, _req("Gt", "4"), True, id="gt"),
        pytest.param({"gen": "5"}, _req("Gt", "5"), False, id="gt-equal"),
        pytest.param({"gen": "5"}, _req("Lt", "6"), True, id="lt"),
        pytest.param({"gen": "5"}, _req("Lt", "5"), False, id="lt-equal"),
        pytest.param({"gen": "5"}, _req("Lt", "4"), False, id="lt-more"),
        pytest.param({}, _req("Gt", "4"), False, id="gt-absent"),
        pytest.param({}, _req("Lt", "4"), False, id="lt-absent"),
        pytest.param({"gen": "5"}, _req("Gt", "4", "3"), False, id="gt-two-values"),
        pytest.param({"gen": "5"}, _req("Lt", "6", "7"), False, id="lt-two-values"),
        pytest.param({"gen": "x"}, _req("Gt", "4"), False, id="gt-not-a-number"),
        pytest.param({"gen": "5"}, _req("Lt", "y"), False, id="lt-bound-not-a-number"),
        pytest.param({"gen": "5"}, _req("Near", "5"), False, id="unknown-operator"),
    ],
)
def test_requirement_operators(labels: dict[str, str], requirement: dict[str, Any], expected: bool) -> None:
    assert requirement_matches(labels, requirement) is expected


def test_match_fields_select_the_node_by_name() -> None:
    def spec(*terms: dict[str, Any]) -> dict[str, Any]:
        required = {"nodeSelectorTerms": list(terms)}
        return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}}

    by_name = {"matchFields": [_req("In", "node-b", key="metadata.name")]}
    assert node_affinity_matches(make_node(), spec(by_name)).passed
    assert not node_affinity_matches(make_node("node-c"), spec(by_name)).passed
    assert not node_affinity_matches(make_node(), spec({})).passed, "an empty term matches nothing"
    assert not node_affinity_matches(make_node(), spec()).passed, "no term at all matches nothing"


def test_a_node_without_allocatable_fits_nothing() -> None:
    node = make_node()
    del node["status"]["allocatable"]
    result = resources_fit(node, _pod(cpu="1m", memory="1"), [])
    assert result.details["insufficient"] == ["cpu", "memory", "pods"]
    assert result.details["allocatable"] == {"cpu_millicores": 0, "memory_bytes": 0, "pods": 0}


def test_every_running_pod_on_the_node_counts() -> None:
    others = [_pod(f"o{n}", cpu="1", memory="1Gi") for n in range(3)]
    others.insert(1, _pod("done", cpu="1", memory="1Gi", phase="Succeeded"))
    result = resources_fit(make_node(cpu="4", memory="4Gi", pods="5"), _pod(), others)
    assert result.passed
    assert result.details["free"] == {"cpu_millicores": 1000, "memory_bytes": GIB, "pods": 2}
    pod_without_status = _pod("new", cpu="1", memory="1Gi")
    del pod_without_status["status"]
    assert resources_fit(make_node(cpu="4", memory="4Gi", pods="5"), _pod(), [*others, pod_without_status]).details[
        "insufficient"
    ] == ["cpu", "memory"]


def test_requests_are_remembered_per_object_version() -> None:
    pod = _pod(cpu="1")
    assert placed_requests(pod).cpu_millicores == 1000
    assert list(fit._REQUESTS_BY_VERSION) == [("0d6c2d7e-0000-4000-8000-000000000001", "4242", id(pod["spec"]))]
    assert placed_requests(pod).cpu_millicores == 1000
    newer = _pod(cpu="2")
    newer["metadata"]["resourceVersion"] = "4243"
    assert placed_requests(newer).cpu_millicores == 2000, "a new version is summed again"
    assert len(fit._REQUESTS_BY_VERSION) == 2


@pytest.mark.parametrize("missing", ["uid", "resourceVersion"])
def test_objects_without_a_version_are_summed_every_time(missing: str) -> None:
    pod = _pod(cpu="1")
    del pod["metadata"][missing]
    assert placed_requests(pod).cpu_millicores == 1000
    assert not fit._REQUESTS_BY_VERSION


def test_the_requests_cache_forgets_the_oldest_beyond_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fit, "_REQUESTS_CACHE_SIZE", 2)
    pods = [_pod(f"p{n}") for n in range(3)]
    for n, pod in enumerate(pods):
        pod["metadata"]["uid"] = f"uid-{n}"
        placed_requests(pod)
    assert [key[0] for key in fit._REQUESTS_BY_VERSION] == ["uid-1", "uid-2"]
    placed_requests(pods[1])
    assert len(fit._REQUESTS_BY_VERSION) == 2


def test_a_remembered_version_is_not_summed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    summed: list[object] = []

    def counting(spec: dict[str, Any]) -> Any:
        summed.append(spec)
        return real(spec)

    real = pod_requests
    monkeypatch.setattr(fit, "pod_requests", counting)
    pod = _pod(cpu="1")
    for _ in range(3):
        assert placed_requests(pod).cpu_millicores == 1000
    assert summed == [pod["spec"]]


def test_the_target_pod_itself_is_skipped_but_the_pods_after_it_count() -> None:
    target = _pod("p-migrated-1", cpu="1")
    result = resources_fit(make_node(cpu="2"), target, [target, _pod("other", cpu="1500m")])
    assert result.details["insufficient"] == ["cpu"]
    assert result.details["free"]["pods"] == 109
