"""One migration of the certification pod, timed from the bench process's watch events.

native:        DELETE the pod (uid precondition) → its DELETED event → POST the same pod (named <name>-moved) with
               nodeName = target → the new pod's Ready event. Wall time: DELETE sent → Ready seen.
orchestrator:  POST /api/migrations → the PodMigration's Completed event (watch). Wall time: POST sent → Completed seen
               (it includes removing the source, which make-before-break does after the target is Ready)."""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ai_storage_orchestrator.kube.resources import PODS
from bench.availability import downtime, is_ready
from bench.clock import epoch
from bench.observer import Seen
from bench.stage import RUN_LABEL, STEP_TIMEOUT, Stage

MIGRATION_ID_LABEL = "ai-storage.io/migration-id"
TERMINAL = frozenset({"Completed", "Failed", "Cancelled"})
NATIVE = "native"


@dataclass
class RunResult:
    method: str  # native | checkpoint-restart | make-before-break
    round: int
    status: str = "completed"
    wall_s: float | None = None  # the action sent → migration finished (see module docstring)
    to_ready_s: float | None = None  # the action sent → a replacement Ready
    downtime_s: float | None = None
    post_s: float | None = None  # POST /api/migrations answered
    to_target_created_s: float | None = None  # POST sent → target pod ADDED seen
    ready_to_completed_s: float | None = None  # target Ready seen → PodMigration Completed seen
    ready_to_removal_s: float | None = None  # make-before-break: target Ready seen → the source's removal seen
    phases_s: dict[str, float] = field(default_factory=dict)
    ordering: str | None = None
    migration_id: str | None = None
    skipped: list[str] = field(default_factory=list)
    error: str | None = None
    started_at: float | None = None  # time.monotonic() when the action was sent (for bench.timeline)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def phase_durations(status: dict[str, Any], *, posted_wall: float, seen_wall: float) -> dict[str, float]:
    """Seconds in each phase from status.phaseTransitions (the orchestrator's clock; same host as the bench's):
    Pending is POST sent → Validating; 'Completed→seen' is the last transition → its watch event here."""
    transitions = [(str(t["phase"]), epoch(str(t["time"]))) for t in status.get("phaseTransitions") or []]
    if not transitions:
        return {}
    durations: dict[str, float] = {"Pending": transitions[0][1] - posted_wall}
    for (phase, began), (_, ended) in itertools.pairwise(transitions):
        durations[phase] = durations.get(phase, 0.0) + ended - began
    durations["Completed→seen"] = seen_wall - transitions[-1][1]
    return {k: round(v, 4) for k, v in durations.items()}


def _removal_seen(pod: dict[str, Any]) -> bool:
    """Asked to go: deleted, or marked by the Eviction API (whose deletion follows in the same request)."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    marked = any(c.get("type") == "DisruptionTarget" and c.get("status") == "True" for c in conditions)
    return marked or bool(pod["metadata"].get("deletionTimestamp"))


def _of_run(run: str, events: list[Seen]) -> list[Seen]:
    return [s for s in events if s.labels.get(RUN_LABEL) == run]


async def native_run(stage: Stage, round_no: int) -> RunResult:
    run = f"native-{round_no}"
    pod = await stage.prepare(run, run=run)
    uid = pod["metadata"]["uid"]
    mark = stage.pods.mark()
    start = time.monotonic()
    await stage.api.delete(PODS, run, namespace=stage.namespace, uid=uid)
    await stage.pods.first(lambda s: s.type == "DELETED" and s.uid == uid, since=mark, timeout=STEP_TIMEOUT)
    # The replacement gets a name of its own: KWOK deletes pods by name, and a delete it retries for the old pod
    # would remove a same-named replacement created a few milliseconds later (a real kubelet deletes by uid).
    replacement = stage.certification(f"{run}-moved", run=run, node=stage.target)
    created = await stage.api.create(PODS, replacement, namespace=stage.namespace)
    new_uid = created["metadata"]["uid"]
    ready = await stage.pods.first(
        lambda s: s.uid == new_uid and s.type != "DELETED" and is_ready(s.obj), since=mark, timeout=STEP_TIMEOUT
    )
    down = downtime(_of_run(run, stage.pods.log[mark:]), serving_at_start={uid}, start=start, end=ready.at)
    await stage.clean(run)
    wall = ready.at - start
    return RunResult(NATIVE, round_no, wall_s=wall, to_ready_s=wall, downtime_s=down, started_at=start)


async def orchestrated_run(stage: Stage, round_no: int, *, strategy: str, method: str) -> RunResult:
    run = f"{method}-{round_no}"
    pod = await stage.prepare(run, run=run)
    await stage.orchestrator_sees_completed(run)
    uid = pod["metadata"]["uid"]
    pods_mark, migrations_mark = stage.pods.mark(), stage.migrations.mark()
    start, start_wall = time.monotonic(), time.time()
    async with stage.http.post(stage.migrations_url, json=stage.request_body(run, strategy=strategy)) as response:
        payload = await response.json()
        post = time.monotonic() - start
    result = RunResult(method, round_no, post_s=post, started_at=start)
    if response.status != 202:
        await stage.clean(run)
        result.status, result.error = "rejected", f"{response.status}: {payload}"
        return result
    migration_id = result.migration_id = str(payload["migration_id"])
    done = await stage.migrations.first(
        lambda s: s.name == migration_id and (s.obj.get("status") or {}).get("phase") in TERMINAL,
        since=migrations_mark,
        timeout=STEP_TIMEOUT,
    )
    status = done.obj.get("status") or {}
    result.status = str(status["phase"]).lower()
    result.ordering = status.get("strategy")
    result.skipped = [c["name"] for c in status.get("containers") or [] if c.get("action") == "skip"]
    result.phases_s = phase_durations(status, posted_wall=start_wall, seen_wall=done.wall)
    if result.status != "completed":
        result.error = str(status.get("error") or status.get("message"))
        await stage.clean(run)
        return result

    def of_target(seen: Seen) -> bool:
        return seen.labels.get(MIGRATION_ID_LABEL) == migration_id and seen.type != "DELETED"

    added = await stage.pods.first(of_target, since=pods_mark, timeout=10)
    ready = await stage.pods.first(lambda s: of_target(s) and is_ready(s.obj), since=pods_mark, timeout=10)
    end = max(done.at, ready.at)
    result.wall_s = done.at - start
    result.to_ready_s = ready.at - start
    result.to_target_created_s = added.at - start
    result.ready_to_completed_s = done.at - ready.at
    removal = stage.pods.find(lambda s: s.uid == uid and s.at >= ready.at and _removal_seen(s.obj), since=pods_mark)
    if status.get("strategy") == "make-before-break" and removal is not None:
        result.ready_to_removal_s = removal.at - ready.at
    result.downtime_s = downtime(_of_run(run, stage.pods.log[pods_mark:]), serving_at_start={uid}, start=start, end=end)
    await stage.clean(run)
    return result
