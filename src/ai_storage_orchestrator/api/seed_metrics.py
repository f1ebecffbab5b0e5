"""``GET /api/v1/metrics``: the seed's migration figures (``types.MigrationMetrics``), computed from migration objects.

Nothing is estimated: the duration is the mean of the recorded ones (``details.duration``, whole nanoseconds like the
seed's ``time.Duration``), and a saving is the mean over completed migrations of (requests before - requests after) /
before x 100, from each one's ``resources``; a figure with nothing to average is null, never 0."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ai_storage_orchestrator.models import Status

JSON = dict[str, Any]
SAVINGS = {"cpu_savings_percentage": "cpu_millicores", "memory_savings_percentage": "memory_bytes"}


def _number(value: Any) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _saving(resources: Any, field: str) -> float | None:
    """(before - after) / before x 100 of one resource; None when the record lacks either or before is not > 0."""
    if not isinstance(resources, Mapping):
        return None
    before, after = resources.get("before"), resources.get("after")
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return None
    was, now = _number(before.get(field)), _number(after.get(field))
    if was is None or now is None or was <= 0:
        return None
    return (was - now) / was * 100


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def seed_metrics(migrations: Iterable[Mapping[str, Any]]) -> JSON:
    """The seed's figures over `migrations` (public migration objects)."""
    listed = list(migrations)
    durations = [
        d for m in listed if isinstance(m.get("details"), Mapping) and type(d := m["details"].get("duration")) is int
    ]
    completed = [m for m in listed if m.get("status") == Status.COMPLETED.value]
    body: JSON = {
        "total_migrations": len(listed),
        "successful_migrations": len(completed),
        "failed_migrations": sum(1 for m in listed if m.get("status") == Status.FAILED.value),
        # Go divides a Duration by a count in integers: so do we.
        "average_duration": sum(durations) // len(durations) if durations else None,
    }
    for key, field in SAVINGS.items():
        body[key] = _mean([s for m in completed if (s := _saving(m.get("resources"), field)) is not None])
    return body
