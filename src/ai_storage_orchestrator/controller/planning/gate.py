"""The gate of a pre-warmed target: a first init container that holds the pod's containers until the source is gone.

A checkpoint-restart move creates its target while the source still runs, so the slow part of a pod start (sandbox,
network, volume mounts, the image) is done before the source stops, and a target node that cannot start the pod is
found before the source is touched. The gate is an init container in the image of the first container the target
runs (so a running gate proves that image is on the node), with a ``downwardAPI`` volume that shows it the pod's
``ai-storage.io/handoff`` annotation. It exits when that annotation holds the token whose SHA-256 is in its
environment, or when a knock (an exec writing the token into a volume of its own) does; the orchestrator writes the
token only after the source pod is gone from a live read, so two copies of the trainer never run at once. Only the
hash is in the pod spec: a reader of the spec cannot open the gate, and the token lives in the PodMigration's status
(for a restarted orchestrator) and nowhere else until the hand-off.

Pure: no I/O."""

from __future__ import annotations

import copy
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from ai_storage_orchestrator.bodies import Node, Pod
from ai_storage_orchestrator.conventions import HANDOFF_ANNOTATION

JSON = dict[str, Any]
GATE_CONTAINER = "ai-storage-gate"
GATE_VOLUME = "ai-storage-gate"
GATE_MOUNT = "/ai-storage-gate"
GATE_DIGEST_ENV = "AI_STORAGE_GATE_SHA256"
# When set (seconds since the epoch), the gate opens by itself at that time: only for an owner's pod captured while
# its evicted source may still be stopping (admission/capture.py), see `owned_gate_deadline`.
GATE_DEADLINE_ENV = "AI_STORAGE_GATE_OPEN_AT"
# The knock: an exec into the gate hands it the token (controller/knock.py). The annotation's file is refreshed by
# the kubelet only in a pod sync, and a sync waits for the kubelet's next relist of its containers (every 1 s): 0.8 s
# from the source's stop to the gate's exit on real nodes, where the knock takes one exec. Either opens the gate; the
# annotation stays the durable record.
KNOCK_VOLUME = "ai-storage-gate-knock"
KNOCK_MOUNT = "/ai-storage-gate-knock"
KNOCK_FILE = "token"
# The gate's door: a FIFO in the knock's volume that the gate blocks on, so a knock wakes it at once (no poll).
KNOCK_DOOR = "door"
# Run by the knock's exec, which may be opened ahead of the hand-off: it waits for the token on its stdin (never in
# the command line: the exec's URL is logged), then writes it through the door, or, to a gate without one (made by an
# earlier version, or where `mkfifo` failed), into `token` by a rename. Either way the write ends with the command's
# own exit (`exec`): had the gate seen the token while the command still ran, the gate's exit would kill it (every
# process of a container goes with its first one) and the knock that opened the gate would report exit 137.
KNOCK_COMMAND = [
    "sh",
    "-c",
    "IFS= read -r token; "
    f'if [ -p "$1/{KNOCK_DOOR}" ]; then exec printf %s "$token" > "$1/{KNOCK_DOOR}"; fi; '
    f'printf %s "$token" > "$1/{KNOCK_FILE}.part" && exec mv -f "$1/{KNOCK_FILE}.part" "$1/{KNOCK_FILE}"',
    KNOCK_VOLUME,
    KNOCK_MOUNT,
]
# `$1`: the annotation's directory, `$2`: the knock's. The gate blocks reading its door (a FIFO); a helper polls the
# annotation, the knock's `token` file and the deadline every 0.05 s (`sleep 0.05` is GNU and busybox, `sleep 1` the
# POSIX fallback) and wakes the gate with SIGUSR1 while one of them says open; the gate checks for itself before it
# exits 0. SIGTERM ends it at once (as PID 1 it would otherwise ignore it and a deleted held pod would wait out its
# grace period). Without a FIFO it polls as the helper does. Without `sha256sum` it could never check a token: unless
# it has a deadline to open at (a captured pod's), it exits 127 at once, so that the orchestrator sees a gate that
# cannot run before the source is touched and moves without it.
GATE_SCRIPT = (
    'command -v sha256sum >/dev/null 2>&1 || [ -n "${' + GATE_DEADLINE_ENV + ':-}" ] || '
    "{ echo 'sha256sum not found: the gate cannot check a hand-off' >&2; exit 127; }; "
    'opened() { [ -s "$1" ] || return 1; set -- $(sha256sum "$1"); [ "$1" = "$' + GATE_DIGEST_ENV + '" ]; }; '
    'due() { [ -n "${' + GATE_DEADLINE_ENV + ':-}" ] && [ "$(date +%s)" -ge "$' + GATE_DEADLINE_ENV + '" ]; }; '
    f'open_now() {{ opened "$1/handoff" || opened "$2/{KNOCK_FILE}" || due; }}; '
    "nap() { sleep 0.05 2>/dev/null || sleep 1; }; "
    f'door="$2/{KNOCK_DOOR}"; me=$$; helper=; reader=; '
    "trap 'exit 143' TERM INT; "
    "trap 'kill $helper $reader 2>/dev/null' EXIT; "
    'if rm -f "$door" && mkfifo -m 600 "$door" 2>/dev/null; then '
    "trap : USR1; "
    '( while :; do if open_now "$1" "$2"; then kill -USR1 "$me"; fi; nap; done ) & helper=$!; '
    "while :; do "
    'if [ -z "$reader" ]; then cat "$door" > "$2/knocked" & reader=$!; fi; '
    'wait "$reader"; '
    'if ! kill -0 "$reader" 2>/dev/null; then reader=; if opened "$2/knocked"; then exit 0; fi; fi; '
    'if open_now "$1" "$2"; then exit 0; fi; '
    "done; "
    "fi; "
    'while ! open_now "$1" "$2"; do nap; done'
)
# A captured pod's gate opens by itself this long after the source's grace period, counted from the capture: by then
# the kubelet has killed the evicted source's containers, so the orchestrator being gone cannot hold the pod forever.
OWNED_GATE_MARGIN_SECONDS = 60
GATE_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}}
# A kubelet lists at most this many images in its node status by default (--node-status-max-images): a longer list
# may be cut, so an image absent from it may still be there.
NODE_STATUS_MAX_IMAGES = 50
_COPIED_SECURITY = ("runAsUser", "runAsGroup", "runAsNonRoot", "seLinuxOptions", "seccompProfile", "appArmorProfile")


