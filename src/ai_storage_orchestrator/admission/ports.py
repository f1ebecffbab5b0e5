"""What the webhook server asks of the orchestrator: the decisions, pure of HTTP and AdmissionReview encoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

JSON = dict[str, Any]


@dataclass(frozen=True)
class EvictionVerdict:
    """Allowed, or refused with an HTTP code (429 makes `kubectl drain` retry) and a message naming the migration."""

    allowed: bool
    message: str = ""
    code: int = 429


ALLOW_EVICTION = EvictionVerdict(allowed=True)


class PodAdmission(Protocol):
    def mutate_pod_create(self, pod: JSON, namespace: str) -> list[JSON]:
        """RFC 6902 JSONPatch operations for a pod being created (its object as the API server sent it, after the
        built-in mutating plugins); [] leaves it unchanged. Never raises for a pod it has nothing to do with."""
        ...

    async def review_eviction(self, namespace: str, name: str, *, dry_run: bool) -> EvictionVerdict:
        """Whether the eviction of pod `namespace/name` may go ahead; a refusal may have started a migration."""
        ...
