"""The planning layer's VolumeCatalog, answered from the watch caches."""

from __future__ import annotations

from ai_storage_orchestrator.controller.planning.volumes import ClaimInfo, claim_info_from_objects
from ai_storage_orchestrator.watchers.state import ClusterState


class CachedVolumeCatalog:
    def __init__(self, state: ClusterState) -> None:
        self.state = state

    def claim(self, namespace: str, name: str) -> ClaimInfo | None:
        pvc = self.state.claim(namespace, name)
        if pvc is None:
            return None
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        return claim_info_from_objects(pvc, self.state.volume(pv_name) if pv_name else None)
