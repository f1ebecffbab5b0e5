"""`compare` without flags: what it finds in the cluster, the lines it prints, and one sentence per missing piece."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from ai_storage_orchestrator.cli import compare as compare_command
from ai_storage_orchestrator.compare import discovery as d
from ai_storage_orchestrator.compare.cluster import CompareError
from ai_storage_orchestrator.compare.options import Options
from ai_storage_orchestrator.compare.orchestrating import OrchestratorClient
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import CONFIG_MAPS, NODES, PODS, PVCS, PVS, Resource

pytestmark = pytest.mark.unit

JSON = dict[str, Any]
NS = "ai-migration-compare"
SERVER = "https://10.0.0.1:6443"
CA = "-----BEGIN CERTIFICATE-----\nnot parsed by these tests\n-----END CERTIFICATE-----\n"


def _error(status: int, reason: str = "NotFound") -> KubeApiError:
    return KubeApiError(status, reason, "from the fake")


class FakeKube:
    """``DiscoveryKube`` and ``AccessKube`` over a dict of objects keyed by (plural, namespace, name)."""

    def __init__(
        self, objects: Sequence[tuple[Resource, JSON]] = (), *, version: JSON | KubeApiError | None = None
    ) -> None:
        self.objects: dict[tuple[str, str | None, str], JSON] = {}
        for resource, obj in objects:
            self.put(resource, obj)
        self.version: JSON | KubeApiError = version if version is not None else {"gitVersion": "v1.30.2"}
        self.token_answer: JSON | KubeApiError | None = None  # None: 404 unless the ServiceAccount exists
        self.token_requests: list[tuple[str, Mapping[str, Any]]] = []
        self.failing: dict[str, KubeApiError] = {}  # plural -> error of every call on it
        self.applied: list[tuple[Resource, JSON, str]] = []
        self.deleted: list[tuple[str, str, str | None]] = []

    def put(self, resource: Resource, obj: JSON) -> None:
        metadata = obj["metadata"]
        self.objects[(resource.plural, metadata.get("namespace"), metadata["name"])] = obj

    def _fail(self, resource: Resource) -> None:
        if resource.plural in self.failing:
            raise self.failing[resource.plural]

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON:
        self._fail(resource)
        try:
            return self.objects[(resource.plural, namespace if resource.namespaced else None, name)]
        except KeyError:
            raise _error(404) from None

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> tuple[list[JSON], str]:
        self._fail(resource)
        items = [
            obj
            for (plural, ns, _), obj in self.objects.items()
            if plural == resource.plural and (namespace is None or ns == namespace)
        ]
        if label_selector:
            key, _, value = label_selector.partition("=")
            items = [o for o in items if (o["metadata"].get("labels") or {}).get(key) == value]
        return items, "1"

    async def get_path(self, path: str) -> JSON:
        if isinstance(self.version, KubeApiError):
            raise self.version
        return self.version

    async def post_path(self, path: str, body: Mapping[str, Any]) -> JSON:
        self.token_requests.append((path, body))
        if isinstance(self.token_answer, KubeApiError):
            raise self.token_answer
        if self.token_answer is not None:
            return self.token_answer
        if ("serviceaccounts", "kube-system", "ai-migration-compare") not in self.objects:
            raise _error(404)
        return {"status": {"token": "minted-token", "expirationTimestamp": "2030-01-01T01:00:00Z"}}

    async def apply(
        self, resource: Resource, obj: Mapping[str, Any], *, field_manager: str, dry_run: bool = False
    ) -> JSON:
        self._fail(resource)
        self.applied.append((resource, dict(obj), field_manager))
        return dict(obj)

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        uid: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> JSON:
        self._fail(resource)
        self.deleted.append((resource.plural, name, namespace))
        return {}


def node(
    name: str,
    *,
    cpu: str = "4",
    ready: bool = True,
    cordoned: bool = False,
    taints: list[JSON] | None = None,
    simulated: bool = False,
) -> tuple[Resource, JSON]:
    return NODES, {
        "metadata": {"name": name, "labels": {"type": "kwok"} if simulated else {}},
        "spec": {"unschedulable": cordoned, "taints": taints or []},
        "status": {
            "allocatable": {"cpu": cpu},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {"kubeletVersion": "v1.30.2"},
        },
    }


def service(cluster_ip: str = "10.96.12.4") -> tuple[Resource, JSON]:
    return d.SERVICES, {
        "metadata": {"name": "ai-storage-orchestrator", "namespace": "kube-system"},
        "spec": {"clusterIP": cluster_ip, "ports": [{"name": "https", "port": 8080, "targetPort": "https"}]},
    }


def endpoint_slice(*addresses: tuple[str, bool | None], port: int = 8443) -> tuple[Resource, JSON]:
    endpoints = []
    for index, (address, ready) in enumerate(addresses):
        conditions = {} if ready is None else {"ready": ready}
        endpoints.append(
            {"addresses": [address], "conditions": conditions, "targetRef": {"kind": "Pod", "name": f"orch-{index}"}}
        )
    return d.ENDPOINT_SLICES, {
        "metadata": {
            "name": "ai-storage-orchestrator-x1",
            "namespace": "kube-system",
            "labels": {"kubernetes.io/service-name": "ai-storage-orchestrator"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def ca_map(data: JSON | None = None) -> tuple[Resource, JSON]:
    return CONFIG_MAPS, {
        "metadata": {"name": "ai-storage-orchestrator-ca", "namespace": "kube-system"},
        "data": {"ca.crt": CA} if data is None else data,
    }


def service_account() -> tuple[Resource, JSON]:
    return d.SERVICE_ACCOUNTS, {"metadata": {"name": "ai-migration-compare", "namespace": "kube-system"}}


def claim(namespace: str = NS) -> tuple[Resource, JSON]:
    return PVCS, {
        "metadata": {"name": "training-data", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteMany"], "volumeName": "training-data-nfs"},
    }


def pv(
    name: str,
    *,
    phase: str = "Available",
    storage_class: str = "nfs",
    modes: tuple[str, ...] = ("ReadWriteMany",),
    nfs: JSON | None = None,
    claim_ref: JSON | None = None,
) -> tuple[Resource, JSON]:
    spec: JSON = {"storageClassName": storage_class, "accessModes": list(modes)}
    spec["nfs"] = nfs if nfs is not None else {"server": "nfs.example", "path": f"/exports/{name}"}
    if claim_ref:
        spec["claimRef"] = claim_ref
    return PVS, {"metadata": {"name": name}, "spec": spec, "status": {"phase": phase}}


def deployed() -> list[tuple[Resource, JSON]]:
    return [
        service(),
        endpoint_slice(("10.244.1.7", True), ("10.244.2.9", False)),
        ca_map(),
        service_account(),
        node("cp", cpu="8", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
        node("worker-1", cpu="4"),
        node("worker-2", cpu="16"),
        node("worker-3", cpu="32", cordoned=True),
        claim(),
    ]


class FakeProber:
    def __init__(self, answering: set[str]) -> None:
        self.answering = answering
        self.asked: list[str] = []

    async def __call__(self, url: str) -> d.ProbeAnswer:
        self.asked.append(url)
        if url in self.answering:
            return d.ProbeAnswer(True, "GET /readyz: 200")
        return d.ProbeAnswer(False, "no connection within 2s")


@pytest.fixture(autouse=True)
def _no_kubeconfig_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("KUBECONFIG", "/home/auditor/.kube/config")


async def test_the_bare_command_finds_every_piece_and_says_which_flag_overrides_it() -> None:
    kube = FakeKube(deployed())
    prober = FakeProber({"https://10.244.1.7:8443"})
    options, lines = await d.discover(Options(), kube, server=SERVER, prober=prober)

    assert options.orchestrator_url == "https://10.244.1.7:8443"
    assert (options.server_name, options.ca_data, options.ca_file) == (
        "ai-storage-orchestrator.kube-system.svc",
        CA,
        None,
    )
    assert (options.token, options.minted_for) == ("minted-token", "kube-system/ai-migration-compare")
    assert (options.source_node, options.target_node) == ("worker-2", "worker-1")
    assert (options.pvc, options.nfs_server) == ("training-data", None)
    # the cluster IP first, then the ready endpoint only
    assert prober.asked == ["https://10.96.12.4:8080", "https://10.244.1.7:8443"]
    path, body = kube.token_requests[0]
    assert path == "/api/v1/namespaces/kube-system/serviceaccounts/ai-migration-compare/token"
    assert body["spec"] == {"audiences": ["ai-storage-orchestrator"], "expirationSeconds": 3600}
    assert lines == [
        "• Cluster: https://10.0.0.1:6443, Kubernetes v1.30.2 (credentials of $KUBECONFIG /home/auditor/.kube/config);"
        " override: --kubeconfig",
        "• Namespace: ai-migration-compare (created unless it exists); override: --namespace",
        "• Orchestrator: https://10.244.1.7:8443 (Service kube-system/ai-storage-orchestrator, ready endpoint of pod"
        " orch-0; GET /readyz: 200; TLS verified as ai-storage-orchestrator.kube-system.svc with the CA from ConfigMap"
        " kube-system/ai-storage-orchestrator-ca); override: --orchestrator-url, --ca-file",
        "• Token: minted for ServiceAccount kube-system/ai-migration-compare (audience ai-storage-orchestrator,"
        " expires 2030-01-01T01:00:00Z; rights granted at set-up: get, create, delete pods in namespace"
        " ai-migration-compare only); override: --token",
        "• Source node: worker-2 (Ready, 16 allocatable CPU), the usable node with the most allocatable CPU;"
        " override: --source-node",
        "• Target node: worker-1 (Ready, 4 allocatable CPU), the next usable node; override: --target-node",
        "• Shared volume: claim training-data in namespace ai-migration-compare (ReadWriteMany, bound to PV"
        " training-data-nfs); override: --pvc, --nfs-server/--nfs-path",
    ]


async def test_the_cluster_ip_is_preferred_when_it_answers() -> None:
    prober = FakeProber({"https://10.96.12.4:8080", "https://10.244.1.7:8443"})
    options, lines = await d.discover(Options(), FakeKube(deployed()), prober=prober)
    assert options.orchestrator_url == "https://10.96.12.4:8080"
    assert any("Service kube-system/ai-storage-orchestrator, cluster IP;" in line for line in lines)


async def test_nothing_deployed_names_every_missing_piece_in_one_sentence_each() -> None:
    kube = FakeKube([node("only", cpu="4"), node("down", ready=False)])
    with pytest.raises(d.DiscoveryError) as raised:
        await d.discover(Options(), kube, prober=FakeProber(set()))
    assert raised.value.problems == [
        "No orchestrator Service kube-system/ai-storage-orchestrator: deploy the orchestrator (./scripts/deploy.sh),"
        " or pass --orchestrator-url URL.",
        "No CA for the orchestrator's certificate: ConfigMap kube-system/ai-storage-orchestrator-ca does not exist"
        " (./scripts/deploy.sh creates it); pass --ca-file FILE.",
        "No ServiceAccount kube-system/ai-migration-compare to mint the orchestrator's token for: apply k8s/"
        " (./scripts/deploy.sh), or pass --token TOKEN.",
        "Fewer than two usable nodes for the source and the target (seen: down (not Ready), only (usable)): make two"
        " nodes Ready and schedulable, or name them with --source-node and --target-node.",
        "no shared volume: pass --pvc NAME (a ReadWriteMany claim in namespace ai-migration-compare) or"
        " --nfs-server HOST [--nfs-path PATH], or apply k8s/nfs",
    ]
    assert raised.value.found[0].startswith("• Cluster: ")
    assert isinstance(raised.value, CompareError)


async def test_an_unreachable_cluster_is_one_sentence() -> None:
    kube = FakeKube(version=KubeApiError(0, "ConnectionError", "GET /version: connection refused", sent=False))
    with pytest.raises(d.DiscoveryError) as raised:
        await d.discover(Options(), kube, server=SERVER)
    assert raised.value.problems == [
        "The Kubernetes API server at https://10.0.0.1:6443 cannot be reached (0 ConnectionError: GET /version:"
        " connection refused): check the kubeconfig or pass --kubeconfig; nothing else was checked."
    ]


async def test_refused_credentials_are_said_so() -> None:
    kube = FakeKube(version=_error(401, "Unauthorized"))
    with pytest.raises(d.DiscoveryError, match="refused the credentials of \\$KUBECONFIG"):
        await d.discover(Options(), kube)


async def test_a_user_who_may_not_create_tokens_is_told_in_one_sentence() -> None:
    kube = FakeKube(deployed())
    kube.token_answer = _error(403, "Forbidden")
    with pytest.raises(d.DiscoveryError) as raised:
        await d.discover(Options(), kube, prober=FakeProber({"https://10.244.1.7:8443"}))
    assert raised.value.problems == [
        "Your kubeconfig's user may not create tokens for ServiceAccount kube-system/ai-migration-compare (create"
        " serviceaccounts/token in kube-system is forbidden): pass --token TOKEN, e.g. from `kubectl create token"
        " ai-migration-compare -n kube-system --audience ai-storage-orchestrator` run by someone who may."
    ]


async def test_a_service_that_answers_nowhere_lists_what_was_tried() -> None:
    kube = FakeKube(deployed())
    with pytest.raises(d.DiscoveryError) as raised:
        await d.discover(Options(), kube, prober=FakeProber(set()))
    assert raised.value.problems == [
        "The orchestrator Service kube-system/ai-storage-orchestrator answers at none of its addresses"
        " (https://10.96.12.4:8080 (cluster IP): no connection within 2s; https://10.244.1.7:8443 (ready endpoint"
        " of pod orch-0): no connection within 2s): check its pods (kubectl -n kube-system get pods -l"
        " app.kubernetes.io/name=ai-storage-orchestrator), or pass --orchestrator-url URL."
    ]


async def test_a_service_without_endpoints_says_so() -> None:
    objects = [o for o in deployed() if o[0] is not d.ENDPOINT_SLICES]
    with pytest.raises(d.DiscoveryError, match=r"no connection within 2s; no ready endpoints\)"):
        await d.discover(Options(), FakeKube(objects), prober=FakeProber(set()))


async def test_a_ca_map_without_the_key_is_a_missing_ca_but_ca_file_replaces_it() -> None:
    objects = [o for o in deployed() if o[0] is not CONFIG_MAPS] + [ca_map({"other": "x"})]
    with pytest.raises(d.DiscoveryError, match=r"ConfigMap kube-system/ai-storage-orchestrator-ca has no key ca\.crt"):
        await d.discover(Options(), FakeKube(objects), prober=FakeProber({"https://10.244.1.7:8443"}))
    options, lines = await d.discover(
        Options(ca_file="/etc/ca.pem"), FakeKube(objects), prober=FakeProber({"https://10.244.1.7:8443"})
    )
    assert (options.ca_file, options.ca_data, options.server_name) == (
        "/etc/ca.pem",
        None,
        "ai-storage-orchestrator.kube-system.svc",
    )
    assert any("with --ca-file /etc/ca.pem)" in line for line in lines)


async def test_flags_override_and_nothing_is_looked_up_for_them() -> None:
    kube = FakeKube(deployed())
    given = Options(
        namespace="ml",
        orchestrator_url="https://orchestrator.example:8080",
        token="given",
        source_node="a",
        target_node="b",
        pvc="data",
    )
    prober = FakeProber(set())
    options, lines = await d.discover(replace(given, ca_file="/etc/ca.pem"), kube, url_given=True, prober=prober)
    assert options == replace(given, ca_file="/etc/ca.pem")
    assert prober.asked == []
    assert kube.token_requests == []
    assert [line.split(":")[0] for line in lines] == ["• Cluster"]
    # Without --ca-file, an https URL also trusts the deploy's CA: a value no flag gave.
    options, lines = await d.discover(given, kube, url_given=True, prober=prober)
    assert options == replace(given, ca_data=CA)
    assert lines[-1] == (
        "• CA: ConfigMap kube-system/ai-storage-orchestrator-ca (besides the system trust store), for"
        " https://orchestrator.example:8080; override: --ca-file"
    )


async def test_a_given_url_gets_a_token_only_when_the_service_account_exists() -> None:
    url = "https://127.0.0.1:8080"
    options, lines = await d.discover(Options(orchestrator_url=url, pvc="data"), FakeKube(deployed()), url_given=True)
    assert (options.orchestrator_url, options.token, options.server_name) == (url, "minted-token", None)
    without = [o for o in deployed() if o[0] is not d.SERVICE_ACCOUNTS]
    options, lines = await d.discover(Options(orchestrator_url=url, pvc="data"), FakeKube(without), url_given=True)
    assert (options.token, options.minted_for) == (None, None)
    token_lines = [line for line in lines if line.startswith("• Token: ")]
    assert token_lines[0].startswith("• Token: none (No ServiceAccount kube-system/ai-migration-compare")


async def test_no_token_is_minted_for_plain_http_to_another_host() -> None:
    kube = FakeKube(deployed())
    given = Options(orchestrator_url="http://10.1.2.3:8080", pvc="data", source_node="a", target_node="b")
    options, lines = await d.discover(given, kube, url_given=True)
    assert options.token is None
    assert kube.token_requests == []
    assert "a token never goes over plain HTTP to 10.1.2.3" in lines[-1]


async def test_the_pods_node_is_the_source_when_the_workload_already_runs() -> None:
    pod = {"metadata": {"name": "tensorflow-ai-workload", "namespace": NS}, "spec": {"nodeName": "worker-1"}}
    kube = FakeKube([*deployed(), (PODS, pod)])
    options, lines = await d.discover(Options(), kube, prober=FakeProber({"https://10.244.1.7:8443"}))
    assert (options.source_node, options.target_node) == ("worker-1", "worker-2")
    assert any("where pod tensorflow-ai-workload runs in ai-migration-compare" in line for line in lines)


def test_nodes_most_cpu_first_and_a_target_of_the_same_kind() -> None:
    facts = [
        d.node_facts(node("real-big", cpu="64")[1]),
        d.node_facts(node("sim-a", cpu="16", simulated=True)[1]),
        d.node_facts(node("sim-b", cpu="16", simulated=True)[1]),
        d.node_facts(node("real-small", cpu="2")[1]),
    ]
    assert d.choose_nodes(facts, source=None, target=None, pod_node=None) == ("real-big", "real-small")
    assert d.choose_nodes(facts, source="sim-b", target=None, pod_node=None) == ("sim-b", "sim-a")
    assert d.choose_nodes(facts, source=None, target="real-big", pod_node=None) == ("sim-a", "real-big")
    assert d.choose_nodes(facts, source=None, target=None, pod_node="real-small") == ("real-small", "real-big")
    assert d.choose_nodes(facts[:1], source=None, target=None, pod_node=None) == ("real-big", None)


def test_why_a_node_is_excluded() -> None:
    taint = {"key": "gpu", "value": "yes", "effect": "NoExecute"}
    assert d.node_facts(node("a", ready=False)[1]).excluded == "not Ready"
    assert d.node_facts(node("a", cordoned=True)[1]).excluded == "cordoned"
    assert d.node_facts(node("a", taints=[taint])[1]).excluded == "taint gpu=yes:NoExecute not tolerated"
    assert d.node_facts(node("a", taints=[{"key": "soft", "effect": "PreferNoSchedule"}])[1]).excluded is None
    assert d.node_facts({"metadata": {"name": "bare"}}).excluded == "not Ready"
    assert d.node_facts(node("a", cpu="1500m")[1]).cpu == 1500


@pytest.mark.parametrize(
    ("volumes", "server", "path", "how"),
    [
        ([pv("b-free"), pv("a-bound", phase="Bound")], "nfs.example", "/exports/b-free", "Available"),
        (
            [pv("a-bound", phase="Bound", claim_ref={"namespace": "default", "name": "training-data"})],
            "nfs.example",
            "/exports/a-bound",
            "Bound by claim default/training-data",
        ),
        (
            [pv("mine", claim_ref={"namespace": NS, "name": "training-data"}), pv("theirs", claim_ref={"name": "x"})],
            "nfs.example",
            "/exports/mine",
            "Available",
        ),
    ],
)
async def test_an_nfs_persistent_volume_lends_its_export(
    volumes: list[tuple[Resource, JSON]], server: str, path: str, how: str
) -> None:
    objects = [o for o in deployed() if o[0] is not PVCS] + volumes
    options, lines = await d.discover(Options(), FakeKube(objects), prober=FakeProber({"https://10.244.1.7:8443"}))
    assert (options.pvc, options.nfs_server, options.nfs_path) == (None, server, path)
    assert f"ReadWriteMany, {how})" in lines[-1]
    assert "the run binds its own PV and claim training-data in ai-migration-compare to that export" in lines[-1]


@pytest.mark.parametrize(
    "volume",
    [
        pv("rwo", modes=("ReadWriteOnce",)),
        pv("other-class", storage_class="standard"),
        pv("not-nfs", nfs={}),
        pv("released", phase="Released"),
        pv("promised", claim_ref={"namespace": "other", "name": "training-data"}),
    ],
)
async def test_volumes_that_do_not_fit_are_not_used(volume: tuple[Resource, JSON]) -> None:
    objects = [o for o in deployed() if o[0] is not PVCS] + [volume]
    with pytest.raises(d.DiscoveryError) as raised:
        await d.discover(Options(), FakeKube(objects), prober=FakeProber({"https://10.244.1.7:8443"}))
    assert [p.split(":")[0] for p in raised.value.problems] == ["no shared volume"]


async def test_simulated_nodes_need_no_volume() -> None:
    objects = [o for o in deployed() if o[0] not in (PVCS, NODES)]
    objects += [node("sim-0", simulated=True), node("sim-1", simulated=True)]
    options, lines = await d.discover(Options(), FakeKube(objects), prober=FakeProber({"https://10.244.1.7:8443"}))
    assert (options.pvc, options.nfs_server) == (None, None)
    assert lines[-1].startswith("• Shared volume: none found; simulated nodes never mount one")


async def test_api_errors_become_sentences_not_tracebacks() -> None:
    kube = FakeKube(deployed())
    for plural in ("services", "configmaps", "nodes", "persistentvolumeclaims"):
        kube.failing[plural] = _error(403, "Forbidden")
    kube.token_answer = _error(500, "InternalError")
    with pytest.raises(d.DiscoveryError) as raised:
        await d.discover(Options(), kube, prober=FakeProber(set()))
    assert [p.split(" (")[0] for p in raised.value.problems] == [
        "Cannot read the orchestrator Service kube-system/ai-storage-orchestrator",
        "Cannot read the CA ConfigMap kube-system/ai-storage-orchestrator-ca",
        "Cannot mint a token for ServiceAccount kube-system/ai-migration-compare",
        "Cannot list the nodes",
        "Cannot read claim training-data in namespace ai-migration-compare",
    ]


async def test_grant_binds_exactly_what_the_orchestrator_checks_in_the_namespace_only() -> None:
    kube = FakeKube()
    lines = await d.grant_comparison_access(kube, "ns-1", labels={"t": "1"})
    (role_resource, role, manager), (binding_resource, binding, _) = kube.applied
    assert (role_resource.kind, binding_resource.kind, manager) == ("Role", "RoleBinding", d.FIELD_MANAGER)
    assert role["metadata"] == {"name": "ai-migration-compare", "namespace": "ns-1", "labels": {"t": "1"}}
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create", "delete"]}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "ai-migration-compare",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ai-migration-compare", "namespace": "kube-system"}
    ]
    assert lines == [
        "  granted ServiceAccount kube-system/ai-migration-compare get, create, delete on pods in namespace ns-1 only"
        " (Role and RoleBinding ai-migration-compare): what the orchestrator checks before it moves a pod"
    ]


async def test_a_refused_grant_is_a_compare_error() -> None:
    kube = FakeKube()
    kube.failing["roles"] = _error(403, "Forbidden")
    with pytest.raises(CompareError, match="grant ServiceAccount kube-system/ai-migration-compare its rights"):
        await d.grant_comparison_access(kube, "ns-1")


async def test_revoke_deletes_binding_then_role_and_tolerates_their_absence() -> None:
    kube = FakeKube()
    assert await d.revoke_comparison_access(kube, "ns-1") == [
        "  deleted RoleBinding ai-migration-compare",
        "  deleted Role ai-migration-compare",
    ]
    assert kube.deleted == [("rolebindings", "ai-migration-compare", "ns-1"), ("roles", "ai-migration-compare", "ns-1")]
    kube.failing["rolebindings"] = _error(404)
    kube.failing["roles"] = _error(403, "Forbidden")
    lines = await d.revoke_comparison_access(kube, "ns-1")
    assert lines == ["  could not delete Role ai-migration-compare: 403 Forbidden: from the fake"]


def test_the_client_verifies_the_service_name_when_discovery_found_an_address() -> None:
    plain = d.orchestrator_client(Options(orchestrator_url="https://o.example:8080"))
    assert type(plain) is OrchestratorClient
    pinned = d.orchestrator_client(
        Options(orchestrator_url="https://10.96.12.4:8080", server_name="ai-storage-orchestrator.kube-system.svc")
    )
    assert plain.server_name is None
    assert pinned.server_name == "ai-storage-orchestrator.kube-system.svc"


def test_settings_do_not_carry_the_ca_or_the_token() -> None:
    settings = Options(token="t", ca_data=CA, minted_for="kube-system/ai-migration-compare").settings()
    assert (settings["token"], settings["ca_data"], settings["minted_for"]) == (
        "set",
        "set",
        "kube-system/ai-migration-compare",
    )


def test_kubeconfig_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    assert d.resolve_kubeconfig("/given") == ("/given", "--kubeconfig /given")
    monkeypatch.setenv("KUBECONFIG", f"/first{':'}/second")
    assert d.resolve_kubeconfig(None) == ("/first", "$KUBECONFIG /first")
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert d.resolve_kubeconfig(None) == (None, "in-cluster service account")
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("{}")
    assert d.resolve_kubeconfig(None) == (str(tmp_path / ".kube" / "config"), str(tmp_path / ".kube" / "config"))


class _FakeApiClient:
    class configuration:  # noqa: N801 -- the attribute of kubernetes_asyncio's ApiClient
        host = SERVER

    closed = False

    async def close(self) -> None:
        type(self).closed = True


async def test_the_bare_command_exits_2_with_every_sentence_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kube = FakeKube([node("only")])

    async def create_api_client(kubeconfig: str | None) -> _FakeApiClient:
        return _FakeApiClient()

    monkeypatch.delenv("AI_STORAGE_ORCHESTRATOR_URL", raising=False)
    monkeypatch.delenv("AI_STORAGE_ORCHESTRATOR_TOKEN", raising=False)
    monkeypatch.delenv("AI_STORAGE_ORCHESTRATOR_CA_FILE", raising=False)
    monkeypatch.setattr(compare_command, "create_api_client", create_api_client)
    monkeypatch.setattr(compare_command, "DiscoveryApi", lambda api_client: kube)
    parser = argparse.ArgumentParser()
    compare_command.configure(parser)
    code = await compare_command.compare(parser.parse_args([]))
    out, err = capsys.readouterr()
    assert code == 2
    assert out.startswith("• Cluster: https://10.0.0.1:6443, Kubernetes v1.30.2")
    problems = [line for line in err.splitlines() if line.startswith("  ✗ ")]
    assert err.splitlines()[0] == "error: the comparison cannot start:"
    assert [p.split(":")[0] for p in problems] == [
        "  ✗ No orchestrator Service kube-system/ai-storage-orchestrator",
        "  ✗ No CA for the orchestrator's certificate",
        "  ✗ No ServiceAccount kube-system/ai-migration-compare to mint the orchestrator's token for",
        "  ✗ Fewer than two usable nodes for the source and the target (seen",
        "  ✗ no shared volume",
    ]
    assert "Traceback" not in err
    assert _FakeApiClient.closed
