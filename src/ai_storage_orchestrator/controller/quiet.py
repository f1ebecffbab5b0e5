"""When side writes (Events, informative pod annotations) may go out: once no migration is acting (recorded and not
yet in a terminal phase), or when their hold is over (kube/events.py). A migration's critical path is a chain of API
requests, and every request the API server handles meanwhile delays the next link."""

from __future__ import annotations

import contextlib

from ai_storage_orchestrator.controller.records import phase_of
from ai_storage_orchestrator.watchers.state import ClusterState
from ai_storage_orchestrator.watchers.store import object_key

JSON = dict[str, object]


def acting(migration: JSON | None) -> bool:
    return migration is not None and not phase_of(migration).is_terminal


class ActingMigrations:
    """The keys of the migrations that are acting, kept up to date by the PodMigration cache's listener."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._acting: set[str] = set()
        state.add_listener(state.migrations, self._changed)

    def __len__(self) -> int:
        return len(self._acting)

    def _changed(self, event_type: str, old: JSON | None, new: JSON | None) -> None:
        obj = new or old
        if obj is None:
            return
        key = object_key(obj)
        if event_type != "DELETED" and acting(new):
            self._acting.add(key)
        else:
            self._acting.discard(key)

    async def hold(self, seconds: float) -> None:
        """Return once no migration acts, or after `seconds`."""
        with contextlib.suppress(TimeoutError):
            await self.state.wait_for(lambda: not self._acting, timeout=seconds)
