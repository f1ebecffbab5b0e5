"""What a migration step needs from the world, each as a narrow Protocol: the API it writes through, the events it
records, the checkpointer. The runtime passes the real ones (KubeApi behind a leadership fence, EventRecorder,
PVCheckpointer); the fast tests pass small in-memory fakes."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

from ai_storage_orchestrator.checkpoint import CheckpointJob, CheckpointSpec
from ai_storage_orchestrator.kube.resources import Resource

JSON = dict[str, Any]


class ClusterWriter(Protocol):
    """The API calls a migration makes. Reads of the cluster come from the watch caches; these reads exist only for
    the decisive checks that must not trust a cache (is the target still Ready right before the source goes?)."""

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON: ...

    async def create(self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None) -> JSON: ...

    async def merge_patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> JSON: ...

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        uid: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> JSON: ...

    async def evict(self, name: str, *, namespace: str, uid: str | None = None) -> JSON: ...


class EventSink(Protocol):
    def record(self, obj: JSON, *, reason: str, message: str, warning: bool = False) -> None: ...

    def run_in_background(self, work: Coroutine[Any, Any, None]) -> None: ...


class Checkpointer(Protocol):
    """Saves a pod's checkpoint before its source is touched; see ``checkpoint.saving.PVCheckpointer``."""

    def declared(self, pod: JSON) -> CheckpointSpec:
        """What the pod's annotations ask the checkpoint to run and copy (raises ``invalid_checkpoint_annotation``)."""
        ...

    def prepare(
        self,
        *,
        source_pod: JSON,
        target_pod: JSON,
        migration_id: str,
        pod_base: str,
        volume: Mapping[str, Any] | None,
        spec: CheckpointSpec,
    ) -> tuple[JSON, JSON]:
        """During Validating: (the target pod manifest that finds and restores the checkpoint, status.checkpoint)."""
        ...

    async def save(self, job: CheckpointJob) -> JSON:
        """During Checkpointing: write it; the result is merged into status.checkpoint. Raises OrchestratorError."""
        ...
