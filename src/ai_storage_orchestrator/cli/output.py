"""Human-readable rendering of the REST payloads (migration object, plan, list). Every function returns lines, so
the commands decide where they go and the tests can compare them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

JSON = dict[str, Any]

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
LIST_HEADERS = ("ID", "NAMESPACE", "POD", "SOURCE", "TARGET", "STATUS", "PHASE", "AGE")
CONTAINER_HEADERS = ("NAME", "KIND", "STATE", "ACTION", "REASON")
_BINARY_UNITS = (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Columns padded to their widest cell, three spaces apart (as kubectl prints them)."""
    cells = [list(headers), *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [_row_line(row, widths) for row in cells]


def _row_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "   ".join(value.ljust(width) for value, width in zip(cells, widths, strict=True)).rstrip()


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    return " ".join(str(value).split())  # one line per row, whatever the value holds


def parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def human_age(seconds: float) -> str:
    """kubectl's AGE column: 45s, 3m20s, 42m, 5h10m, 30h, 3d4h, 12d."""
    total = max(0, int(seconds))
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 120:
        return f"{total}s"
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def age_of(created_at: object, now: dt.datetime) -> str:
    created = parse_time(created_at)
    return human_age((now - created).total_seconds()) if created else "-"


def format_duration(seconds: object) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_cpu(millicores: object) -> str:
    if not isinstance(millicores, int):
        return "-"
    return f"{millicores // 1000}" if millicores % 1000 == 0 else f"{millicores}m"


def format_memory(size: object) -> str:
    if not isinstance(size, int):
        return "-"
    for unit, factor in _BINARY_UNITS:
        if abs(size) >= factor:
            return f"{size // factor}{unit}" if size % factor == 0 else f"{size / factor:.1f}{unit}"
    return str(size)


def format_requests(resources: object) -> str:
    if not isinstance(resources, Mapping):
        return "-"
    return f"cpu {format_cpu(resources.get('cpu_millicores'))}, memory {format_memory(resources.get('memory_bytes'))}"


NO_MIGRATIONS = "No migrations found."


def _list_row(migration: Mapping[str, Any], now: dt.datetime) -> tuple[object, ...]:
    return (
        migration.get("migration_id"),
        migration.get("pod_namespace"),
        migration.get("pod_name"),
        migration.get("source_node"),
        migration.get("target_node"),
        migration.get("status"),
        migration.get("phase"),
        age_of(migration.get("created_at"), now),
    )


def list_lines(migrations: Sequence[Mapping[str, Any]], *, now: dt.datetime | None = None) -> list[str]:
    if not migrations:
        return [NO_MIGRATIONS]
    moment = now or dt.datetime.now(dt.UTC)
    return table(LIST_HEADERS, [_list_row(m, moment) for m in migrations])


class ListPages:
    """The `list` table printed page by page as the pages arrive: the header once, above the first row; a column is
    as wide as its widest cell so far (a later page may widen it, never narrow it). One page alone prints exactly
    as ``list_lines``."""

    def __init__(self, *, now: dt.datetime | None = None) -> None:
        self.now = now or dt.datetime.now(dt.UTC)
        self.widths: list[int] | None = None  # None until the header is out

    def lines(self, migrations: Sequence[Mapping[str, Any]]) -> list[str]:
        rows = [[_cell(value) for value in _list_row(m, self.now)] for m in migrations]
        if not rows:
            return []
        cells = rows if self.widths is not None else [list(LIST_HEADERS), *rows]
        widths = self.widths or [0] * len(LIST_HEADERS)
        self.widths = [max(width, *(len(row[i]) for row in cells)) for i, width in enumerate(widths)]
        return [_row_line(row, self.widths) for row in cells]

    def closing_lines(self) -> list[str]:
        return [NO_MIGRATIONS] if self.widths is None else []


def container_lines(containers: object, *, indent: str = "  ") -> list[str]:
    if not isinstance(containers, list) or not containers:
        return [f"{indent}(none reported yet)"]
    rows = [
        (c.get("name"), c.get("kind"), c.get("state"), c.get("action"), c.get("reason"))
        for c in containers
        if isinstance(c, Mapping)
    ]
    return [indent + line for line in table(CONTAINER_HEADERS, rows)]


def _fields(pairs: Sequence[tuple[str, object]]) -> list[str]:
    width = max(len(name) for name, _ in pairs) + 2
    return [f"{name + ':':<{width}}{_cell(value)}" for name, value in pairs]


def _strategy(migration: Mapping[str, Any]) -> str:
    requested, ordering = migration.get("strategy"), migration.get("ordering")
    if ordering and ordering != requested:
        return f"{requested} (resolved to {ordering})"
    return str(requested or "-")


def _checkpoint(checkpoint: object) -> str | None:
    if not isinstance(checkpoint, Mapping):
        return None
    parts = []
    volume = checkpoint.get("volume")
    if isinstance(volume, Mapping):
        parts.append(_volume(volume))
    if "saved" in checkpoint:
        parts.append("saved" if checkpoint.get("saved") else "nothing saved")
    parts += [f"{k}: {v}" for k, v in checkpoint.items() if k not in ("volume", "saved") and v not in (None, "")]
    return "; ".join(parts) or None


def _volume(volume: Mapping[str, Any]) -> str:
    where = f"volume {volume.get('volume')}"
    if volume.get("mount_path"):
        where += f" at {volume.get('mount_path')}"
    if volume.get("container"):
        where += f" (container {volume.get('container')})"
    return where


def _ignore_pdb(fields: Mapping[str, Any]) -> list[tuple[str, object]]:
    """The `Ignore PDB` line, only when set (most migrations respect disruption budgets)."""
    return [("Ignore PDB", "yes: the source pod is deleted, not evicted")] if fields.get("ignore_pdb") else []


def _choice(choice: object) -> list[tuple[str, object]]:
    text = target_choice_text(choice)
    return [] if text is None else [("Target", text)]


def _resources(resources: object) -> str | None:
    if not isinstance(resources, Mapping):
        return None
    return f"before {format_requests(resources.get('before'))}; after {format_requests(resources.get('after'))}"


def target_choice_text(choice: object) -> str | None:
    """One line on how the orchestrator chose the target node (``target_choice``), None for a named target."""
    if not isinstance(choice, Mapping):
        return None
    counts = f"{choice.get('considered')} node(s) considered, {choice.get('eligible')} eligible"
    chosen = choice.get("chosen")
    if not isinstance(chosen, Mapping):
        return f"no node fits ({counts})"
    raw = chosen.get("score")
    score: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    images = "images already there" if score.get("images_present") else "images to pull"
    allocated = score.get("allocated_after")
    load = f"{allocated:.1%} allocated after the move" if isinstance(allocated, int | float) else "load unknown"
    return (
        f"chosen by the orchestrator: {chosen.get('node')} ({counts}; {images}, {load},"
        f" {score.get('same_workload_pods')} pod(s) of the same workload)"
    )


def headline(migration: Mapping[str, Any]) -> str:
    """One sentence on where a migration stands."""
    ident, status = migration.get("migration_id"), migration.get("status")
    pod = f"{migration.get('pod_namespace')}/{migration.get('pod_name')}"
    nodes = f"{migration.get('source_node')} -> {migration.get('target_node')}"
    duration = format_duration(migration.get("duration_seconds"))
    if status == "completed":
        return f"Migration {ident} completed in {duration}: {pod} now runs as pod {migration.get('new_pod_name')}"
    if status in ("failed", "cancelled"):
        error = migration.get("error") or {}
        why = f": {error.get('reason')}: {error.get('message')}" if error.get("reason") else ""
        return f"Migration {ident} of {pod} ({nodes}) {status} after {duration}{why}"
    return f"Migration {ident} of {pod} ({nodes}) is {status} ({migration.get('phase')})"


def migration_lines(migration: Mapping[str, Any], *, transitions: bool = True) -> list[str]:
    """The detail view of one migration object (``status``, and the summary after ``migrate --wait``)."""
    error = migration.get("error")
    pairs: list[tuple[str, object]] = [
        ("Migration", migration.get("migration_id")),
        ("Pod", f"{migration.get('pod_namespace')}/{migration.get('pod_name')}"),
        ("Nodes", f"{migration.get('source_node')} -> {migration.get('target_node')}"),
        *_choice(migration.get("target_choice")),
        ("Status", f"{migration.get('status')} (phase {migration.get('phase')})"),
        ("Message", migration.get("message")),
        ("Strategy", _strategy(migration)),
        ("Preserve PV", "yes" if migration.get("preserve_pv") else "no"),
        *_ignore_pdb(migration),
        ("Triggered by", migration.get("triggered_by")),
        ("New pod", migration.get("new_pod_name")),
        ("Created", migration.get("created_at")),
        ("Finished", migration.get("finished_at")),
        ("Duration", format_duration(migration.get("duration_seconds"))),
    ]
    if migration.get("cancel_requested") and migration.get("status") not in TERMINAL_STATUSES:
        pairs.append(("Cancel", "requested"))
    if isinstance(error, Mapping):
        pairs.append(("Error", f"{error.get('reason')}: {error.get('message')}"))
    requests = _resources(migration.get("resources"))
    if requests:
        pairs.append(("Requests", requests))
    checkpoint = _checkpoint(migration.get("checkpoint"))
    if checkpoint:
        pairs.append(("Checkpoint", checkpoint))
    lines = [*_fields(pairs), "Containers:", *container_lines(migration.get("containers"))]
    history = migration.get("phase_transitions")
    if transitions and isinstance(history, list) and history:
        rows = [(t.get("time"), t.get("phase"), t.get("message")) for t in history if isinstance(t, Mapping)]
        lines += ["Phases:", *("  " + line for line in table(("TIME", "PHASE", "MESSAGE"), rows))]
    return lines


def accepted_lines(migration: Mapping[str, Any], *, program: str = "ai-storage-orchestrator") -> list[str]:
    ident = migration.get("migration_id")
    return [
        f"Migration {ident} accepted: {migration.get('pod_namespace')}/{migration.get('pod_name')}"
        f" {migration.get('source_node')} -> {migration.get('target_node')} (status {migration.get('status')})",
        f"Follow it with: {program} status {ident} --wait",
    ]


def progress_line(migration: Mapping[str, Any], elapsed: float) -> str:
    return f"[{elapsed:7.1f}s] {migration.get('phase')!s:<16} {_cell(migration.get('message'))}"


def plan_lines(plan: Mapping[str, Any]) -> list[str]:
    """The dry-run answer: what would happen to each container, and every check."""
    request = plan.get("request") or {}
    pod = f"{request.get('pod_namespace')}/{request.get('pod_name')}"
    nodes = f"{request.get('source_node')} -> {request.get('target_node')}"
    volume = plan.get("checkpoint_volume")
    strategy = str(plan.get("strategy"))
    if request.get("strategy") and request.get("strategy") != strategy:
        strategy += f" (requested {request.get('strategy')})"
    if plan.get("strategy_reason"):
        strategy += f": {plan.get('strategy_reason')}"
    resources = plan.get("resources") or {}
    pairs: list[tuple[str, object]] = [
        *_choice(plan.get("target_choice")),
        ("Strategy", strategy),
        ("New pod", plan.get("new_pod_name")),
        ("Preserve PV", "yes" if request.get("preserve_pv") else "no"),
        *_ignore_pdb(request),
        ("Timeout", f"{request.get('timeout_seconds')}s"),
        ("Requests before", format_requests(resources.get("before"))),
        ("Requests after", format_requests(resources.get("after"))),
        ("Checkpoint", _volume(volume) if isinstance(volume, Mapping) else "none"),
    ]
    if plan.get("active_migration"):
        pairs.append(("Active migration", plan.get("active_migration")))
    lines = [f"Plan for {pod} ({nodes}), dry run: nothing was changed", *_fields(pairs)]
    lines += ["Containers:", *container_lines(plan.get("containers"))]
    checks = [c for c in plan.get("checks") or [] if isinstance(c, Mapping)]
    failed = [c for c in checks if not c.get("passed")]
    lines.append(f"Checks: {len(checks) - len(failed)} passed, {len(failed)} failed")
    for check in checks:
        mark = "ok  " if check.get("passed") else "FAIL"
        lines.append(f"  [{mark}] {check.get('name')}: {_cell(check.get('message'))}")
    if plan_accepted(plan):
        lines.append("Result: the migration would be accepted")
    elif plan.get("ok"):
        active = plan.get("active_migration")
        lines.append(f"Result: the migration would be refused: migration {active} is already active for the pod")
    else:
        reasons = ", ".join(sorted({str(c.get("reason")) for c in failed})) or "see above"
        lines.append(f"Result: the migration would be refused ({reasons})")
    return lines


def plan_accepted(plan: Mapping[str, Any]) -> bool:
    """True when submitting the same request now would be accepted."""
    return bool(plan.get("ok")) and not plan.get("active_migration")
