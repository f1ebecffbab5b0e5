"""Kubernetes and structlog time stamps (RFC 3339, UTC) as time.time() seconds, to compare with the bench's clock
(the orchestrator runs on the same host)."""

from __future__ import annotations

import datetime as dt


def epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
