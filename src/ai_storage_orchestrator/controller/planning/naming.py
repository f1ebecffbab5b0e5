"""The target pod's name: ``<base>-migrated-<short id>``, at most 63 characters, never a stacked suffix."""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 63
SHORT_ID_LENGTH = 8
_SUFFIX = "-migrated-"
_EXISTING_SUFFIX = re.compile(r"-migrated-[a-z0-9]+$")


def short_id(migration_id: str) -> str:
    """The first 8 lowercase alphanumerics of the migration id (dashes of a UUID are skipped)."""
    short = "".join(ch for ch in migration_id.lower() if ch.isascii() and ch.isalnum())[:SHORT_ID_LENGTH]
    if not short:
        raise ValueError(f"migration id {migration_id!r} has no alphanumeric characters")
    return short


def base_name(source_name: str) -> str:
    """The source name without a previous ``-migrated-<id>`` suffix."""
    base = source_name
    while _EXISTING_SUFFIX.search(base):
        base = _EXISTING_SUFFIX.sub("", base)
    return base


def target_pod_name(source_name: str, migration_id: str) -> str:
    """``<base>-migrated-<short>``: deterministic for a migration, so "already exists" means the step was done."""
    short = short_id(migration_id)
    room = MAX_NAME_LENGTH - len(_SUFFIX) - len(short)
    base = base_name(source_name)[:room].rstrip("-.")
    if not base:
        return f"migrated-{short}"
    return f"{base}{_SUFFIX}{short}"
