"""The eviction review at work: reads what admission/eviction.py decides from (the caches, the namespace's opt-in
label), and starts the migration it asks for through the orchestrator's MigrationService.

The service exists once the orchestrator has started; the webhook app is built before that, so it is reached through
a provider, and an eviction reviewed before (or without) it goes ahead. The namespace label is read with a GET, not a
watch (as controller/triggers.py does, for the same reasons), and its answer kept for OPT_IN_SECONDS: a drain evicts
every pod of a node at once and retries every 5 s."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from ai_storage_orchestrator.admission import eviction
from ai_storage_orchestrator.admission.ports import ALLOW_EVICTION, EvictionVerdict
from ai_storage_orchestrator.bodies import Pod
from ai_storage_orchestrator.controller.planning import MigrationPlan
from ai_storage_orchestrator.controller.planning.gate import gate_running
from ai_storage_orchestrator.controller.planning.marking import labelled_move
from ai_storage_orchestrator.controller.records import new_migration_id
from ai_storage_orchestrator.conventions import (
    MIGRATION_STRATEGY_ANNOTATION,
    MIGRATION_TIMEOUT_ANNOTATION,
    NAMESPACE_OPT_IN_LABEL,
    NAMESPACE_OPT_IN_VALUE,
    PRESERVE_PV_ANNOTATION,
)
from ai_storage_orchestrator.errors import Conflict, OrchestratorError
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import NAMESPACES, KubeApi
from ai_storage_orchestrator.models import AUTO_TARGET, DEFAULT_TIMEOUT, MigrationRequest, Strategy
from ai_storage_orchestrator.watchers.state import ClusterState

JSON = dict[str, Any]
log = structlog.get_logger(__name__)

OPT_IN_SECONDS = 10.0
TRIGGERED_BY = "eviction"


class Migrations(Protocol):
    """What the review needs of controller/service.py's MigrationService."""

    api: KubeApi

    def ready(self) -> tuple[bool, str]: ...

    def plan(self, request: MigrationRequest, migration_id: str) -> MigrationPlan: ...

    async def submit(self, request: MigrationRequest, *, request_id: str | None = None) -> JSON: ...


