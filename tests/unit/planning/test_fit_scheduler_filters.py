"""The node checks that keep the kubelet from refusing the target pod after the source stopped: extended resources
(GPUs, huge pages, device plugins), ephemeral-storage, host ports and the node affinity of bound PersistentVolumes."""

from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import plan_migration
from ai_storage_orchestrator.controller.planning.fit import (
    ephemeral_storage_fit,
    extended_resources_fit,
    host_ports_free,
    placed_usage,
    volumes_node_affinity,
)
from ai_storage_orchestrator.controller.planning.quantities import is_extended_resource, pod_scalar_requests
from ai_storage_orchestrator.controller.planning.volumes import ClaimInfo, VolumeInfo, claim_info_from_objects
from ai_storage_orchestrator.errors import Unprocessable
from tests.unit.planning.fixtures import (
    MIGRATION_ID,
    catalog,
    container,
    make_node,
    make_pod,
    make_request,
    mount,
    pvc,
    running,
)

pytestmark = pytest.mark.unit


def _pod(name: str = "trainer", *, resources: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    main = container("c", cpu="100m", memory="128Mi")
    if resources is not None:
        main["resources"] = resources
    return make_pod(name=name, containers=[main], statuses=[running("c")], **kwargs)


def _node(allocatable: dict[str, str]) -> dict[str, Any]:
    node = make_node()
    node["status"]["allocatable"].update(allocatable)
    return node


GPU = "nvidia.com/gpu"


def test_a_gpu_request_on_a_node_without_gpus_is_refused_naming_the_resource() -> None:
    pod = _pod(resources={"limits": {GPU: "1"}})
    result = extended_resources_fit(make_node(), pod, [])
    assert not result.passed
    assert result.reason == "insufficient_resources"
    assert result.message == (
        "not enough nvidia.com/gpu on node node-b: nvidia.com/gpu: requests 1, 0 free (allocatable 0, already"
        " requested 0)"
    )
    assert result.details == {
        "node": "node-b",
        "insufficient": [GPU],
        "resources": {GPU: {"requested": 1, "allocatable": 0, "used": 0, "free": 0}},
    }


def test_a_gpu_request_that_fits_passes() -> None:
    node = _node({GPU: "2"})
    others = [_pod("other", resources={"requests": {GPU: "1"}, "limits": {GPU: "1"}})]
    result = extended_resources_fit(node, _pod(resources={"limits": {GPU: "1"}}), others)
    assert result.passed, result.message
    assert result.message == "node node-b has the extended resources the pod requests: nvidia.com/gpu 1 of 1 free"
    assert result.details["resources"][GPU] == {"requested": 1, "allocatable": 2, "used": 1, "free": 1}


def test_gpus_taken_by_the_nodes_running_pods_are_not_free() -> None:
    node = _node({GPU: "2"})
    others = [_pod(f"o{n}", resources={"limits": {GPU: "1"}}) for n in range(2)]
    others.append(_pod("done", resources={"limits": {GPU: "1"}}, phase="Succeeded"))
    result = extended_resources_fit(node, _pod(resources={"limits": {GPU: "1"}}), others)
    assert not result.passed
    assert result.details["resources"][GPU] == {"requested": 1, "allocatable": 2, "used": 2, "free": 0}


def test_huge_pages_and_device_plugin_resources_are_checked_and_shown_in_their_units() -> None:
    node = _node({"hugepages-2Mi": "64Mi", "example.com/fpga": "1"})
    pod = _pod(resources={"limits": {"hugepages-2Mi": "128Mi", "example.com/fpga": "1", "cpu": "1"}})
    result = extended_resources_fit(node, pod, [])
    assert result.details["insufficient"] == ["hugepages-2Mi"]
    assert "hugepages-2Mi: requests 128Mi, 64Mi free" in result.message


def test_a_pod_without_extended_resources_passes_on_any_node() -> None:
    result = extended_resources_fit(make_node(), _pod(), [])
    assert result.passed
    assert result.message == "the target pod requests no extended resources"


@pytest.mark.parametrize(
    ("name", "extended"),
    [
        ("nvidia.com/gpu", True),
        ("amd.com/gpu", True),
        ("hugepages-1Gi", True),
        ("kubernetes.io/batch-cpu", True),
        ("cpu", False),
        ("memory", False),
        ("ephemeral-storage", False),
        ("pods", False),
    ],
)
def test_extended_resource_names(name: str, extended: bool) -> None:
    assert is_extended_resource(name) is extended


def test_scalar_requests_follow_the_schedulers_init_container_rule() -> None:
    spec = {
        "containers": [{"name": "a", "resources": {"requests": {GPU: "1", "ephemeral-storage": "1Gi"}}}],
        "initContainers": [
            {"name": "init", "resources": {"limits": {GPU: "2"}}},
            {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"ephemeral-storage": "1Gi"}}},
        ],
        "overhead": {"ephemeral-storage": "1"},
    }
    assert pod_scalar_requests(spec) == {GPU: 2, "ephemeral-storage": (2 << 30) + 1}


