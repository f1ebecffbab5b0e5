"""Small fakes for driving the phase table step by step in the fast tier: an in-memory API server whose every write
reaches the ClusterState at once (as its watch would), unless a test holds the cache back."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from ai_storage_orchestrator.controller.controller import MigrationController
from ai_storage_orchestrator.controller.knock import GateKnocker
from ai_storage_orchestrator.controller.planning.marking import mark_containers
from ai_storage_orchestrator.controller.reconciler import Outcome, Result
from ai_storage_orchestrator.controller.records import migration_resource, now_iso
from ai_storage_orchestrator.conventions import MIGRATION_FINALIZER, MIGRATION_ID_LABEL
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, PODS, Resource
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import MigrationRequest, Strategy
from ai_storage_orchestrator.settings import Settings
from ai_storage_orchestrator.watchers.state import ClusterState
from ai_storage_orchestrator.watchers.store import ObjectStore

JSON = dict[str, Any]
NAMESPACE = "ml"
POD = "trainer"
SOURCE, TARGET = "node-a", "node-b"
NOW = "2026-12-01T10:00:00.000000Z"


def merge(base: JSON, patch: Mapping[str, Any]) -> JSON:
    """RFC 7386 JSON merge patch."""
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@dataclass
class FakeApi:
    """Objects by (plural, namespace, name). Pods are deleted gracefully: a DELETE sets deletionTimestamp and the
    pod stays until `finish_termination` (the kubelet's part)."""

    state: ClusterState
    objects: dict[tuple[str, str, str], JSON] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    disruption_budget_blocks: bool = False
    reflect: bool = True  # False: writes do not reach the cache (a lagging watch)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    _uids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _store(self, resource: Resource) -> ObjectStore | None:
        """The watch cache of `resource`; None for kinds the orchestrator only reads live (a ReplicaSet, say)."""
        return {PODS.plural: self.state.pods, POD_MIGRATIONS.plural: self.state.migrations}.get(resource.plural)

    def _stamp(self, obj: JSON) -> JSON:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        return obj

    def _publish(self, resource: Resource, obj: JSON | None, removed: JSON | None = None) -> None:
        store = self._store(resource)
        if not self.reflect or store is None:
            return
        if obj is not None:
            store.apply("MODIFIED", copy.deepcopy(obj))
        elif removed is not None:
            store.apply("DELETED", copy.deepcopy(removed))

    def put(self, resource: Resource, obj: JSON) -> JSON:
        """Seed an object as if it had always been there."""
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("uid", f"uid-{next(self._uids)}")
        obj["metadata"].setdefault("namespace", NAMESPACE)
        self._stamp(obj)
        self.objects[(resource.plural, NAMESPACE, obj["metadata"]["name"])] = obj
        self._publish(resource, obj)
        return copy.deepcopy(obj)

    def pod(self, name: str) -> JSON | None:
        return self.objects.get((PODS.plural, NAMESPACE, name))

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON:
        self.calls.append(f"get {resource.kind} {name}")
        obj = self.objects.get((resource.plural, namespace or "", name))
        if obj is None:
            raise KubeApiError(404, "NotFound", f"{resource.plural} {name} not found")
        return copy.deepcopy(obj)

    async def create(self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None) -> JSON:
        self.calls.append(f"create {resource.kind} {body['metadata']['name']}")
        key = (resource.plural, namespace or "", body["metadata"]["name"])
        if key in self.objects:
            raise KubeApiError(409, "AlreadyExists", f"{key} already exists")
        return self.put(resource, dict(body))

    async def merge_patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> JSON:
        self.calls.append(f"patch {resource.kind} {name}" + (f"/{subresource}" if subresource else ""))
        key = (resource.plural, namespace or "", name)
        obj = self.objects.get(key)
        if obj is None:
            raise KubeApiError(404, "NotFound", f"{name} not found")
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != obj["metadata"]["resourceVersion"]:
            raise KubeApiError(409, "Conflict", "the object has been modified")
        updated = self._stamp(merge(obj, patch))
        if updated["metadata"].get("deletionTimestamp") and not updated["metadata"].get("finalizers"):
            return self._remove(resource, key)
        self.objects[key] = updated
        self._publish(resource, updated)
        return copy.deepcopy(updated)

    def _remove(self, resource: Resource, key: tuple[str, str, str]) -> JSON:
        removed = self.objects.pop(key)
        self._publish(resource, None, removed)
        return copy.deepcopy(removed)

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        uid: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> JSON:
        self.calls.append(f"delete {resource.kind} {name}")
        return self._delete(resource, name, namespace or "", uid)

    def _delete(self, resource: Resource, name: str, namespace: str, uid: str | None) -> JSON:
        key = (resource.plural, namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            raise KubeApiError(404, "NotFound", f"{name} not found")
        if uid and obj["metadata"]["uid"] != uid:
            raise KubeApiError(409, "Conflict", "Precondition failed: UID in precondition does not match")
        if resource is PODS or obj["metadata"].get("finalizers"):
            obj = self._stamp(merge(obj, {"metadata": {"deletionTimestamp": NOW}}))
            self.objects[key] = obj
            self._publish(resource, obj)
            return copy.deepcopy(obj)
        return self._remove(resource, key)

    async def evict(self, name: str, *, namespace: str, uid: str | None = None) -> JSON:
        self.calls.append(f"evict Pod {name}")
        if self.disruption_budget_blocks:
            raise KubeApiError(
                429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget."
            )
        self._delete(PODS, name, namespace, uid)
        return {"kind": "Status", "status": "Success"}

    def catch_up(self) -> None:
        """The lagging watch delivers what happened meanwhile."""
        for (plural, _namespace, _name), obj in list(self.objects.items()):
            resource = PODS if plural == PODS.plural else POD_MIGRATIONS
            self._publish(resource, obj)

    def finish_termination(self, name: str) -> None:
        """The kubelet ends a terminating pod: it disappears."""
        self._remove(PODS, (PODS.plural, NAMESPACE, name))

    def make_ready(self, name: str) -> None:
        pod = self.objects[(PODS.plural, NAMESPACE, name)]
        status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        updated = self._stamp(merge(pod, {"status": status}))
        self.objects[(PODS.plural, NAMESPACE, name)] = updated
        self._publish(PODS, updated)

    def stop_containers(self, name: str) -> None:
        """The kubelet reports a terminating pod's containers stopped (the pod object is still there)."""
        pod = self.objects[(PODS.plural, NAMESPACE, name)]
        stopped = [
            {**status, "state": {"terminated": {"exitCode": 143, "reason": "Error"}}}
            for status in pod["status"].get("containerStatuses") or []
        ]
        updated = self._stamp(merge(pod, {"status": {"phase": "Failed", "containerStatuses": stopped}}))
        self.objects[(PODS.plural, NAMESPACE, name)] = updated
        self._publish(PODS, updated)

    def admit(self, name: str) -> None:
        """The kubelet of the pod's node takes it: it reports its containers, waiting to start."""
        pod = self.objects[(PODS.plural, NAMESPACE, name)]
        waiting = {"waiting": {"reason": "ContainerCreating"}}
        statuses = [{"name": c["name"], "state": waiting} for c in pod["spec"]["containers"]]
        updated = self._stamp(merge(pod, {"status": {"phase": "Pending", "containerStatuses": statuses}}))
        self.objects[(PODS.plural, NAMESPACE, name)] = updated
        self._publish(PODS, updated)

    def refuse(self, name: str, reason: str = "OutOfcpu") -> None:
        """The kubelet's admission turns the pod away: Failed before any container ran."""
        pod = self.objects[(PODS.plural, NAMESPACE, name)]
        status = {"phase": "Failed", "reason": reason, "message": f"Pod was rejected: {reason}"}
        updated = self._stamp(merge(pod, {"status": status}))
        self.objects[(PODS.plural, NAMESPACE, name)] = updated
        self._publish(PODS, updated)

    def run_gate(self, name: str, state: JSON | None = None) -> None:
        """The kubelet starts a pre-warmed target's gate (or reports `state` for it, e.g. a waiting reason)."""
        pod = self.objects[(PODS.plural, NAMESPACE, name)]
        gate = pod["spec"]["initContainers"][0]["name"]
        statuses = [{"name": gate, "state": state or {"running": {"startedAt": NOW}}}]
        updated = self._stamp(merge(pod, {"status": {"phase": "Pending", "initContainerStatuses": statuses}}))
        self.objects[(PODS.plural, NAMESPACE, name)] = updated
        self._publish(PODS, updated)

    def writes(self) -> list[str]:
        return [c for c in self.calls if not c.startswith("get ")]


class FakeEvents:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    def record(self, obj: JSON, *, reason: str, message: str, warning: bool = False) -> None:
        self.recorded.append((reason, message))

    def run_in_background(self, work: Coroutine[Any, Any, None]) -> None:
        work.close()  # informative pod annotations: not part of what these tests check


def running_pod(name: str, node: str, **labels: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(labels)},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [
                {"name": "trainer", "image": "trainer:1", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}
            ],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "trainer", "ready": True, "state": {"running": {"startedAt": NOW}}}],
        },
    }


