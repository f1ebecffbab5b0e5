"""The REST API served by a running orchestrator against the real API server: every route, every error reason of
DESIGN.md §3, the seed's exact curl body, metrics, and Kubernetes-native auth."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from kubernetes_asyncio import client
from prometheus_client.parser import text_string_to_metric_families

from ai_storage_orchestrator.api.app import create_app
from ai_storage_orchestrator.api.auth import DEFAULT_AUDIENCE, AllowAll, Authenticator, KubernetesAuthenticator
from ai_storage_orchestrator.cli import build_parser
from ai_storage_orchestrator.cli.client import ApiClient, UnreachableError, execute
from ai_storage_orchestrator.controller.records import migration_resource, new_migration_id
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS
from ai_storage_orchestrator.models import MigrationRequest, Phase
from ai_storage_orchestrator.rest_client import client_context
from ai_storage_orchestrator.runtime import Orchestrator
from tests.cluster.certs import generate
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.processes import free_port
from tests.cluster.workloads import CERTIFICATION_POD, certification_pod, shared_volume

JSON = dict[str, Any]
API_SERVER_AUDIENCE = "https://kubernetes.default.svc.cluster.local"  # the harness's --service-account-issuer


async def _client(orchestrator: Orchestrator, authenticator: Authenticator) -> TestClient[Any, Any]:
    assert orchestrator.service is not None
    app = create_app(service=orchestrator.service, metrics=orchestrator.metrics, authenticator=authenticator)
    http = TestClient(TestServer(app, host="127.0.0.1"))
    await http.start_server()
    return http


@pytest.fixture
async def http(orchestrator: Orchestrator) -> AsyncIterator[TestClient[Any, Any]]:
    session = await _client(orchestrator, AllowAll())
    yield session
    await session.close()


async def _deploy(core: client.CoreV1Api, namespace: str, node: str, orchestrator: Orchestrator) -> None:
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, certification_pod(node=node, complete_after="1s")))

    def completed() -> bool:
        pod = orchestrator.state.pod(namespace, CERTIFICATION_POD) or {}
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return any(s["name"] == "data-processor" and "terminated" in s["state"] for s in statuses)

    await orchestrator.state.wait_for(completed, timeout=30)


def _seed_body(namespace: str, source: str, target: str) -> JSON:
    return {
        "pod_name": "tensorflow-ai-workload",
        "pod_namespace": namespace,
        "source_node": source,
        "target_node": target,
        "preserve_pv": True,
    }


async def _wait_terminal(orchestrator: Orchestrator, namespace: str, migration_id: str) -> None:
    def ended() -> bool:
        migration = orchestrator.state.migration(namespace, migration_id) or {}
        finished = (migration.get("status") or {}).get("phase") in {p.value for p in (Phase.COMPLETED, Phase.FAILED)}
        # The cache can show the end before the step that wrote it has counted it in the metrics.
        counted = sum(
            orchestrator.metrics.registry.get_sample_value("ai_storage_migrations_total", {"result": result}) or 0
            for result in ("completed", "failed")
        )
        return finished and counted > 0

    await orchestrator.state.wait_for(ended, timeout=60)


async def test_seed_curl_body_migrates_and_every_read_route_answers(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    orchestrator: Orchestrator,
    http: TestClient[Any, Any],
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _deploy(core, namespace, source, orchestrator)

    dry = await http.post("/api/migrations", json={**_seed_body(namespace, source, target), "dry_run": True})
    assert dry.status == 200
    plan = await dry.json()
    assert {c["name"]: c["action"] for c in plan["containers"]}["data-processor"] == "skip"
    assert plan["ok"] is True

    response = await http.post("/api/migrations", json=_seed_body(namespace, source, target))
    assert response.status == 202, await response.text()
    created = await response.json()
    migration_id = created["migration_id"]
    assert response.headers["Location"] == f"/api/migrations/{migration_id}"
    assert response.headers["X-Request-ID"]

    again = await http.post("/api/v1/migrations", json=_seed_body(namespace, source, target))
    assert again.status == 409
    conflict = await again.json()
    assert conflict["error"] == "migration_in_progress"
    assert conflict["details"]["migration_id"] == migration_id

    await _wait_terminal(orchestrator, namespace, migration_id)
    got = await http.get(f"/api/migrations/{migration_id}")
    assert got.status == 200
    migration = await got.json()
    assert migration["status"] == "completed"
    assert migration["new_pod_name"].startswith("tensorflow-ai-workload-migrated-")
    assert [c["action"] for c in migration["containers"]] == ["migrate", "skip", "migrate"]
    assert all(c["reason"] for c in migration["containers"])
    assert migration["duration_seconds"] is not None

    listed = await (await http.get(f"/api/migrations?namespace={namespace}&status=completed")).json()
    assert [m["migration_id"] for m in listed["migrations"]] == [migration_id]
    assert (await (await http.get("/api/migrations?status=failed&namespace=" + namespace)).json())["count"] == 0

    cancel = await http.delete(f"/api/migrations/{migration_id}")
    assert cancel.status == 409
    assert (await cancel.json())["error"] == "migration_finished"

    assert (await http.get("/healthz")).status == 200
    assert (await http.get("/readyz")).status == 200
    assert (await http.get("/api/openapi.json")).status == 200
    metrics_text = await (await http.get("/metrics")).text()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }
    assert samples[("ai_storage_migrations_total", (("result", "completed"),))] == 1
    assert samples[("ai_storage_containers_total", (("action", "skip"),))] == 1
    assert samples[("ai_storage_cpu_requests_freed_millicores_total", ())] == 500


def _grep(pattern: str, text: str) -> str:
    """What the seed's scripts do with `grep -o '"key":"[^"]*"'`: compact JSON or nothing."""
    found = re.search(pattern, text)
    assert found is not None, (pattern, text)
    return found.group(1)