def new_token(migration_id: str) -> str:
    return f"{migration_id}.{secrets.token_hex(16)}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def prewarm_blocker(*, strategy: str, read_write_once: Iterable[str]) -> str | None:
    """Why this move cannot start its target before the source stops (None: it can)."""
    if strategy != "checkpoint-restart":
        return f"{strategy}: the target starts beside the source anyway"
    claims = sorted(read_write_once)
    if claims:
        return f"volume(s) {', '.join(claims)} can be mounted read-write on one node at a time"
    return None


def _security_context(container: Mapping[str, Any]) -> JSON:
    context: JSON = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    own = container.get("securityContext") or {}
    context.update({key: copy.deepcopy(own[key]) for key in _COPIED_SECURITY if key in own})
    return context


def owned_gate_deadline(now: float, grace_period_seconds: int | None) -> int:
    """When a captured pod's gate opens by itself (seconds since the epoch): the evicted source's grace period (the
    pod's default 30 s when unset) plus a margin, from `now`. No later than a plain eviction would have let the
    owner's replacement run at the same time as a source on a node that stopped answering."""
    grace = 30 if grace_period_seconds is None else max(0, int(grace_period_seconds))
    return int(now) + grace + OWNED_GATE_MARGIN_SECONDS


def gate_container(first: Mapping[str, Any], digest: str, *, open_at: int | None = None) -> JSON:
    env = [{"name": GATE_DIGEST_ENV, "value": digest}]
    if open_at is not None:
        env.append({"name": GATE_DEADLINE_ENV, "value": str(open_at)})
    gate: JSON = {
        "name": GATE_CONTAINER,
        "image": first.get("image"),
        "command": ["sh", "-c", GATE_SCRIPT, GATE_CONTAINER, GATE_MOUNT, KNOCK_MOUNT],
        "env": env,
        "volumeMounts": [
            {"name": GATE_VOLUME, "mountPath": GATE_MOUNT, "readOnly": True},
            {"name": KNOCK_VOLUME, "mountPath": KNOCK_MOUNT},
        ],
        "resources": copy.deepcopy(GATE_RESOURCES),
        "securityContext": _security_context(first),
    }
    if first.get("imagePullPolicy"):
        gate["imagePullPolicy"] = first["imagePullPolicy"]
    return gate


