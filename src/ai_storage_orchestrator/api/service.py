"""What the REST layer needs from the controller: ``controller.service.MigrationService`` satisfies it, tests use a
fake."""

from __future__ import annotations

from typing import Any, Protocol

from ai_storage_orchestrator.models import MigrationRequest, Status

JSON = dict[str, Any]


class MigrationServiceProtocol(Protocol):
    def ready(self) -> tuple[bool, str]: ...

    def dry_run(self, request: MigrationRequest) -> JSON: ...

    async def submit(self, request: MigrationRequest, *, request_id: str | None = None) -> JSON: ...

    def get(self, migration_id: str) -> JSON: ...

    def list(
        self, *, status: Status | None = None, namespace: str | None = None, pod: str | None = None
    ) -> list[JSON]: ...

    async def cancel(self, migration_id: str) -> JSON: ...