def node(name: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "resourceVersion": "1"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
        },
    }


class World:
    """A controller over a FakeApi, with the source pod on node-a and both nodes Ready."""

    def __init__(
        self, *, fence: bool = True, settings: Settings | None = None, knocker: GateKnocker | None = None
    ) -> None:
        self.state = ClusterState()
        self.api = FakeApi(self.state)
        self.events = FakeEvents()
        self.leading = fence
        self.controller = MigrationController(
            api=self.api,
            state=self.state,
            settings=settings or Settings(leader_election=False),
            recorder=self.events,
            metrics=Metrics(),
            knocker=knocker,
            fence=lambda: self.leading,
        )
        for name in (SOURCE, TARGET):
            self.state.nodes.apply("ADDED", node(name))
        self.source = self.api.put(PODS, running_pod(POD, SOURCE))

    def request(
        self, *, strategy: str = "auto", migration_id: str = "m1", target: str = TARGET, pod: str = POD, **spec: Any
    ) -> str:
        """A new PodMigration as the service creates it (Pending, with the finalizer)."""
        record = migration_resource(
            MigrationRequest(
                pod_name=pod,
                pod_namespace=NAMESPACE,
                source_node=SOURCE,
                target_node=target,
                strategy=Strategy(strategy),
            ),
            migration_id,
        )
        record["metadata"]["creationTimestamp"] = now_iso()
        record["spec"].update(spec)
        self.api.put(POD_MIGRATIONS, record)
        return f"{NAMESPACE}/{migration_id}"

    def migration(self, *, phase: str, strategy: str, migration_id: str = "m1", **status: Any) -> str:
        """A PodMigration already in `phase`, planned as Validating would have planned it."""
        target_name = f"{POD}-migrated-{migration_id}"
        manifest = running_pod(target_name, TARGET, **{MIGRATION_ID_LABEL: migration_id})
        mark_containers(manifest["spec"]["containers"], migration_id)
        del manifest["status"]
        record = {
            "apiVersion": "ai-storage.io/v1alpha1",
            "kind": "PodMigration",
            "metadata": {
                "name": migration_id,
                "namespace": NAMESPACE,
                "creationTimestamp": now_iso(),
                "finalizers": [MIGRATION_FINALIZER],
            },
            "spec": {"podName": POD, "sourceNode": SOURCE, "targetNode": TARGET, "timeoutSeconds": 600},
            "status": {
                "phase": phase,
                "strategy": strategy,
                "startedAt": now_iso(),
                "targetPod": target_name,
                "targetPodManifest": manifest,
                "sourcePodUID": self.source["metadata"]["uid"],
                "checkpoint": {"saved": False},
                **status,
            },
        }
        self.api.put(POD_MIGRATIONS, record)
        return f"{NAMESPACE}/{migration_id}"

    def record(self, key: str = f"{NAMESPACE}/m1") -> JSON:
        migration = self.state.migrations.get(key)
        assert migration is not None
        return migration

    def phase(self, key: str = f"{NAMESPACE}/m1") -> str:
        return str((self.record(key).get("status") or {}).get("phase") or "Pending")

    async def drive(self, key: str = f"{NAMESPACE}/m1", *, steps: int = 20) -> Result:
        """Run steps like one worker would, until the migration waits for an event or is done."""
        for _ in range(steps):
            result = await self.controller.reconcile(key)
            if result.outcome is not Outcome.REQUEUE:
                return result
        raise AssertionError(f"still stepping after {steps} steps: {self.phase(key)}")
