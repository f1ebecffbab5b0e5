"""What a caller of the REST API sees of a migration: the migration object minus what `get pods` must not reveal.

Reading a migration needs only `get` on pods in its namespace, so its API view holds nothing a `get pods` caller could
not already read, and in particular nothing the orchestrator obtained with its own `pods/exec`: a checkpoint hook's
output is the workload's (it may print the pod's service-account token). Hooks are shown with an allow-list of fields
(container, command, exit code, duration, output size, timing) -- a field added to hook results later stays hidden
until it is added here on purpose; output-like fields are dropped anywhere in ``checkpoint``; and messages written by
older versions, which appended ``; output: <tail>`` to a failed hook's message, lose that tail. The PodMigration
object itself is unchanged: this is the API's view only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

JSON = dict[str, Any]

HOOK_FIELDS = frozenset(
    {"container", "command", "exitCode", "durationSeconds", "outputBytes", "startedAt", "timedOut", "message"}
)
OUTPUT_FIELDS = frozenset({"outputTail", "output", "stdout", "stderr"})
WITHHELD = "; output withheld (see the orchestrator's log)"
_OLD_OUTPUT_TAIL = re.compile(r"; output: .*\Z", re.DOTALL)


def _redacted_message(value: Any) -> Any:
    return _OLD_OUTPUT_TAIL.sub(WITHHELD, value) if isinstance(value, str) else value


def _without_output(value: Any) -> Any:
    if isinstance(value, Mapping):
        kept: JSON = {}
        for key, item in value.items():
            if key in OUTPUT_FIELDS:
                continue
            if key == "hooks" and isinstance(item, list):
                kept[key] = [_hook(h) for h in item]
            else:
                kept[key] = _without_output(item)
        return kept
    if isinstance(value, list):
        return [_without_output(v) for v in value]
    return value


def _hook(hook: Any) -> Any:
    if not isinstance(hook, Mapping):
        return hook
    kept = {key: value for key, value in hook.items() if key in HOOK_FIELDS}
    if "message" in kept:
        kept["message"] = _redacted_message(kept["message"])
    return kept


def public_migration(migration: Mapping[str, Any]) -> JSON:
    """The migration object as the API answers it (a copy; `migration` is not changed)."""
    view = dict(migration)
    if isinstance(view.get("checkpoint"), Mapping):
        view["checkpoint"] = _without_output(view["checkpoint"])
    if "message" in view:
        view["message"] = _redacted_message(view["message"])
    error = view.get("error")
    if isinstance(error, Mapping) and "message" in error:
        view["error"] = {**error, "message": _redacted_message(error["message"])}
    transitions = view.get("phase_transitions")
    if isinstance(transitions, list):
        view["phase_transitions"] = [
            {**t, "message": _redacted_message(t["message"])} if isinstance(t, Mapping) and "message" in t else t
            for t in transitions
        ]
    return view
