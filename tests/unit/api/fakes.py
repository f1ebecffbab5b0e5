"""In-memory stand-ins for the REST layer's collaborators: the migration service and the review API."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ai_storage_orchestrator.controller.planning import plan_migration
from ai_storage_orchestrator.controller.records import migration_resource, phase_of, to_api
from ai_storage_orchestrator.errors import Conflict, NotFound, NotReady
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import SUBJECT_ACCESS_REVIEWS, TOKEN_REVIEWS, Resource
from ai_storage_orchestrator.models import MigrationRequest, Phase, Status
from tests.unit.planning.fixtures import certification_catalog, certification_pod, make_node

JSON = dict[str, Any]

SEED_BODY: JSON = {
    "pod_name": "tensorflow-ai-workload",
    "pod_namespace": "default",
    "source_node": "a",
    "target_node": "b",
    "preserve_pv": True,
}


class FakeService:
    """Implements ``MigrationServiceProtocol`` over a dict of PodMigration objects; can be told to fail."""

    def __init__(self) -> None:
        self.migrations: dict[str, JSON] = {}
        self.is_ready = True
        self.why = "caches synced"
        self.error: Exception | None = None  # raised by dry_run and submit
        self.submitted: list[tuple[MigrationRequest, str | None]] = []
        self.listed: list[JSON] = []
        self._next = 0

    def _raise_if_told(self) -> None:
        if not self.is_ready:
            raise NotReady(f"the orchestrator is starting: {self.why}", reason="not_ready")
        if self.error is not None:
            raise self.error

    def ready(self) -> tuple[bool, str]:
        return self.is_ready, self.why

    def dry_run(self, request: MigrationRequest) -> JSON:
        self._raise_if_told()
        pod = certification_pod()
        pod["metadata"].update(name=request.pod_name)
        pod["spec"]["nodeName"] = request.source_node
        plan = plan_migration(
            request=request,
            pod=pod,
            target_node=make_node(request.target_node),
            pods_on_target=[],
            catalog=certification_catalog(),
            migration_id="0123456789ab",
        )
        result = plan.to_json()
        result["dry_run"] = True
        result["active_migration"] = None
        result["request"] = {
            "pod_name": request.pod_name,
            "pod_namespace": request.pod_namespace,
            "source_node": request.source_node,
            "target_node": request.target_node,
            "preserve_pv": request.preserve_pv,
            "timeout_seconds": request.timeout_seconds,
            "strategy": request.strategy.value,
            "ignore_pdb": request.ignore_pdb,
        }
        return result

    def add(
        self,
        request: MigrationRequest,
        *,
        status: JSON | None = None,
        request_id: str | None = None,
        migration_id: str | None = None,
        created: str | None = None,
    ) -> JSON:
        """Record a migration; its id and creation time count up unless given."""
        self._next += 1
        migration_id = migration_id or f"{self._next:012x}"
        obj = migration_resource(request, migration_id, request_id=request_id)
        created = created or f"2024-05-01T10:{self._next // 60 % 60:02d}:{self._next % 60:02d}Z"
        obj["metadata"].update(creationTimestamp=created, resourceVersion="1")
        if status is not None:
            obj["status"] = status
        self.migrations[migration_id] = obj
        return to_api(obj)

    async def submit(self, request: MigrationRequest, *, request_id: str | None = None) -> JSON:
        self._raise_if_told()
        self.submitted.append((request, request_id))
        return self.add(request, request_id=request_id)

    def get(self, migration_id: str) -> JSON:
        obj = self.migrations.get(migration_id)
        if obj is None:
            raise NotFound(f"no migration with id {migration_id}", reason="migration_not_found")
        return to_api(obj)

    def list(self, *, status: Status | None = None, namespace: str | None = None, pod: str | None = None) -> list[JSON]:
        self.listed.append({"status": status, "namespace": namespace, "pod": pod})
        result = [to_api(obj) for obj in self.migrations.values()]
        matching = [
            m
            for m in result
            if (status is None or m["status"] == status.value)
            and (namespace is None or m["pod_namespace"] == namespace)
            and (pod is None or m["pod_name"] == pod)
        ]
        # Newest first, as MigrationService.list orders them.
        return sorted(matching, key=lambda m: (m["created_at"], m["migration_id"], m["pod_namespace"]), reverse=True)

    async def cancel(self, migration_id: str) -> JSON:
        obj = self.migrations.get(migration_id)
        if obj is None:
            raise NotFound(f"no migration with id {migration_id}", reason="migration_not_found")
        phase = phase_of(obj)
        if phase.is_terminal:
            raise Conflict(f"migration {migration_id} already ended", reason="migration_finished")
        obj["spec"]["cancelRequested"] = True
        return to_api(obj)


def finished_status(phase: Phase = Phase.COMPLETED) -> JSON:
    """A status as the controller writes it by the end of a checkpoint-restart migration."""
    transitions = [
        {"phase": p.value, "time": f"2024-05-01T10:01:0{i}.000000Z", "message": f"entered {p.value}"}
        for i, p in enumerate((Phase.VALIDATING, Phase.CHECKPOINTING, Phase.CREATING_TARGET, phase))
    ]
    status: JSON = {
        "phase": phase.value,
        "message": "done",
        "strategy": "checkpoint-restart",
        "strategyReason": "a container writes a persistent volume",
        "targetPod": "tensorflow-ai-workload-migrated-0123456789ab",
        "containers": [
            {"name": "trainer", "kind": "container", "state": "running", "action": "migrate", "reason": "running"},
            {
                "name": "data-processor",
                "kind": "container",
                "state": "terminated (exit 0, Completed)",
                "action": "skip",
                "reason": "completed; results on a shared volume",
            },
        ],
        "checkpoint": {
            "volume": {"volume": "shared-data", "mount_path": "/data", "container": "trainer"},
            "saved": False,
            "note": "state lives on the shared volume; no artifacts declared",
        },
        "resources": {
            "before": {"cpu_millicores": 2200, "memory_bytes": 5368709120},
            "after": {"cpu_millicores": 1700, "memory_bytes": 3758096384},
            "freed": {"cpu_millicores": 500, "memory_bytes": 1610612736},
        },
        "phaseTransitions": transitions,
        "startedAt": "2024-05-01T10:01:00.000000Z",
        "finishedAt": "2024-05-01T10:01:03.500000Z",
    }
    if phase is Phase.FAILED:
        status["error"] = {"reason": "target_not_ready", "message": "the target pod never became Ready"}
    return status


API_SERVER_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
ORCHESTRATOR_AUDIENCE = "ai-storage-orchestrator"


class FakeReviewApi:
    """Answers TokenReviews from `users` (token -> user) and SubjectAccessReviews from `grants`.

    Tokens are minted for `audiences` (token -> its audiences; default: the orchestrator's), and reviewed as the API
    server does: with spec.audiences, a token is authenticated only for the ones it shares (status.audiences);
    without, only for the API server's own audience. `audience_unaware` answers like an old webhook authenticator
    that ignores audiences altogether. `hold`, when given, keeps every answer until it is set.

    A grant is (username, verb, namespace); namespace None is a cluster-wide grant that covers every namespace."""

    def __init__(
        self,
        *,
        users: Mapping[str, JSON],
        grants: set[tuple[str, str, str | None]],
        audiences: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.users = dict(users)
        self.grants = set(grants)
        self.audiences = dict(audiences or {})
        self.calls: list[tuple[str, JSON]] = []
        self.down = False
        self.audience_unaware = False
        self.hold: asyncio.Event | None = None
        self._called: dict[str, asyncio.Event] = {}

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.calls if k == kind)

    async def wait_for_call(self, kind: str) -> None:
        """Until a review of `kind` has been asked for."""
        await self._called.setdefault(kind, asyncio.Event()).wait()

    async def create(self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None) -> JSON:
        assert namespace is None, "reviews are cluster-scoped"
        self.calls.append((resource.kind, dict(body)))
        self._called.setdefault(resource.kind, asyncio.Event()).set()
        if self.hold is not None:
            await self.hold.wait()
        if self.down:
            raise KubeApiError(0, "ConnectionError", "POST /apis/...: connection refused")
        if resource == TOKEN_REVIEWS:
            token = body["spec"]["token"]
            user = self.users.get(token)
            if user is None:
                return {**body, "status": {"authenticated": False, "error": "invalid bearer token"}}
            if self.audience_unaware:
                return {**body, "status": {"authenticated": True, "user": user}}
            minted_for = self.audiences.get(token, [ORCHESTRATOR_AUDIENCE])
            wanted = body["spec"].get("audiences") or [API_SERVER_AUDIENCE]
            shared = [a for a in wanted if a in minted_for]
            if not shared:
                return {**body, "status": {"authenticated": False, "error": "token audiences are invalid"}}
            status: JSON = {"authenticated": True, "user": user, "audiences": shared}
            return {**body, "status": status}
        if resource == SUBJECT_ACCESS_REVIEWS:
            spec = body["spec"]
            attributes = spec["resourceAttributes"]
            user, verb, ns = spec["user"], attributes["verb"], attributes.get("namespace")
            allowed = (user, verb, None) in self.grants or (ns is not None and (user, verb, ns) in self.grants)
            return {**body, "status": {"allowed": allowed, **({} if allowed else {"reason": "no RBAC rule"})}}
        raise AssertionError(f"unexpected create of {resource.kind}")
