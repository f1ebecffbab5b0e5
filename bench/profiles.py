"""cProfile results reduced to their top entries (pyinstrument is not a dependency of the project)."""

from __future__ import annotations

import cProfile
import io
import pstats
from pathlib import Path
from typing import Any

PROJECT = "ai_storage_orchestrator/"
ENTRY_POINTS = ("ai_storage_orchestrator/cli/", "ai_storage_orchestrator/runtime.py")  # whole-process frames
IDLE = ("select.epoll", "poll' of", "{method 'control' of 'select.kqueue'")


def _where(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({function})" if line else function


def top_entries(source: cProfile.Profile | Path, *, limit: int = 15) -> dict[str, Any]:
    """The `limit` functions with the most own time, and with the most cumulative time, idle waiting excluded."""
    stats = pstats.Stats(source if isinstance(source, cProfile.Profile) else str(source), stream=io.StringIO())
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = [
        {"function": _where(key), "calls": nc, "own_s": round(tt, 4), "cumulative_s": round(ct, 4)}
        for key, (_cc, nc, tt, ct, _callers) in table.items()
    ]
    idle = sum(r["own_s"] for r in rows if any(mark in r["function"] for mark in IDLE))
    busy = [r for r in rows if not any(mark in r["function"] for mark in IDLE)]
    total: float = stats.total_tt  # type: ignore[attr-defined]
    return {
        "total_s": round(total, 3),
        "idle_in_event_loop_poll_s": round(idle, 3),
        "by_own_time": sorted(busy, key=lambda r: r["own_s"], reverse=True)[:limit],
        "by_cumulative_time": sorted(busy, key=lambda r: r["cumulative_s"], reverse=True)[:limit],
        "project_by_cumulative_time": sorted(
            (r for r in busy if r["function"].startswith(PROJECT) and not r["function"].startswith(ENTRY_POINTS)),
            key=lambda r: r["cumulative_s"],
            reverse=True,
        )[:limit],
    }


def text_report(source: Path, *, limit: int = 40) -> str:
    """pstats' own listing (own time, then cumulative), for bench/results/profile-*.txt."""
    out = io.StringIO()
    stats = pstats.Stats(str(source), stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue().replace(str(source.parent) + "/", "").replace(str(Path.cwd()) + "/", "")
