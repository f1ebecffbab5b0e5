"""When does a copy of the workload serve, and for how long did none serve (downtime), from pod watch events.

Kubernetes' Ready condition is False for a pod one of whose containers has completed (reason ContainersNotReady): the
certification pod's source is never Ready once data-processor has finished its work. So a copy *serves* when it is
not being deleted, its phase is Running, and every container is ready or has completed successfully (exit 0) -- with
at least one ready. For pods without completed containers this is exactly the Ready condition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bench.observer import Seen


def is_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def container_state(pod: Mapping[str, Any], name: str) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == name:
            return str(next(iter(status.get("state") or {"unknown": None})))
    return None


def serves(pod: Mapping[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    containers = status.get("containerStatuses") or []
    ready = sum(1 for c in containers if c.get("ready"))
    completed = sum(1 for c in containers if not c.get("ready") and _exit_code(c) == 0)
    return ready > 0 and ready + completed == len(containers)


def _exit_code(container: Mapping[str, Any]) -> int | None:
    terminated = (container.get("state") or {}).get("terminated") or {}
    code = terminated.get("exitCode")
    return None if code is None else int(code)


def downtime(events: Iterable[Seen], *, serving_at_start: set[str], start: float, end: float) -> float:
    """Seconds within [start, end] during which no copy served; copies are told apart by uid."""
    serving = set(serving_at_start)
    total = 0.0
    empty_since: float | None = None if serving else start
    for seen in sorted(events, key=lambda s: s.at):
        if seen.at < start or seen.at > end:
            continue
        if seen.type != "DELETED" and serves(seen.obj):
            serving.add(seen.uid)
        else:
            serving.discard(seen.uid)
        if serving and empty_since is not None:
            total += seen.at - empty_since
            empty_since = None
        elif not serving and empty_since is None:
            empty_since = seen.at
    if empty_since is not None:
        total += end - empty_since
    return total
