"""API server errors as one exception type with the HTTP status and the Status reason."""

from __future__ import annotations

import json


class KubeApiError(Exception):
    """A failed API call. status 0 means no HTTP answer (connection refused, reset, timed out)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

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
    def retriable(self) -> bool:
        return self.status in (0, 429) or self.status >= 500


def raise_for_status(status: int, body: bytes, what: str) -> None:
    if 200 <= status < 300:
        return
    reason, message = "Unknown", body[:500].decode(errors="replace")
    try:
        parsed = json.loads(body)
        reason = str(parsed.get("reason") or reason)
        message = str(parsed.get("message") or message)
    except (ValueError, AttributeError):
        pass
    raise KubeApiError(status, reason, f"{what}: {message}")
