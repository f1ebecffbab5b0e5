"""A PodAdmission that changes nothing: pods are created as sent, evictions go ahead. What the webhooks answer until
the orchestrator's own decisions (capture of an owner's replacement pod, eviction into migration) are wired in."""

from __future__ import annotations

from ai_storage_orchestrator.admission.ports import ALLOW_EVICTION, JSON, EvictionVerdict


class PassThroughAdmission:
    """``PodAdmission`` (``ports.py``) that admits everything unchanged."""

    def mutate_pod_create(self, pod: JSON, namespace: str) -> list[JSON]:
        return []

    async def review_eviction(self, namespace: str, name: str, *, dry_run: bool) -> EvictionVerdict:
        return ALLOW_EVICTION
