"""The orchestrator's answers to its webhooks, from its watch caches: capture an owner's replacement pod for the
migration that waits for it (admission/capture.py), and turn the eviction of an opted-in pod into a migration
(admission/evicting.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from ai_storage_orchestrator.admission.capture import capture_patch, captured_pod, claiming_migration
from ai_storage_orchestrator.admission.evicting import EvictionReview, Migrations
from ai_storage_orchestrator.admission.ports import JSON, EvictionVerdict
from ai_storage_orchestrator.bodies import Body
from ai_storage_orchestrator.controller.invariant import containers_stopped, terminating
from ai_storage_orchestrator.watchers.state import ClusterState

log = structlog.get_logger(__name__)
# A migration that captured a pod claims no other for this long: the captured pod reaches the cache within it, and
# from then on the cache says the migration has its pod. An owner that creates two pods at once (a ReplicaSet scaled
# up while one of its pods moves) thus gives one to the migration and the other to the scheduler.
CLAIM_SECONDS = 10.0


class OwnerCapture:
    def __init__(
        self,
        state: ClusterState,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        migrations: Callable[[], Migrations | None] = lambda: None,
    ) -> None:
        """`migrations`: the orchestrator's MigrationService once it has started (None before: evictions go ahead);
        `wall_clock`: seconds since the epoch, for a held capture's latest opening time (planning/gate.py)."""
        self.state = state
        self._clock = clock
        self._wall_clock = wall_clock
        self._claimed: dict[str, float] = {}
        self._evictions = EvictionReview(state, migrations, clock=clock)

    def mutate_pod_create(self, pod: JSON, namespace: str) -> list[JSON]:
        migration = claiming_migration(pod, namespace, self.state.migrations, self.state.pods)
        if migration is None:
            return []
        key = f"{namespace}/{migration['metadata']['name']}"
        now = self._clock()
        if self._claimed.get(key, 0.0) > now:
            return []
        view = Body(migration)
        source = self.state.pod(namespace, str(view.spec.get("podName")))
        surge = bool((view.status.get("owner") or {}).get("surge"))  # both copies run a while, by design
        ours = source is not None and source["metadata"].get("uid") == view.status.get("sourcePodUID")
        if not surge and ours and source is not None and not terminating(source):
            # Not the replacement: an owner replaces a pod once it is being removed. The eviction was refused (a
            # PodDisruptionBudget) or has not happened yet, and this is another pod of the owner (a sibling, a
            # scale-up): captured, its gate would open by itself at its deadline while the source still runs.
            log.info(
                "webhook.not_captured",
                migration_id=migration["metadata"]["name"],
                namespace=namespace,
                reason="the source pod is not being removed",
            )
            return []
        self._claimed = {k: until for k, until in self._claimed.items() if until > now}
        self._claimed[key] = now + CLAIM_SECONDS
        source_may_run = not surge and ours and source is not None and not containers_stopped(source)
        target = captured_pod(pod, migration, gate=source_may_run, now=self._wall_clock())
        log.info(
            "webhook.captured",
            migration_id=migration["metadata"]["name"],
            namespace=namespace,
            owner=view.status.get("owner", {}).get("kind"),
            target_node=view.spec.get("targetNode"),
            gated=source_may_run,
        )
        return capture_patch(pod, target)

    async def review_eviction(self, namespace: str, name: str, *, dry_run: bool) -> EvictionVerdict:
        return await self._evictions.review(namespace, name, dry_run=dry_run)
