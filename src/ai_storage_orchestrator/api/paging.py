"""Paging of GET /api/migrations, the Kubernetes way: `limit` caps a page, and a page that stops short of the end
carries a `continue` token that asks for the next one.

Keyset paging, not offsets: the token holds the listing key (``schemas.ListKey``) of the last migration served, and
the next page starts with the first migration whose key sorts after it in the newest-first order. A migration created
between two pages is newer than everything already served, so it never shifts, repeats or hides the ones still to
come; one deleted meanwhile is simply absent. The migrations come from the service's watch cache, so a page is cut
from the current listing at every call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ai_storage_orchestrator.api.schemas import ListKey, encode_continue

JSON = dict[str, Any]


def key_of(migration: Mapping[str, Any]) -> ListKey:
    """A migration object's place in the listing: (created_at, migration_id, pod_namespace), newest first."""
    return ListKey(
        created_at=str(migration.get("created_at") or ""),
        migration_id=str(migration.get("migration_id") or ""),
        namespace=str(migration.get("pod_namespace") or ""),
    )


@dataclass(frozen=True, slots=True)
class Page:
    migrations: list[JSON]
    next_key: ListKey | None  # the key to continue after; None on the last page

    def to_json(self) -> JSON:
        """``{"migrations": [...], "count": <items on this page>}``, plus ``"continue"`` when more remain."""
        body: JSON = {"migrations": self.migrations, "count": len(self.migrations)}
        if self.next_key is not None:
            body["continue"] = encode_continue(self.next_key)
        return body


def cut_page(migrations: Iterable[JSON], *, limit: int | None, after: ListKey | None) -> Page:
    """At most `limit` migrations (all without one) that come after `after` in the newest-first order."""
    ordered = sorted(migrations, key=key_of, reverse=True)
    if after is not None:
        ordered = [migration for migration in ordered if key_of(migration) < after]
    if limit is None or len(ordered) <= limit:
        return Page(ordered, None)
    served = ordered[:limit]
    return Page(served, key_of(served[-1]))
