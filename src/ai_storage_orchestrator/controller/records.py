"""The PodMigration custom resource: building it from a request, and presenting it as the public migration object
of the REST contract (DESIGN.md §3)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ai_storage_orchestrator import API_GROUP, API_VERSION, conventions
from ai_storage_orchestrator.controller.planning.marking import labelled_move, made_by
from ai_storage_orchestrator.models import Action, MigrationRequest, Phase, Strategy

if TYPE_CHECKING:
    from ai_storage_orchestrator.watchers.state import ClusterState

JSON = dict[str, Any]

MIGRATION_ID_LABEL = conventions.MIGRATION_ID_LABEL  # re-exported: older imports name it here
POD_LABEL = conventions.MIGRATION_POD_LABEL
# On the PodMigration itself: written once, at creation, with the spec. Annotations because the CRD's spec schema
# prunes fields it does not declare and the API server ignores `status` on create (status subresource).
WARNINGS_ANNOTATION = conventions.WARNINGS_ANNOTATION
FORCE_RESTART_ANNOTATION = conventions.FORCE_RESTART_ANNOTATION
FORCE_RESTART = "force_restart"  # its key in MigrationRequest.extra ("true")


def new_migration_id() -> str:
    """12 lowercase hex characters: a valid object name, unique enough cluster-wide, short in pod names."""
    return uuid.uuid4().hex[:12]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def pod_label_value(pod_name: str) -> str:
    """The pod's name as a label value: at most 63 characters, ending in a letter or digit (a pod name may be 253
    long, and a cut one could end in `-` or `.`, which the API server refuses in a label)."""
    return pod_name[:63].rstrip("-.")


def migration_resource(
    request: MigrationRequest,
    migration_id: str,
    *,
    request_id: str | None = None,
    warnings: Sequence[str] = (),
    target_choice: Mapping[str, Any] | None = None,
) -> JSON:
    """The PodMigration for a request. ``target_choice`` (``TargetChoice.to_json()``, snake_case) explains a node the
    orchestrator chose; it is written with the spec, in camelCase, as ``spec.targetChoice``: decided with the request
    and never changed, like the rest of the spec."""
    spec: JSON = {
        "podName": request.pod_name,
        "sourceNode": request.source_node,
        "targetNode": request.target_node,
        "preservePV": request.preserve_pv,
        "timeoutSeconds": request.timeout_seconds,
        "strategy": request.strategy.value,
        "triggeredBy": request.triggered_by,
    }
    if request.ignore_pdb:  # written only when set: records of older versions and clients stay as they were
        spec["ignorePDB"] = True
    if request_id:
        spec["requestId"] = request_id[:128]
    if target_choice is not None:  # only for a chosen node: records of named targets stay as they were
        spec["targetChoice"] = recased(target_choice, _camel)
    annotations: dict[str, str] = {}
    if warnings:
        annotations[WARNINGS_ANNOTATION] = json.dumps(list(warnings))
    if request.extra.get(FORCE_RESTART) == "true":
        annotations[FORCE_RESTART_ANNOTATION] = "true"
    record: JSON = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "PodMigration",
        "metadata": {
            "name": migration_id,
            "namespace": request.pod_namespace,
            "labels": {MIGRATION_ID_LABEL: migration_id, POD_LABEL: pod_label_value(request.pod_name)},
            # Deleting the record mid-move cancels and rolls back; the controller removes this once it has ended.
            "finalizers": [conventions.MIGRATION_FINALIZER],
        },
        "spec": spec,
    }
    if annotations:  # only when there is something to say: records stay as they were otherwise
        record["metadata"]["annotations"] = annotations
    return record


def warnings_of(metadata: JSON) -> list[str]:
    """The warnings recorded at creation (none for a record without them or with an unreadable annotation)."""
    raw = (metadata.get("annotations") or {}).get(WARNINGS_ANNOTATION)
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else []
    except ValueError:
        return []
    return [str(w) for w in parsed] if isinstance(parsed, list) else []


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def recased(value: Any, recase: Callable[[str], str]) -> Any:
    """``value`` with every object key recased (``_camel``/``_snake``); lists and scalars as they are."""
    if isinstance(value, Mapping):
        return {recase(str(k)): recased(v, recase) for k, v in value.items()}
    if isinstance(value, list):
        return [recased(v, recase) for v in value]
    return value


def target_choice_of(migration: JSON) -> JSON | None:
    """How the orchestrator chose the target node (the REST view's ``target_choice``), None for a named target."""
    choice = (migration.get("spec") or {}).get("targetChoice")
    return recased(choice, _snake) if isinstance(choice, Mapping) else None


_PHASES = {phase.value: phase for phase in Phase}


def phase_of(migration: JSON) -> Phase:
    """The recorded phase (Pending before the controller wrote one, or for a value it does not know)."""
    return _PHASES.get((migration.get("status") or {}).get("phase") or "", Phase.PENDING)


def is_active(migration: JSON) -> bool:
    return not phase_of(migration).is_terminal


def active_moves_of(state: ClusterState, namespace: str, pod: str) -> list[JSON]:
    """The active migrations that hold pod `namespace`/`pod`: those moving it, then the one whose target it is (its
    migration-id label). A pod that is still the target of a move must not be moved again: the second move would
    open its own target's gate while the first move's source may still run."""
    held = [m for m in state.migrations_of_pod(namespace, pod) if is_active(m)]
    target = state.pod(namespace, pod)
    creator = state.migration(namespace, labelled_move(target) or "")
    if creator is not None and made_by(target, creator) and is_active(creator) and all(m is not creator for m in held):
        held.append(creator)
    return held


def busy_message(migration: JSON, namespace: str, pod: str) -> str:
    """Why pod `namespace`/`pod` cannot be moved while `migration` is active."""
    name = migration["metadata"]["name"]
    if (migration.get("spec") or {}).get("podName") == pod:
        return f"migration {name} is already active for pod {namespace}/{pod}"
    return f"pod {namespace}/{pod} is the target of migration {name}, which is still active"


def request_of(migration: JSON) -> MigrationRequest:
    spec = migration.get("spec") or {}
    return MigrationRequest(
        pod_name=spec["podName"],
        pod_namespace=migration["metadata"]["namespace"],
        source_node=spec["sourceNode"],
        target_node=spec["targetNode"],
        preserve_pv=bool(spec.get("preservePV", False)),
        timeout_seconds=int(spec.get("timeoutSeconds", 600)),
        strategy=Strategy(spec.get("strategy") or Strategy.AUTO.value),
        triggered_by=str(spec.get("triggeredBy") or "api"),
        ignore_pdb=bool(spec.get("ignorePDB", False)),
        extra={FORCE_RESTART: "true"} if _annotation(migration, FORCE_RESTART_ANNOTATION) == "true" else {},
    )


def _annotation(migration: JSON, name: str) -> Any:
    return ((migration.get("metadata") or {}).get("annotations") or {}).get(name)


def _elapsed(status: JSON, created: str | None) -> dt.timedelta | None:
    """From the start (``startedAt``, else the creation) to ``finishedAt``; None until the migration has finished."""
    start = parse_time(status.get("startedAt") or created)
    end = parse_time(status.get("finishedAt"))
    if start is None or end is None:
        return None
    return end - start


def _duration(status: JSON, created: str | None) -> float | None:
    elapsed = _elapsed(status, created)
    return None if elapsed is None else round(elapsed.total_seconds(), 3)


def _duration_nanoseconds(status: JSON, created: str | None) -> int | None:
    """The duration as Go's ``time.Duration`` writes it in JSON: whole nanoseconds."""
    elapsed = _elapsed(status, created)
    return None if elapsed is None else elapsed // dt.timedelta(microseconds=1) * 1000


_COMPLETED = re.compile(r"terminated \(exit 0\b")


def container_state_word(state: object) -> str:
    """One word for a recorded container state (``ContainerState.describe``): running, completed (terminated with
    exit 0), failed (terminated otherwise), waiting, or unknown."""
    text = str(state or "")
    word = text.split(" ", 1)[0]
    if word == "terminated":
        return "completed" if _COMPLETED.match(text) else "failed"
    return word if word in ("running", "waiting") else "unknown"


def _restart_count(container: Mapping[str, Any]) -> int | None:
    """The restart count the record holds for a container; None (not measured, never a made-up 0) when it holds
    none, as the plan's records do not today."""
    for key in ("restartCount", "restart_count"):
        value = container.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def seed_container_states(status: JSON) -> list[JSON]:
    """The seed's ``container_states``: one ``{name, state, restart_count, should_migrate}`` per planned container,
    in the plan's order; ``should_migrate`` unless the plan leaves the container out (action ``skip``)."""
    states: list[JSON] = []
    for container in status.get("containers") or []:
        if isinstance(container, Mapping) and container.get("name"):
            states.append(
                {
                    "name": str(container["name"]),
                    "state": container_state_word(container.get("state")),
                    "restart_count": _restart_count(container),
                    "should_migrate": container.get("action") != Action.SKIP.value,
                }
            )
    return states


def seed_details(status: JSON, *, created: str | None) -> JSON:
    """The seed's ``details`` block: its field names (and its units: ``duration`` in nanoseconds, like Go's
    ``time.Duration``) for what the migration object also says in ours. Like the seed, which sets it when the
    migration is created, ``start_time`` is the creation time until the controller writes ``startedAt``."""
    return {
        "new_pod_name": status.get("targetPod"),
        "start_time": status.get("startedAt") or created,
        "end_time": status.get("finishedAt"),
        "duration": _duration_nanoseconds(status, created),
        "container_states": seed_container_states(status),
    }


def to_api(migration: JSON) -> JSON:
    """The public migration object (snake_case), as GET /api/migrations/<id> returns it."""
    metadata = migration.get("metadata") or {}
    spec = migration.get("spec") or {}
    status = migration.get("status") or {}
    phase = phase_of(migration)
    error = status.get("error")
    created = metadata.get("creationTimestamp")
    duration = _duration(status, created)
    api: JSON = {
        "migration_id": metadata.get("name"),
        "status": phase.status.value,
        "phase": phase.value,
        "message": status.get("message", "waiting for the controller"),
        "pod_name": spec.get("podName"),
        "pod_namespace": metadata.get("namespace"),
        "source_node": spec.get("sourceNode"),
        "target_node": spec.get("targetNode"),
        "preserve_pv": bool(spec.get("preservePV", False)),
        "ignore_pdb": bool(spec.get("ignorePDB", False)),
        "timeout_seconds": int(spec.get("timeoutSeconds", 600)),
        "strategy": spec.get("strategy", Strategy.AUTO.value),
        "ordering": status.get("strategy"),
        "triggered_by": spec.get("triggeredBy", "api"),
        "cancel_requested": bool(spec.get("cancelRequested", False)),
        "force_restart": _annotation(migration, FORCE_RESTART_ANNOTATION) == "true",
        "warnings": warnings_of(metadata),
        "new_pod_name": status.get("targetPod"),
        "containers": status.get("containers", []),
        "checkpoint": status.get("checkpoint"),
        "resources": status.get("resources"),
        "phase_transitions": status.get("phaseTransitions", []),
        "created_at": created,
        "started_at": status.get("startedAt"),
        # The seed's getMigrationStatus names the start `start_time` (the creation until the controller starts).
        "start_time": status.get("startedAt") or created,
        "finished_at": status.get("finishedAt"),
        "duration_seconds": duration,
        "error": {"reason": error.get("reason"), "message": error.get("message")} if error else None,
        "details": seed_details(status, created=created),
    }
    if status.get("finishedAt"):  # the seed's getMigrationStatus adds `end_time` only once the migration ended
        api["end_time"] = status["finishedAt"]
    choice = target_choice_of(migration)
    if choice is not None:  # only when the orchestrator chose the node: named targets answer exactly as before
        api["target_choice"] = choice
    return api