class EvictionReview:
    def __init__(
        self,
        state: ClusterState,
        migrations: Callable[[], Migrations | None],
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.state = state
        self._migrations = migrations
        self._clock = clock
        self._now = now
        self._opt_in: dict[str, tuple[float, bool]] = {}
        # Two reviews of one pod at once (two drains, a retry racing a slow start) start one migration: a start
        # decides again, under the lock, from the cache the previous start wrote its migration through.
        self._starting = asyncio.Lock()

    async def review(self, namespace: str, name: str, *, dry_run: bool) -> EvictionVerdict:
        service = self._migrations()
        if service is None:
            log.info("webhook.eviction_allowed", namespace=namespace, pod=name, why="the orchestrator is starting")
            return ALLOW_EVICTION
        decision = await self._decide(service, namespace, name, dry_run=dry_run)
        if decision.action is eviction.Action.START:
            async with self._starting:
                decision = await self._decide(service, namespace, name, dry_run=dry_run)
                if decision.action is eviction.Action.START:
                    return await self._start(service, namespace, name)
        if decision.action is eviction.Action.PLAN:
            return self._plan(service, namespace, name)
        if decision.action is eviction.Action.REFUSE:
            return eviction.refused(decision)
        log.info(
            "webhook.eviction_allowed", namespace=namespace, pod=name, why=decision.why, migration_id=decision.migration
        )
        return ALLOW_EVICTION

    async def _decide(self, service: Migrations, namespace: str, name: str, *, dry_run: bool) -> eviction.Decision:
        pod = self.state.pod(namespace, name)
        opted_in = eviction.migrates_on_evict(pod) or (
            pod is not None and await self._namespace_opted_in(service.api, namespace)
        )
        target_of = labelled_move(pod)
        return eviction.decide(
            pod,
            opted_in=opted_in,
            migrations=self.state.migrations_of_pod(namespace, name),
            moving_to_it=self.state.migration(namespace, target_of) if target_of else None,
            may_stop_source=self._target_prepared,
            dry_run=dry_run,
            now=self._now(),
        )

    def _target_prepared(self, migration: JSON) -> bool:
        """No pre-warmed target to wait for, or its gate runs (the proof `stopping_source` waits for)."""
        status = migration.get("status") or {}
        if not (status.get("prewarm") or {}).get("token") or status.get("owner"):
            return True
        if status.get("phase") == "RollingBack":  # the move has given up: nothing to wait for
            return True
        name = status.get("targetPod")
        target = self.state.pod(str(migration["metadata"].get("namespace")), str(name)) if name else None
        # A target being removed means the move rolls back, and its rollback recreates a source removed meanwhile.
        return target is not None and (gate_running(target) or Pod(target).terminating)

    async def _namespace_opted_in(self, api: KubeApi, namespace: str) -> bool:
        now = self._clock()
        cached = self._opt_in.get(namespace)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            found = await api.get(NAMESPACES, namespace)
        except KubeApiError as error:
            # Not known to have opted in: the eviction goes ahead, as Kubernetes alone would.
            log.warning("webhook.namespace_unreadable", namespace=namespace, error=str(error))
            return False
        labels = (found.get("metadata") or {}).get("labels") or {}
        opted_in = labels.get(NAMESPACE_OPT_IN_LABEL) == NAMESPACE_OPT_IN_VALUE
        self._opt_in = {ns: entry for ns, entry in self._opt_in.items() if entry[0] > now}
        self._opt_in[namespace] = (now + OPT_IN_SECONDS, opted_in)
        return opted_in

    def _request(self, namespace: str, name: str) -> MigrationRequest:
        """The migration of the pod to a node the orchestrator chooses, with the pod's own migration annotations."""
        pod = self.state.pod(namespace, name) or {}
        annotations = Pod(pod).annotations
        return MigrationRequest(
            pod_name=name,
            pod_namespace=namespace,
            source_node=Pod(pod).node_name or "",
            target_node=AUTO_TARGET,
            preserve_pv=annotations.get(PRESERVE_PV_ANNOTATION, "false").lower() == "true",
            strategy=Strategy(annotations.get(MIGRATION_STRATEGY_ANNOTATION, Strategy.AUTO.value)),
            timeout_seconds=int(annotations.get(MIGRATION_TIMEOUT_ANNOTATION, str(DEFAULT_TIMEOUT))),
            triggered_by=TRIGGERED_BY,
        )

    async def _start(self, service: Migrations, namespace: str, name: str) -> EvictionVerdict:
        ref = f"{namespace}/{name}"
        try:
            created = await service.submit(self._request(namespace, name))
        except Conflict as error:
            other = self.state.migration(namespace, str(error.details.get("migration_id") or ""))
            if error.reason == "migration_in_progress" and other is not None:
                return eviction.refused(eviction.being_migrated(ref, other))
            return _fall_back(namespace, name, error)
        except (OrchestratorError, ValueError) as error:
            return _fall_back(namespace, name, error)
        log.info(
            "webhook.eviction_migrates",
            namespace=namespace,
            pod=name,
            migration_id=created["migration_id"],
            target_node=created["target_node"],
        )
        return eviction.started(ref, created["migration_id"], created["target_node"])

    def _plan(self, service: Migrations, namespace: str, name: str) -> EvictionVerdict:
        """A dry run: the orchestrator's own plan, nothing created."""
        try:
            ready, why = service.ready()
            if not ready:
                raise OrchestratorError(why, reason="not_ready")
            plan = service.plan(self._request(namespace, name), new_migration_id())
            plan.raise_for_failures()
        except (OrchestratorError, ValueError) as error:
            return _fall_back(namespace, name, error)
        chosen = None if plan.target_choice is None else plan.target_choice.chosen
        return eviction.would_migrate(f"{namespace}/{name}", chosen.node if chosen is not None else "?")


def _fall_back(namespace: str, name: str, error: Exception) -> EvictionVerdict:
    """The orchestrator will not move the pod (a refusal, invalid annotations, not ready): it is evicted."""
    reason = error.reason if isinstance(error, OrchestratorError) else "invalid_annotation"
    log.info("webhook.eviction_allowed", namespace=namespace, pod=name, why=f"{reason}: {error}")
    return ALLOW_EVICTION