@pytest.mark.parametrize(("request_", "fits"), [("10Gi", True), ("10737418241", False)])
def test_ephemeral_storage_against_what_is_free(request_: str, fits: bool) -> None:
    node = _node({"ephemeral-storage": "20Gi"})
    others = [_pod("other", resources={"requests": {"ephemeral-storage": "10Gi"}})]
    result = ephemeral_storage_fit(node, _pod(resources={"requests": {"ephemeral-storage": request_}}), others)
    assert result.passed is fits
    assert result.reason == "insufficient_resources"
    assert result.details["free"] == 10 << 30
    assert result.details["insufficient"] == ([] if fits else ["ephemeral-storage"])
    if not fits:
        assert result.message.startswith("not enough ephemeral-storage on node node-b: ephemeral-storage: requests")


def test_a_node_without_allocatable_ephemeral_storage_is_not_checked_and_says_so() -> None:
    result = ephemeral_storage_fit(make_node(), _pod(resources={"requests": {"ephemeral-storage": "1Ti"}}), [])
    assert result.passed
    assert result.details["checked"] is False
    assert "not checked" in result.message


def _ports(*ports: dict[str, Any]) -> dict[str, Any]:
    pod = _pod()
    pod["spec"]["containers"][0]["ports"] = [dict(p) for p in ports]
    return pod


def _rename(pod: dict[str, Any], name: str) -> dict[str, Any]:
    pod["metadata"]["name"] = name
    return pod


def test_a_host_port_already_bound_on_the_node_is_a_conflict() -> None:
    other = _rename(_ports({"containerPort": 80, "hostPort": 8080}), "web")
    result = host_ports_free(make_node(), _ports({"containerPort": 8080, "hostPort": 8080}), [other])
    assert not result.passed
    assert result.reason == "host_port_conflict"
    assert result.message == "host port(s) already in use on node node-b: TCP 0.0.0.0:8080 by pod ml/web"
    assert result.details["conflicts"] == [
        {
            "protocol": "TCP",
            "host_ip": "0.0.0.0",
            "port": 8080,
            "pod": "ml/web",
            "taken": {"protocol": "TCP", "host_ip": "0.0.0.0", "port": 8080},
        }
    ]


