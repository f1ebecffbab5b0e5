"""API server errors as one exception type with the HTTP status, the Status reason and what the server asked of the
client (``Retry-After``). Which of them are repeated, and when, is decided in ``kube/retrying.py``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

NOT_IMPLEMENTED = 501  # a 5xx that no later attempt can change


class KubeApiError(Exception):
    """A failed API call. status 0 means no HTTP answer (connection refused, reset, timed out); ``sent`` is False
    only when the connection was never established, so the server cannot have acted on the request."""

    def __init__(
        self, status: int, reason: str, message: str, *, retry_after: float | None = None, sent: bool = True
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After), when it did
        self.sent = sent

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        return self.status == 410

    @property
    def blocked_by_disruption_budget(self) -> bool:
        """An eviction refused because a PodDisruptionBudget allows no disruption now."""
        return self.status == 429 and "disruption budget" in self.message.lower()

    @property
    def throttled(self) -> bool:
        """429 from the API server's flow control: refused before it was processed (an eviction's 429 is its
        answer -- a disruption budget forbids it -- not throttling)."""
        return self.status == 429 and not self.blocked_by_disruption_budget

    @property
    def never_sent(self) -> bool:
        """No connection could be made: the server cannot have acted on the request."""
        return self.status == 0 and not self.sent

    @property
    def server_error(self) -> bool:
        return self.status >= 500 and self.status != NOT_IMPLEMENTED

    @property
    def retriable(self) -> bool:
        """Transient: the same request may succeed later with nothing else changed (no HTTP answer, throttled, a
        server error). Whether *this* layer repeats it also depends on the call: see ``kube/retrying.py``."""
        return self.status == 0 or self.throttled or self.server_error


def raise_for_status(status: int, body: bytes, what: str, *, headers: Mapping[str, str] | None = None) -> None:
    if 200 <= status < 300:
        return
    reason, message = "Unknown", body[:500].decode(errors="replace")
    parsed: Any = None
    try:
        parsed = json.loads(body)
        reason = str(parsed.get("reason") or reason)
        message = str(parsed.get("message") or message)
    except (ValueError, AttributeError):
        pass
    retry_after = parse_retry_after((headers or {}).get("Retry-After"), parsed)
    raise KubeApiError(status, reason, f"{what}: {message}", retry_after=retry_after)


def parse_retry_after(header: str | None, status_body: Any = None) -> float | None:
    """Seconds to wait from a ``Retry-After: <seconds>`` header, else from the Status body's
    ``details.retryAfterSeconds`` (the API server sends both); None when neither holds a usable number (an HTTP-date
    form is not used by the API server and reads as none)."""
    candidates: list[Any] = [header]
    if isinstance(status_body, dict) and isinstance(status_body.get("details"), dict):
        candidates.append(status_body["details"].get("retryAfterSeconds"))
    for candidate in candidates:
        if candidate is None or isinstance(candidate, bool):
            continue
        try:
            seconds = float(str(candidate).strip())
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None
