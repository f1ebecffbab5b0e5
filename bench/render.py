"""How the reports print figures: a missing value is "not measured" (with its reason when known), never a number,
and every percentile says on how many samples it rests, marked ``≈ max`` below bench.stats' sample-size rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.stats import enough_samples

NOT_MEASURED = "not measured"
NOT_JUDGED = "not judged"
# summary keys (bench.stats.summary) → quantile and the label reports print
QUANTILES = {"median": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
LABELS = {"median": "p50"}


def missing(reason: str | None = None) -> str:
    return f"{NOT_MEASURED}: {reason}" if reason else NOT_MEASURED


def value(number: Any, unit: str = "", digits: int | None = None, *, reason: str | None = None) -> str:
    """`number` with its unit, or "not measured" (and why) when it is None."""
    if number is None:
        return missing(reason)
    text = f"{number:.{digits}f}" if digits is not None and isinstance(number, int | float) else str(number)
    if not unit:
        return text
    return f"{text}{unit}" if unit.startswith("/") else f"{text} {unit}"


def label(key: str) -> str:
    return LABELS.get(key, key)


def thin(summary: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """The percentiles among `keys` that rest on fewer samples than bench.stats' rule asks (≈ the largest)."""
    n = summary.get("n") or 0
    return [k for k in keys if k in QUANTILES and summary.get(k) is not None and not enough_samples(n, QUANTILES[k])]


def sample_note(summary: Mapping[str, Any], keys: Sequence[str]) -> str:
    """'(n=50; p99 ≈ max)': the samples the percentiles rest on, and which of them are only the largest samples."""
    return "(" + "; ".join([f"n={summary.get('n')}", *(f"{label(k)} ≈ max" for k in thin(summary, keys))]) + ")"


def percentiles(
    summary: Mapping[str, Any] | None,
    keys: Sequence[str] = ("median", "p99"),
    *,
    unit: str = "ms",
    digits: int = 0,
    reason: str | None = None,
) -> str:
    """'84 ms / 136 ms (n=50; p99 ≈ max)' for the figure's label "p50 / p99"; not measured without samples."""
    if not summary or not summary.get("n"):
        return missing(reason or ("no samples" if summary else None))
    shown = " / ".join(value(summary.get(k), unit, digits) for k in keys)
    return f"{shown} {sample_note(summary, keys)}"


def labelled(
    summary: Mapping[str, Any] | None,
    keys: Sequence[str] = ("median", "p99"),
    *,
    unit: str = "ms",
    digits: int | None = None,
    reason: str | None = None,
) -> str:
    """'p50 84 ms / p99 136 ms (n=50; p99 ≈ max)'."""
    if not summary or not summary.get("n"):
        return f"{' / '.join(label(k) for k in keys)} {missing(reason or ('no samples' if summary else None))}"
    shown = " / ".join(f"{label(k)} {value(summary.get(k), unit, digits)}" for k in keys)
    return f"{shown} {sample_note(summary, keys)}"


def cell(summary: Mapping[str, Any], key: str) -> str:
    """One percentile in a table whose row has an n column: the value, marked "≈ max" when it rests on too few."""
    number = summary.get(key)
    if number is None:
        return NOT_MEASURED
    return f"{number} ≈ max" if thin(summary, [key]) else str(number)


def pairs(values: Any, unit: str = "", *, reason: str | None = None) -> str:
    """'a 1, b 2' of a measured mapping; "none" for an empty one, "not measured" when there is none."""
    if values is None:
        return missing(reason)
    if not isinstance(values, Mapping):
        return str(values)
    return ", ".join(f"{key} {value(number, unit.strip())}" for key, number in values.items()) or "none"