def test_a_host_port_conflict_with_a_pod_of_another_namespace_does_not_name_it() -> None:
    """The message and details reach REST 422 answers, dry runs and Events read by the migrating pod's namespace: a
    pod of another namespace is neither named nor is its namespace said. One of the pod's own namespace is named."""
    theirs = _rename(_ports({"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 8081}), "db")
    theirs["metadata"]["namespace"] = "payments"
    mine = _rename(_ports({"containerPort": 81, "hostPort": 8081}), "web")
    target = _ports({"containerPort": 8080, "hostPort": 8080}, {"containerPort": 8081, "hostPort": 8081})
    result = host_ports_free(make_node(), target, [theirs, mine])
    assert not result.passed
    assert result.message == (
        "host port(s) already in use on node node-b: TCP 0.0.0.0:8080 by a pod of another namespace,"
        " TCP 0.0.0.0:8081 by a pod of another namespace, TCP 0.0.0.0:8081 by pod ml/web"
    )
    assert [c["pod"] for c in result.details["conflicts"]] == [
        "a pod of another namespace",
        "a pod of another namespace",
        "ml/web",
    ]
    assert "payments" not in repr(result)


def test_a_host_port_conflict_through_planning_does_not_name_another_namespace_s_pod() -> None:
    """What plan_migration refuses with (the REST 422 and the dry run answer this)."""
    pod = _ports({"containerPort": 8080, "hostPort": 8080})
    other = _rename(_ports({"containerPort": 8080, "hostPort": 8080}), "secret-ingest")
    other["metadata"]["namespace"] = "payments"
    other["spec"]["nodeName"] = "node-b"
    plan = plan_migration(
        request=make_request(pod_name=pod["metadata"]["name"]),
        pod=pod,
        target_node=make_node(),
        pods_on_target=[other],
        catalog=catalog(),
        migration_id=MIGRATION_ID,
    )
    with pytest.raises(Unprocessable) as refused:
        plan.raise_for_failures()
    assert refused.value.reason == "host_port_conflict"
    for said in (repr(refused.value.to_json()), repr(plan.to_json())):
        assert "by a pod of another namespace" in said
        assert "secret-ingest" not in said
        assert "payments" not in said


@pytest.mark.parametrize(
    ("mine", "theirs", "conflict"),
    [
        pytest.param({"hostPort": 80}, {"hostPort": 81}, False, id="other-port"),
        pytest.param({"hostPort": 80}, {"hostPort": 80, "protocol": "UDP"}, False, id="other-protocol"),
        pytest.param({"hostPort": 80, "hostIP": "10.0.0.1"}, {"hostPort": 80, "hostIP": "10.0.0.2"}, False, id="ips"),
        pytest.param({"hostPort": 80, "hostIP": "10.0.0.1"}, {"hostPort": 80}, True, id="wildcard-theirs"),
        pytest.param({"hostPort": 80}, {"hostPort": 80, "hostIP": "10.0.0.1"}, True, id="wildcard-mine"),
        pytest.param({"containerPort": 80}, {"containerPort": 80}, False, id="no-host-port"),
    ],
)
def test_host_port_conflict_rules(mine: dict[str, Any], theirs: dict[str, Any], conflict: bool) -> None:
    other = _rename(_ports({"containerPort": 1, **theirs}), "other")
    assert host_ports_free(make_node(), _ports({"containerPort": 1, **mine}), [other]).passed is not conflict


def test_finished_pods_and_the_target_itself_hold_no_host_port() -> None:
    target = _ports({"containerPort": 80, "hostPort": 80})
    finished = _rename(_ports({"containerPort": 80, "hostPort": 80}), "done")
    finished["status"]["phase"] = "Failed"
    result = host_ports_free(make_node(), target, [target, finished])
    assert result.passed
    assert result.message == "host port(s) TCP 0.0.0.0:80 are free on node node-b"


def test_host_ports_are_remembered_with_the_requests_per_version() -> None:
    pod = _ports({"containerPort": 80, "hostPort": 80})
    assert placed_usage(pod) is placed_usage(pod)
    assert [p.port for p in placed_usage(pod).host_ports] == [80]


def _zone_terms(zone: str) -> tuple[dict[str, Any], ...]:
    return ({"matchExpressions": [{"key": "zone", "operator": "In", "values": [zone]}]},)


def _pv_volume(terms: tuple[dict[str, Any], ...] | None) -> VolumeInfo:
    return VolumeInfo(
        "data", "csi", ("ReadWriteOnce",), "zonal", claim_name="data", node_affinity=terms, pv_name="pv-1"
    )


def test_a_pv_whose_node_affinity_excludes_the_target_is_refused() -> None:
    node = make_node(labels={"zone": "a"})
    result = volumes_node_affinity(node, [_pv_volume(_zone_terms("b"))])
    assert not result.passed
    assert result.reason == "volume_node_affinity"
    assert result.message == (
        "node node-b does not match the required node affinity of PV pv-1 of csi 'data' (PVC data): the volume cannot"
        " be reached from there"
    )
    assert result.details["volumes"] == [
        {"name": "data", "claim": "data", "pv": "pv-1", "terms": list(_zone_terms("b"))}
    ]


def test_a_pv_whose_node_affinity_matches_passes() -> None:
    node = make_node(labels={"zone": "a"})
    assert volumes_node_affinity(node, [_pv_volume(_zone_terms("a")), _pv_volume(None)]).passed
    assert volumes_node_affinity(node, []).message == "no bound PersistentVolume restricts its nodes"


def test_the_pv_node_affinity_is_read_from_the_bound_pv() -> None:
    claim = {"spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv-1"}, "status": {"phase": "Bound"}}
    pv = {
        "metadata": {"name": "pv-1"},
        "spec": {"csi": {"driver": "x"}, "nodeAffinity": {"required": {"nodeSelectorTerms": list(_zone_terms("b"))}}},
    }
    info = claim_info_from_objects(claim, pv)
    assert (info.pv_name, info.node_affinity) == ("pv-1", _zone_terms("b"))
    assert claim_info_from_objects(claim, {"metadata": {"name": "pv-2"}, "spec": {"nfs": {}}}).node_affinity is None
    assert claim_info_from_objects({**claim, "status": {"phase": "Pending"}}, pv).node_affinity is None


def _plan(pod: dict[str, Any], node: dict[str, Any], **claims: ClaimInfo) -> Any:
    return plan_migration(
        request=make_request(pod_name=pod["metadata"]["name"]),
        pod=pod,
        target_node=node,
        pods_on_target=[],
        catalog=catalog(**claims),
        migration_id=MIGRATION_ID,
    )


def test_a_plan_onto_a_node_without_gpus_fails_with_insufficient_resources() -> None:
    plan = _plan(_pod(resources={"limits": {GPU: "1"}}), make_node())
    with pytest.raises(Unprocessable) as caught:
        plan.raise_for_failures()
    assert caught.value.reason == "insufficient_resources"
    assert "nvidia.com/gpu" in str(caught.value)
    assert caught.value.details["check"] == "extended_resources_fit"
    assert caught.value.details["insufficient"] == [GPU]
    assert _plan(_pod(resources={"limits": {GPU: "1"}}), _node({GPU: "1"})).ok


def test_a_plan_whose_claim_is_bound_to_a_pv_of_another_zone_fails() -> None:
    pod = _pod(volumes=[pvc("data", "data")])
    pod["spec"]["containers"][0]["volumeMounts"] = [mount("data", "/data")]
    zonal = ClaimInfo(("ReadWriteMany",), "zonal", "csi", node_affinity=_zone_terms("b"), pv_name="pv-1")
    plan = _plan(pod, make_node(labels={"zone": "a"}), data=zonal)
    assert [c.reason for c in plan.failures] == ["volume_node_affinity"]
    with pytest.raises(Unprocessable) as caught:
        plan.raise_for_failures()
    assert caught.value.reason == "volume_node_affinity"
    assert _plan(pod, make_node(labels={"zone": "b"}), data=zonal).ok
