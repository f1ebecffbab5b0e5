"""Typed, read-only views over the raw JSON objects the watch caches keep (the API server's own camelCase dicts), so
code reads `pod.container_statuses` instead of walking `(x.get(..) or {})` chains. A view copies nothing: it reads
the dict it wraps, which stays the one source of truth (and the cache's memory stays one copy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

JSON = Mapping[str, Any]


def _mapping(value: Any) -> JSON:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> Sequence[JSON]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class Body:
    """Any Kubernetes object: its metadata."""

    raw: JSON

    @property
    def metadata(self) -> JSON:
        return _mapping(self.raw.get("metadata"))

    @property
    def spec(self) -> JSON:
        return _mapping(self.raw.get("spec"))

    @property
    def status(self) -> JSON:
        return _mapping(self.raw.get("status"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "")

    @property
    def uid(self) -> str | None:
        uid = self.metadata.get("uid")
        return str(uid) if uid else None

    @property
    def labels(self) -> Mapping[str, str]:
        return _mapping(self.metadata.get("labels"))

    @property
    def annotations(self) -> Mapping[str, str]:
        return _mapping(self.metadata.get("annotations"))

    @property
    def finalizers(self) -> Sequence[str]:
        value = self.metadata.get("finalizers")
        return [str(f) for f in value] if isinstance(value, list) else []

    @property
    def terminating(self) -> bool:
        """Marked for deletion (it may linger: a grace period, a finalizer)."""
        return bool(self.metadata.get("deletionTimestamp"))

    @property
    def conditions(self) -> Sequence[JSON]:
        return _sequence(self.status.get("conditions"))

    def condition_true(self, kind: str) -> bool:
        return any(c.get("type") == kind and c.get("status") == "True" for c in self.conditions)


class Pod(Body):
    __slots__ = ()

    @property
    def node_name(self) -> str | None:
        node = self.spec.get("nodeName")
        return str(node) if node else None

    @property
    def phase(self) -> str | None:
        phase = self.status.get("phase")
        return str(phase) if phase else None

    @property
    def ready(self) -> bool:
        return self.condition_true("Ready")

    @property
    def container_statuses(self) -> Sequence[JSON]:
        return _sequence(self.status.get("containerStatuses"))

    @property
    def init_container_statuses(self) -> Sequence[JSON]:
        return _sequence(self.status.get("initContainerStatuses"))


class Node(Body):
    __slots__ = ()

    @property
    def ready(self) -> bool:
        return self.condition_true("Ready")
