"""Order statistics of measured samples (no invented numbers: an empty sample gives None)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no samples."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summary(values: Sequence[float], *, digits: int = 4) -> dict[str, Any]:
    """n, min, median, p90, p99, max and mean of the samples (seconds, milliseconds… whatever they are in)."""
    return {
        "n": len(values),
        "min": rounded(min(values), digits) if values else None,
        "median": rounded(median(values), digits),
        "p90": rounded(percentile(values, 0.90), digits),
        "p99": rounded(percentile(values, 0.99), digits),
        "max": rounded(max(values), digits) if values else None,
        "mean": rounded(statistics.fmean(values), digits) if values else None,
    }


def scaled(values: Sequence[float], factor: float) -> list[float]:
    return [v * factor for v in values]