async def test_the_seeds_original_clients_unchanged(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    orchestrator: Orchestrator,
    http: TestClient[Any, Any],
) -> None:
    """The seed's comparison script and zero-downtime demo, replayed over HTTP: compact JSON bodies read with grep,
    `/health`, polling `/api/v1/migrations/<id>` and `.../status`, `force_restart` and `timeout: 0`, and preserve_pv
    for a pod without a shared volume (accepted with a warning)."""
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _deploy(core, namespace, source, orchestrator)
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, _simple_pod("demo-app", source)))
    await orchestrator.state.wait_for(lambda: orchestrator.state.pod(namespace, "demo-app") is not None, timeout=30)
    health = await http.get("/health")
    assert health.status == 200
    assert _grep(r'"status":"([a-z]+)"', await health.text()) == "healthy"  # the seed's body

    async def post(body: JSON) -> str:
        raw = json.dumps(body, separators=(",", ":")).encode()  # curl -d '{...}'
        response = await http.post("/api/migrations", data=raw, headers={"Content-Type": "application/json"})
        text: str = await response.text()
        assert response.status == 202, text
        return _grep(r'"migration_id":"([a-z0-9-]+)"', text)

    async def poll(migration_id: str) -> tuple[str, str]:
        await _wait_terminal(orchestrator, namespace, migration_id)
        item = await (await http.get(f"/api/v1/migrations/{migration_id}")).text()
        status = await (await http.get(f"/api/v1/migrations/{migration_id}/status")).text()
        assert json.loads(item) == json.loads(status)
        return item, status

    compare = await post(_seed_body(namespace, source, target))
    item, _ = await poll(compare)
    assert _grep(r'"status":"([a-z]+)"', item) == "completed"
    migrated = json.loads(item)
    assert _grep(r'"new_pod_name":"([^"]+)"', item) == migrated["new_pod_name"] == migrated["details"]["new_pod_name"]
    assert migrated["details"]["container_states"] == [
        {"name": "tensorflow-trainer", "state": "running", "restart_count": None, "should_migrate": True},
        {"name": "data-processor", "state": "completed", "restart_count": None, "should_migrate": False},
        {"name": "model-monitor", "state": "running", "restart_count": None, "should_migrate": True},
    ]
    assert migrated["duration_seconds"] is not None
    assert abs(migrated["details"]["duration"] / 1e9 - migrated["duration_seconds"]) < 0.001  # Go's nanoseconds
    assert migrated["details"]["start_time"] == migrated["started_at"] is not None
    assert migrated["details"]["end_time"] == migrated["finished_at"] is not None
    assert migrated["warnings"] == []

    demo = {**_seed_body(namespace, source, target), "pod_name": "demo-app", "force_restart": True, "timeout": 0}
    demo_id = await post(demo)
    _, status = await poll(demo_id)
    assert _grep(r'"status":"([a-z]+)"', status) == "completed", status
    moved = json.loads(status)
    assert (moved["force_restart"], moved["timeout_seconds"], moved["preserve_pv"]) == (True, 600, True)
    (warning,) = moved["warnings"]
    assert "has no shared persistent volume" in warning
    assert moved["details"]["container_states"] == [
        {"name": "main", "state": "running", "restart_count": None, "should_migrate": True}
    ]
    assert orchestrator.api is not None
    record = await orchestrator.api.get(POD_MIGRATIONS, demo_id, namespace=namespace)
    assert json.loads(record["metadata"]["annotations"]["ai-storage.io/warnings"]) == [warning]


