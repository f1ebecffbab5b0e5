"""Whether the eviction of a pod goes ahead or becomes a migration: the decision of the validating webhook on
`pods/eviction` (docs/drain.md, "kubectl drain migrates"), pure of I/O.

It reads only the cluster's own objects -- the pod and its PodMigrations as the caches hold them, and whether its
namespace opted in -- never what the (unauthenticated) review claims beyond the pod's namespace and name. A refusal is
a 429, which `kubectl drain` retries every 5 s: the drain waits while the pod moves. Whatever cannot be moved is
evicted as Kubernetes alone would: the webhook never blocks a drain for good.

| the pod, as the cache has it                                  | answer                                          |
|---------------------------------------------------------------|-------------------------------------------------|
| unknown, terminating, or not opted in                         | allow                                           |
| not on a node, or finished                                    | allow (nothing to move)                         |
| the target of an active migration                             | 429 naming it, until that migration has ended   |
| an active migration of it recorded `sourceStopped`            | allow: the orchestrator's own eviction          |
| an active migration of it, source not stopped yet             | 429 naming the migration and its phase          |
| a migration of it ended Failed/Cancelled < RECENT_FAILURE ago | allow: fall back to eviction                    |
| otherwise                                                     | START a migration (429 naming it); dry run: PLAN |
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ai_storage_orchestrator.admission.ports import EvictionVerdict
from ai_storage_orchestrator.bodies import Pod
from ai_storage_orchestrator.controller.planning.marking import made_by
from ai_storage_orchestrator.controller.records import is_active, parse_time, phase_of
from ai_storage_orchestrator.conventions import MIGRATE_ON_EVICT_ANNOTATION
from ai_storage_orchestrator.models import Phase

JSON = dict[str, Any]

# A migration of the pod that failed or was cancelled this recently makes the eviction go ahead: a drain falls back to
# evicting instead of starting the same failing move every 5 s until its own timeout.
RECENT_FAILURE = dt.timedelta(minutes=10)
_GAVE_UP = frozenset({Phase.FAILED, Phase.CANCELLED})


class Action(StrEnum):
    ALLOW = "allow"  # the eviction goes ahead; `why` says why (logged)
    REFUSE = "refuse"  # 429 with `why` as the message
    START = "start"  # start a migration of the pod, then refuse naming it
    PLAN = "plan"  # a dry run: plan a migration without starting it, then refuse saying it would


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    why: str = ""
    migration: str | None = None


def migrates_on_evict(pod: Mapping[str, Any] | None) -> bool:
    """The pod itself opted in (annotation `ai-storage.io/migrate-on-evict: "true"`)."""
    return pod is not None and Pod(pod).annotations.get(MIGRATE_ON_EVICT_ANNOTATION, "").lower() == "true"


def decide(
    pod: JSON | None,
    *,
    opted_in: bool,
    migrations: Iterable[JSON],
    moving_to_it: JSON | None = None,
    may_stop_source: Callable[[JSON], bool] = lambda migration: True,
    dry_run: bool,
    now: dt.datetime,
) -> Decision:
    """The decision for the eviction of `pod`. `opted_in`: the pod's annotation or its namespace's label;
    `migrations`: the PodMigrations of the pod (by name, in its namespace); `moving_to_it`: the migration the pod's
    label names, which holds it only if it made the pod (planning/marking.py `made_by`); `may_stop_source`: whether
    a migration that has recorded the source's removal ahead may remove it now (its pre-warmed target proved it can
    start), so that an eviction from elsewhere (a drain's retry) never stops the source before that proof."""
    if pod is None:
        return Decision(Action.ALLOW, "the pod is not in the orchestrator's cache")
    view = Pod(pod)
    ref = f"{view.namespace}/{view.name}"
    if view.terminating:
        return Decision(Action.ALLOW, "the pod is already terminating")
    if not opted_in:
        return Decision(Action.ALLOW, "neither the pod nor its namespace opted in to migrate on eviction")
    if not view.node_name or view.phase in ("Succeeded", "Failed"):
        return Decision(Action.ALLOW, "the pod runs on no node: nothing to migrate")
    if moving_to_it is not None and is_active(moving_to_it) and made_by(pod, moving_to_it):
        name = moving_to_it["metadata"]["name"]
        return Decision(
            Action.REFUSE,
            f"pod {ref} is the target of migration {name} (phase {phase_of(moving_to_it).value}); the eviction is"
            " retried until that migration has ended",
            name,
        )
    pods_migrations = list(migrations)
    active = [m for m in pods_migrations if is_active(m)]
    stopping = next((m for m in active if (m.get("status") or {}).get("sourceStopped")), None)
    if stopping is not None and not may_stop_source(stopping):
        return Decision(
            Action.REFUSE,
            f"migration {stopping['metadata']['name']} stops pod {ref} once its new pod has proven it can start on"
            f" {(stopping.get('spec') or {}).get('targetNode')}; the eviction is retried until then",
            stopping["metadata"]["name"],
        )
    if stopping is not None:
        return Decision(
            Action.ALLOW,
            f"migration {stopping['metadata']['name']} stops the source: the eviction is its own, or comes after it",
            stopping["metadata"]["name"],
        )
    if active:
        return being_migrated(ref, active[0])
    gave_up = _recent_failure(pods_migrations, now)
    if gave_up is not None:
        phase = phase_of(gave_up).value
        return Decision(
            Action.ALLOW,
            f"migration {gave_up['metadata']['name']} of the pod ended {phase} less than {_minutes(RECENT_FAILURE)}"
            " ago: falling back to eviction",
            gave_up["metadata"]["name"],
        )
    return Decision(Action.PLAN if dry_run else Action.START)


def being_migrated(ref: str, migration: JSON) -> Decision:
    name = migration["metadata"]["name"]
    return Decision(
        Action.REFUSE,
        f"pod {ref} is being migrated by migration {name} (phase {phase_of(migration).value}); the eviction is retried"
        " until it has moved",
        name,
    )


def started(ref: str, migration_id: str, target: str) -> EvictionVerdict:
    """The refusal of an eviction that started migration `migration_id`."""
    return EvictionVerdict(
        allowed=False,
        message=(
            f"pod {ref} is being migrated by migration {migration_id} (phase {Phase.PENDING.value}) to node {target}"
            " instead of evicted; the eviction is retried until it has moved"
        ),
    )


def would_migrate(ref: str, target: str) -> EvictionVerdict:
    """The refusal of a dry-run eviction of a pod that a real one would migrate."""
    return EvictionVerdict(
        allowed=False,
        message=f"pod {ref} would be migrated to node {target} instead of evicted (dry run: no migration was started)",
    )


def refused(decision: Decision) -> EvictionVerdict:
    return EvictionVerdict(allowed=False, message=decision.why)


def _recent_failure(migrations: Iterable[JSON], now: dt.datetime) -> JSON | None:
    recent = []
    for migration in migrations:
        finished = parse_time((migration.get("status") or {}).get("finishedAt"))
        if phase_of(migration) in _GAVE_UP and finished is not None and now - finished < RECENT_FAILURE:
            recent.append((finished, migration))
    return max(recent, key=lambda pair: pair[0])[1] if recent else None


def _minutes(delta: dt.timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} minutes"