def gate_volumes() -> list[JSON]:
    """The annotation's file, and the knock's directory (an ``emptyDir`` on the node's disk: no mount to wait for)."""
    field = {"fieldPath": f"metadata.annotations['{HANDOFF_ANNOTATION}']"}
    return [
        {"name": GATE_VOLUME, "downwardAPI": {"items": [{"path": "handoff", "fieldRef": field}]}},
        {"name": KNOCK_VOLUME, "emptyDir": {}},
    ]


def with_gate(manifest: Mapping[str, Any], digest: str, *, open_at: int | None = None) -> JSON:
    """The target pod with the gate in front of its init containers (it runs first) and the gate's volume;
    `open_at`: the gate also opens by itself then (`owned_gate_deadline`)."""
    gated: JSON = copy.deepcopy(dict(manifest))
    spec = gated["spec"]
    containers = spec.get("containers") or []
    if not containers:
        raise ValueError("a pod without containers has nothing to hold")
    spec["initContainers"] = [
        gate_container(containers[0], digest, open_at=open_at),
        *(spec.get("initContainers") or []),
    ]
    spec["volumes"] = [*(spec.get("volumes") or []), *gate_volumes()]
    return gated


def without_gate(manifest: Mapping[str, Any]) -> JSON:
    """The pod without a gate of an earlier move (and without its hand-off annotation)."""
    pod: JSON = copy.deepcopy(dict(manifest))
    spec = pod.get("spec") or {}
    if "initContainers" in spec:
        spec["initContainers"] = [c for c in spec["initContainers"] or [] if c.get("name") != GATE_CONTAINER]
        if not spec["initContainers"]:
            del spec["initContainers"]
    if "volumes" in spec:
        spec["volumes"] = [v for v in spec["volumes"] or [] if v.get("name") not in (GATE_VOLUME, KNOCK_VOLUME)]
    (pod.get("metadata") or {}).get("annotations", {}).pop(HANDOFF_ANNOTATION, None)
    return pod


def gated(pod: Mapping[str, Any]) -> bool:
    return any(c.get("name") == GATE_CONTAINER for c in (pod.get("spec") or {}).get("initContainers") or [])


def released(pod: Mapping[str, Any], token: str) -> bool:
    return Pod(dict(pod)).annotations.get(HANDOFF_ANNOTATION) == token


def gate_state(pod: Mapping[str, Any]) -> JSON:
    """The gate container's ``state`` as the kubelet reports it (``{}`` before it reports one)."""
    for status in Pod(dict(pod)).init_container_statuses:
        if status.get("name") == GATE_CONTAINER:
            return dict(status.get("state") or {})
    return {}


def gate_running(pod: Mapping[str, Any]) -> bool:
    """The gate's container runs: the sandbox, its network and volumes are up and the first image is on the node."""
    return "running" in gate_state(pod)


def missing_images(pod: Mapping[str, Any], node: Mapping[str, Any] | None) -> list[str]:
    """Images of the pod that the node's status shows it does not have and may not pull (``imagePullPolicy:
    Never``). Only a complete list proves an absence: an empty one (a node that reports none) or one of the kubelet's
    maximum length proves nothing."""
    if node is None:
        return []
    listed = (Node(dict(node)).status.get("images")) or []
    if not listed or len(listed) >= NODE_STATUS_MAX_IMAGES:
        return []
    present = {name for image in listed for name in image.get("names") or ()}
    spec = pod.get("spec") or {}
    missing = []
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        image = str(container.get("image") or "")
        if container.get("imagePullPolicy") == "Never" and image and not _listed(image, present):
            missing.append(image)
    return list(dict.fromkeys(missing))


def _listed(image: str, present: set[str]) -> bool:
    """A node lists fully qualified names (docker.io/library/x:tag and the digest form); a pod may say x:tag."""
    if image in present:
        return True
    candidates = {f"docker.io/{image}", f"docker.io/library/{image}"}
    if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        candidates |= {f"{c}:latest" for c in (image, *candidates)}
    return bool(candidates & present)
