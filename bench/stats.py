"""Order statistics of measured samples (no invented numbers: an empty sample gives None).

The sample-size rule, the one place it is defined: the q-quantile (p99: q = 0.99) rests on enough samples when
n >= 1 / (1 - q), i.e. p99 needs 100 samples, p95 20, p90 10, the median 2. Below that fewer than one sample lies
above the estimate, so it is (an interpolation between) the largest samples: reports print it marked ``≈ max``, and
every percentile they print carries the n it rests on (bench.render)."""

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


def min_samples(fraction: float) -> int:
    """Samples the `fraction`-quantile needs before it is more than the largest samples (the rule above)."""
    return round(1 / (1 - fraction))


def enough_samples(n: int, fraction: float) -> bool:
    return n >= min_samples(fraction)


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