async def _error(response: Any) -> JSON:
    body: JSON = await response.json()
    assert set(body) == {"error", "message", "details"}, body
    return body


def _simple_pod(name: str, node: str, **extra: Any) -> JSON:
    volumes = extra.pop("volumes", [{"name": "scratch", "emptyDir": {}}])
    containers = extra.pop(
        "containers",
        [{"name": "main", "image": "busybox", "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
    )
    metadata = {"name": name, **extra.pop("metadata", {})}
    return {"metadata": metadata, "spec": {"nodeName": node, "containers": containers, "volumes": volumes, **extra}}


async def test_error_reasons(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    orchestrator: Orchestrator,
    http: TestClient[Any, Any],
) -> None:
    source, target, third = cluster.node_names[0], cluster.node_names[1], cluster.node_names[2]
    await _deploy(core, namespace, source, orchestrator)
    owner = await core.create_namespaced_config_map(
        namespace, cast(client.V1ConfigMap, {"metadata": {"name": "owner"}})
    )
    owner_ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
        "controller": True,
    }
    await core.create_namespaced_pod(
        namespace, cast(client.V1Pod, _simple_pod("owned", source, metadata={"ownerReferences": [owner_ref]}))
    )
    await core.create_namespaced_pod(namespace, cast(client.V1Pod, _simple_pod("local-only", source)))
    # Bound to the source by name; no other node carries the label it asks for: nowhere to choose.
    await core.create_namespaced_pod(
        namespace, cast(client.V1Pod, _simple_pod("picky", source, nodeSelector={"pool": "nowhere"}))
    )
    await core.create_namespaced_pod(
        namespace,
        cast(
            client.V1Pod,
            _simple_pod(
                "all-done",
                source,
                metadata={
                    "annotations": {
                        "sim.ai-storage.io/complete-containers": "main",
                        "sim.ai-storage.io/complete-after": "0s",
                    }
                },
                volumes=[{"name": "shared", "persistentVolumeClaim": {"claimName": "training-data"}}],
                containers=[
                    {"name": "main", "image": "busybox", "volumeMounts": [{"name": "shared", "mountPath": "/data"}]}
                ],
                restartPolicy="Never",
            ),
        ),
    )
    await core.patch_node(third, {"spec": {"unschedulable": True}})
    try:

        def settled() -> bool:
            done = orchestrator.state.pod(namespace, "all-done") or {}
            statuses = (done.get("status") or {}).get("containerStatuses") or []
            node = orchestrator.state.node(third) or {}
            ready = all(orchestrator.state.pod(namespace, n) for n in ("owned", "local-only", "picky"))
            return (
                ready and bool(statuses) and "terminated" in statuses[0]["state"] and node["spec"].get("unschedulable")
            )

        await orchestrator.state.wait_for(settled, timeout=30)
        body = _seed_body(namespace, source, target)
        cases: list[tuple[JSON, int, str]] = [
            ({**body, "pod_name": "missing"}, 404, "pod_not_found"),
            ({**body, "source_node": target, "target_node": third}, 409, "pod_not_on_source_node"),
            ({**body, "target_node": source}, 400, "invalid_request"),
            ({**body, "target_node": "no-such-node"}, 422, "target_node_not_found"),
            ({**body, "target_node": third}, 422, "target_node_cordoned"),
            ({**body, "pod_name": "owned", "preserve_pv": False}, 422, "owned_by_controller"),
            ({**body, "pod_name": "all-done"}, 422, "nothing_to_run"),
            ({**body, "preserve_pv": "yes"}, 400, "invalid_request"),
            ({**body, "extra": 1}, 400, "invalid_request"),
            ({key: value for key, value in body.items() if key != "source_node"}, 400, "invalid_request"),
            ({**body, "target_node": ""}, 400, "invalid_request"),
            # No target_node: the orchestrator chooses among the nodes that fit; the other two here do not.
            ({**body, "target_node": "auto", "pod_name": "picky"}, 422, "no_target_node"),
        ]
        for payload, status, reason in cases:
            response = await http.post("/api/migrations", json=payload)
            error = await _error(response)
            assert (response.status, error["error"]) == (status, reason), (payload, error)
            assert error["message"]

        malformed = await http.post("/api/migrations", data=b"{", headers={"Content-Type": "application/json"})
        assert (malformed.status, (await _error(malformed))["error"]) == (400, "invalid_json")
        wrong_type = await http.post("/api/migrations", data=b"a=b", headers={"Content-Type": "text/plain"})
        assert (wrong_type.status, (await _error(wrong_type))["error"]) == (415, "unsupported_media_type")
        huge = await http.post("/api/migrations", json={**body, "pod_name": "x" * 70_000})
        assert (huge.status, (await _error(huge))["error"]) == (413, "payload_too_large")
        unknown = await http.get("/api/migrations/0123456789ab")
        assert (unknown.status, (await _error(unknown))["error"]) == (404, "migration_not_found")
        assert (await http.delete("/api/migrations/0123456789ab")).status == 404
        assert orchestrator.state.migrations_of_pod(namespace, CERTIFICATION_POD) == []
    finally:
        await core.patch_node(third, {"spec": {"unschedulable": False}})


async def _service_account_token(
    core: client.CoreV1Api, namespace: str, name: str, *, audiences: list[str] | None = None, create: bool = True
) -> str:
    """A token of ServiceAccount `name` (created unless `create` is False) for `audiences`; the orchestrator's by
    default, as `kubectl create token NAME --audience ai-storage-orchestrator` mints it."""
    if create:
        await core.create_namespaced_service_account(
            namespace, cast(client.V1ServiceAccount, {"metadata": {"name": name}})
        )
    spec = {"expirationSeconds": 600, "audiences": audiences or [DEFAULT_AUDIENCE]}
    token = await core.create_namespaced_service_account_token(
        name, namespace, cast(client.AuthenticationV1TokenRequest, {"spec": spec})
    )
    return str(token.status.token)


async def _api_server_status(api: client.ApiClient, namespace: str, token: str) -> int:
    """What the API server itself answers a bearer token (listing pods in `namespace`)."""
    configuration = api.configuration
    context = client_context(configuration.ssl_ca_cert)
    url = f"{configuration.host}/api/v1/namespaces/{namespace}/pods"
    async with aiohttp.ClientSession() as http, http.get(url, headers=_bearer(token), ssl=context) as response:
        return response.status


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _grant_pod_rights(api: client.ApiClient, namespace: str, account: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    await rbac.create_namespaced_role(
        namespace,
        cast(
            client.V1Role,
            {
                "metadata": {"name": "pod-mover"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create", "delete"]}],
            },
        ),
    )
    await rbac.create_namespaced_role_binding(
        namespace,
        cast(
            client.V1RoleBinding,
            {
                "metadata": {"name": f"{account}-moves-pods"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-mover"},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            },
        ),
    )


async def test_kubernetes_auth_401_403_202(
    api: client.ApiClient,
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    orchestrator: Orchestrator,
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _deploy(core, namespace, source, orchestrator)
    assert orchestrator.api is not None
    http = await _client(orchestrator, KubernetesAuthenticator(orchestrator.api))
    try:
        body = _seed_body(namespace, source, target)
        anonymous = await http.post("/api/migrations", json=body)
        assert (anonymous.status, (await _error(anonymous))["error"]) == (401, "unauthorized")
        bogus = await http.post("/api/migrations", json=body, headers=_bearer("not-a-token"))
        assert bogus.status == 401

        viewer = await _service_account_token(core, namespace, "viewer")
        denied = await http.post("/api/migrations", json=body, headers=_bearer(viewer))
        assert (denied.status, (await _error(denied))["error"]) == (403, "forbidden")

        operator = await _service_account_token(core, namespace, "operator")
        await _grant_pod_rights(api, namespace, "operator")
        allowed = await http.post("/api/migrations", json=body, headers=_bearer(operator))
        assert allowed.status == 202, await allowed.text()
        migration_id = (await allowed.json())["migration_id"]
        # The viewer may not get pods here: the migration is as invisible to it as an id that does not exist.
        hidden = await http.get(f"/api/migrations/{migration_id}", headers=_bearer(viewer))
        unknown = await http.get("/api/migrations/0123456789ab", headers=_bearer(viewer))
        assert hidden.status == unknown.status == 404
        hidden_body, unknown_body = await _error(hidden), await _error(unknown)
        assert hidden_body["message"].replace(migration_id, "0123456789ab") == unknown_body["message"]
        assert (hidden_body["error"], hidden_body["details"]) == (unknown_body["error"], unknown_body["details"])
        assert (await http.get(f"/api/migrations/{migration_id}", headers=_bearer(operator))).status == 200
        assert (await http.get("/healthz")).status == 200
        await _wait_terminal(orchestrator, namespace, migration_id)
    finally:
        await http.close()


async def test_token_audiences_against_the_real_api_server(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator
) -> None:
    """`kubectl create token operator --audience ai-storage-orchestrator` works here and not against the API server;
    the operator's token for the API server works there and not here (no relay). `--token-audience=` is the opt-out."""
    assert orchestrator.api is not None
    http = await _client(orchestrator, KubernetesAuthenticator(orchestrator.api))
    opted_out = await _client(orchestrator, KubernetesAuthenticator(orchestrator.api, audience=""))
    try:
        ours = await _service_account_token(core, namespace, "operator")
        theirs = await _service_account_token(
            core, namespace, "operator", audiences=[API_SERVER_AUDIENCE], create=False
        )
        await _grant_pod_rights(api, namespace, "operator")
        listing = f"/api/migrations?namespace={namespace}"

        assert (await http.get(listing, headers=_bearer(ours))).status == 200
        assert await _api_server_status(api, namespace, ours) == 401

        assert await _api_server_status(api, namespace, theirs) == 200
        refused = await http.get(listing, headers=_bearer(theirs))
        refusal = await _error(refused)
        assert (refused.status, refusal["error"]) == (401, "unauthorized")
        assert "--audience ai-storage-orchestrator" in refusal["message"]

        assert (await opted_out.get(listing, headers=_bearer(theirs))).status == 200
        assert (await opted_out.get(listing, headers=_bearer(ours))).status == 401
    finally:
        await http.close()
        await opted_out.close()


async def _record_migrations(orchestrator: Orchestrator, namespace: str, count: int, **request: Any) -> list[str]:
    """PodMigrations written straight to the API server (of pods that do not exist: the controller fails them, and
    the records stay); returns their ids once the watch cache holds them."""
    assert orchestrator.api is not None
    ids = []
    for n in range(count):
        migration_id = new_migration_id()
        wanted = MigrationRequest(
            pod_name=f"absent-{migration_id}", pod_namespace=namespace, source_node="node-x", target_node="node-y"
        )
        body = migration_resource(replace(wanted, **request) if n == 0 else wanted, migration_id)
        await orchestrator.api.create(POD_MIGRATIONS, body, namespace=namespace)
        ids.append(migration_id)
    await orchestrator.state.wait_for(lambda: all(orchestrator.state.migration(namespace, i) for i in ids), timeout=30)
    return ids


async def _ids_of_every_page(http: TestClient[Any, Any], params: dict[str, str]) -> list[str]:
    served: list[str] = []
    while True:
        response = await http.get("/api/migrations", params=params)
        assert response.status == 200, await response.text()
        page = await response.json()
        assert page["count"] == len(page["migrations"]) <= int(params["limit"])
        served += [m["migration_id"] for m in page["migrations"]]
        if "continue" not in page:
            return served
        params = {**params, "continue": page["continue"]}


async def test_list_pages_and_ignore_pdb_against_the_real_api_server(
    namespace: str, orchestrator: Orchestrator, http: TestClient[Any, Any]
) -> None:
    made = await _record_migrations(orchestrator, namespace, 5, ignore_pdb=True)
    whole = await (await http.get(f"/api/migrations?namespace={namespace}")).json()
    assert whole["count"] == 5
    assert "continue" not in whole
    order = [m["migration_id"] for m in whole["migrations"]]
    assert sorted(order) == sorted(made)
    # The API server kept spec.ignorePDB (the CRD declares it) and the migration object shows it.
    shown = {m["migration_id"]: m["ignore_pdb"] for m in whole["migrations"]}
    assert shown == {i: i == made[0] for i in made}
    stored = orchestrator.state.migration(namespace, made[0]) or {}
    assert stored["spec"]["ignorePDB"] is True

    for limit in ("1", "2", "5"):
        assert await _ids_of_every_page(http, {"namespace": namespace, "limit": limit}) == order

    first = await (await http.get("/api/migrations", params={"namespace": namespace, "limit": "2"})).json()
    assert [m["migration_id"] for m in first["migrations"]] == order[:2]
    later = await _record_migrations(orchestrator, namespace, 2)
    rest = await _ids_of_every_page(http, {"namespace": namespace, "limit": "2", "continue": first["continue"]})
    # Keyset paging: the records created meanwhile neither repeat nor hide one of the first listing. (One created
    # in the same second as the last served item, with a smaller id, is served after it: that is its place.)
    assert [i for i in rest if i in order] == order[2:]
    assert len(rest) == len(set(rest))
    assert set(rest) - set(order) <= set(later)

    bad = await http.get("/api/migrations", params={"limit": "2", "continue": "bm90LWEtdG9rZW4"})
    assert (bad.status, (await _error(bad))["error"]) == (400, "invalid_continue")
    too_many = await http.get("/api/migrations", params={"limit": "1001"})
    assert (too_many.status, (await _error(too_many))["error"]) == (400, "invalid_request")


class ServeProcess:
    """`ai-storage-orchestrator serve ARGS` as a child process; `listening()` waits for its `http.listening` line
    (read from its output as it comes, no polling)."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.process: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._reading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ai_storage_orchestrator.cli", "serve", *self.args, "--log-format=json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip

    @property
    def stdout(self) -> asyncio.StreamReader:
        assert self.process is not None, "not started"
        assert self.process.stdout is not None
        return self.process.stdout

    async def listening(self, timeout: float = 60.0) -> JSON:
        async with asyncio.timeout(timeout):
            while line := (await self.stdout.readline()).decode(errors="replace"):
                self.lines.append(line)
                if line.startswith("{") and (event := json.loads(line)).get("event") == "http.listening":
                    self._reading = asyncio.create_task(self._read_rest())
                    return dict(event)
        raise AssertionError("serve exited before listening:\n" + "".join(self.lines[-30:]))

    async def _read_rest(self) -> None:
        while line := await self.stdout.readline():
            self.lines.append(line.decode(errors="replace"))

    async def exit_code(self, timeout: float = 60.0) -> int:
        async with asyncio.timeout(timeout):
            output = await self.stdout.read()
            self.lines += output.decode(errors="replace").splitlines(keepends=True)
            assert self.process is not None
            return await self.process.wait()

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            async with asyncio.timeout(30):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reading is not None:
            await self._reading


async def test_serve_speaks_tls_and_refuses_plain_http_off_loopback(
    api: client.ApiClient,
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    crd_installed: None,
    tmp_path: Path,
) -> None:
    """The real command line: HTTPS with a self-generated certificate and --auth=kubernetes on 127.0.0.1 (clients
    verify it with --ca-file and send their audience token), while binding 0.0.0.0 without TLS is refused at once."""
    refused = ServeProcess(f"--kubeconfig={cluster.kubeconfig}", "--host=0.0.0.0", "--auth=kubernetes")
    await refused.start()
    assert await refused.exit_code() == 2
    assert "refusing to serve plain HTTP on 0.0.0.0" in "".join(refused.lines)

    pki = generate(tmp_path / "pki")
    port = free_port()
    served = ServeProcess(
        f"--kubeconfig={cluster.kubeconfig}", "--host=127.0.0.1", f"--port={port}", "--auth=kubernetes",
        f"--tls-cert-file={pki.serving_cert}", f"--tls-key-file={pki.serving_key}",
        f"--namespace={namespace}", "--no-leader-election", f"--identity=tls-{namespace}",
    )  # fmt: skip
    await served.start()
    try:
        listening = await served.listening()
        assert (listening["scheme"], listening["port"]) == ("https", port)
        url = f"https://127.0.0.1:{port}"
        token = await _service_account_token(core, namespace, "operator")
        await _grant_pod_rights(api, namespace, "operator")
        async with ApiClient(url, token=token, ca_file=str(pki.ca_cert)) as orchestrator:
            assert (await orchestrator.list(namespace=namespace))["migrations"] == []
            status, _text, _headers = await orchestrator.send("GET", "/healthz")
            assert status == 200
        argv = ["list", "-n", namespace, "--url", url, "--ca-file", str(pki.ca_cert), "--token", token, "-o", "json"]
        args = build_parser().parse_args(argv)
        assert await execute(args.command_coroutine, args) == 0
        async with ApiClient(url, token=token) as untrusting:  # the system trust store does not know the test CA
            with pytest.raises(UnreachableError, match="certificate is not trusted"):
                await untrusting.list(namespace=namespace)
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):
                await plain.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await served.stop()
    assert served.process is not None
    assert served.process.returncode == 0, "".join(served.lines[-30:])  # SIGTERM: a clean stop
