"""What a pod asks its checkpoint to do, read from its annotations (pure).

``ai-storage.io/checkpoint-hook.<container>``
    JSON array of strings: the argv of a quiesce hook run (exec, no shell) in that container before anything is
    copied, e.g. ``["python", "/scripts/save.py"]``.
``ai-storage.io/checkpoint-hook-timeout``
    seconds each hook may take (default 60).
``ai-storage.io/checkpoint-artifacts.<container>``
    JSON array of absolute paths inside that container that are not on the shared volume (an emptyDir with optimizer
    state, say): they are copied into the checkpoint and restored on the target.

Anything else (a string instead of an array, a relative path, a container the pod does not have) is refused with
reason ``invalid_checkpoint_annotation`` before the migration touches anything. So is an artifact on a ``subPathExpr``
mount whose variables a restore container cannot be given (see ``subpath``): it would be restored to the wrong place;
and one under a mount its container declares ``readOnly: true`` (or on a read-only volume): restoring it would write
where the pod says nobody writes.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ai_storage_orchestrator.checkpoint.errors import InvalidCheckpointAnnotation
from ai_storage_orchestrator.checkpoint.layout import Mount, container_spec, mount_covering, mounts_of, within
from ai_storage_orchestrator.checkpoint.subpath import SubPathExprUnsupported, restore_env
from ai_storage_orchestrator.conventions import (
    CHECKPOINT_ARTIFACTS_PREFIX,
    CHECKPOINT_HOOK_PREFIX,
    CHECKPOINT_HOOK_TIMEOUT_ANNOTATION,
    SKIPPED_CONTAINERS_ANNOTATION,
)

# The old names, still imported by others; the keys are defined in conventions (planning reads the same hook prefix).
HOOK_PREFIX = CHECKPOINT_HOOK_PREFIX
HOOK_TIMEOUT_ANNOTATION = CHECKPOINT_HOOK_TIMEOUT_ANNOTATION
ARTIFACTS_PREFIX = CHECKPOINT_ARTIFACTS_PREFIX

DEFAULT_HOOK_TIMEOUT = 60.0
MAX_HOOK_TIMEOUT = 3600.0
MAX_ARGV_ITEMS = 256
MAX_ARTIFACTS = 64


@dataclass(frozen=True, slots=True)
class Hook:
    container: str
    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Artifact:
    container: str
    path: str  # absolute, normalised, inside `container`


@dataclass(frozen=True, slots=True)
class CheckpointSpec:
    hooks: tuple[Hook, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    hook_timeout: float = DEFAULT_HOOK_TIMEOUT

    @property
    def empty(self) -> bool:
        """Nothing to run and nothing to copy: the checkpoint is only its manifest."""
        return not self.hooks and not self.artifacts

    def checkpointed_paths(self) -> dict[str, tuple[str, ...]]:
        """Container name → the paths its checkpoint copies (planning's ``checkpointed``)."""
        paths: dict[str, tuple[str, ...]] = {}
        for artifact in self.artifacts:
            paths[artifact.container] = (*paths.get(artifact.container, ()), artifact.path)
        return paths

    def to_json(self) -> dict[str, Any]:
        return {
            "hooks": [{"container": h.container, "command": list(h.argv)} for h in self.hooks],
            "hookTimeoutSeconds": self.hook_timeout,
            "artifacts": [{"container": a.container, "path": a.path} for a in self.artifacts],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckpointSpec:
        return cls(
            hooks=tuple(Hook(str(h["container"]), tuple(str(a) for a in h["command"])) for h in data.get("hooks", [])),
            artifacts=tuple(Artifact(str(a["container"]), str(a["path"])) for a in data.get("artifacts", [])),
            hook_timeout=float(data.get("hookTimeoutSeconds", DEFAULT_HOOK_TIMEOUT)),
        )


def _container_names(pod: Mapping[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    return [str(c.get("name")) for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]]


def _json_value(key: str, raw: object) -> object:
    if not isinstance(raw, str):
        raise InvalidCheckpointAnnotation(f"annotation {key} must be a JSON string", annotation=key)
    try:
        return json.loads(raw)
    except ValueError as error:
        raise InvalidCheckpointAnnotation(f"annotation {key} is not valid JSON: {error}", annotation=key) from error
    except RecursionError:  # nested thousands deep: no hook argv or path list looks like that
        raise InvalidCheckpointAnnotation(f"annotation {key} is nested too deeply", annotation=key) from None


def parse_argv(key: str, raw: object) -> tuple[str, ...]:
    """A hook annotation's value: a non-empty JSON array of strings (argv, never a shell string)."""
    value = _json_value(key, raw)
    if not isinstance(value, list) or not value:
        raise InvalidCheckpointAnnotation(
            f'annotation {key} must be a non-empty JSON array of strings (an argv such as ["python", "/save.py"]),'
            f" not {type(value).__name__}",
            annotation=key,
        )
    if len(value) > MAX_ARGV_ITEMS:
        raise InvalidCheckpointAnnotation(f"annotation {key} has more than {MAX_ARGV_ITEMS} items", annotation=key)
    if not all(isinstance(item, str) for item in value):
        raise InvalidCheckpointAnnotation(f"annotation {key} must contain only strings", annotation=key)
    if not value[0] or any("\x00" in item for item in value):
        raise InvalidCheckpointAnnotation(
            f"annotation {key}: the command must be non-empty and contain no NUL character", annotation=key
        )
    return tuple(value)


def normalise_path(key: str, path: object) -> str:
    """An artifact path: absolute, without ``.``/``..`` components or control characters, and not ``/``."""
    if not isinstance(path, str) or not path:
        raise InvalidCheckpointAnnotation(f"annotation {key}: every path must be a non-empty string", annotation=key)
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in path):
        raise InvalidCheckpointAnnotation(
            f"annotation {key}: path {path!r} contains control characters", annotation=key
        )
    if not path.startswith("/"):
        raise InvalidCheckpointAnnotation(f"annotation {key}: path {path!r} is not absolute", annotation=key)
    parts = path.split("/")
    if any(part in (".", "..") for part in parts):
        raise InvalidCheckpointAnnotation(f"annotation {key}: path {path!r} contains . or ..", annotation=key)
    # POSIX keeps a leading "//" apart from "/" (normpath too); no container path means anything by it.
    normal = posixpath.normpath("/" + path.lstrip("/"))
    if normal == "/":
        raise InvalidCheckpointAnnotation(f"annotation {key}: the root directory cannot be an artifact", annotation=key)
    return normal


def parse_paths(key: str, raw: object) -> tuple[str, ...]:
    """An artifacts annotation's value: a JSON array of absolute paths, none inside another."""
    value = _json_value(key, raw)
    if not isinstance(value, list):
        raise InvalidCheckpointAnnotation(
            f"annotation {key} must be a JSON array of absolute paths, not {type(value).__name__}", annotation=key
        )
    if len(value) > MAX_ARTIFACTS:
        raise InvalidCheckpointAnnotation(f"annotation {key} lists more than {MAX_ARTIFACTS} paths", annotation=key)
    paths = list(dict.fromkeys(normalise_path(key, item) for item in value))
    for path in paths:
        for other in paths:
            if other != path and path.startswith(other + "/"):
                raise InvalidCheckpointAnnotation(
                    f"annotation {key}: {path} lies inside {other}, list only {other}", annotation=key
                )
    return tuple(paths)


def parse_timeout(raw: object) -> float:
    key = CHECKPOINT_HOOK_TIMEOUT_ANNOTATION
    try:
        seconds = float(str(raw).strip())
    except ValueError as error:
        raise InvalidCheckpointAnnotation(f"annotation {key} must be a number of seconds", annotation=key) from error
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_HOOK_TIMEOUT:
        raise InvalidCheckpointAnnotation(
            f"annotation {key} must be more than 0 and at most {MAX_HOOK_TIMEOUT:g} seconds", annotation=key
        )
    return seconds


def _container_of(key: str, prefix: str, containers: Sequence[str]) -> str:
    name = key[len(prefix) :]
    if name not in containers:
        raise InvalidCheckpointAnnotation(
            f"annotation {key} names container '{name}', which pod does not have (it has {', '.join(containers)})",
            annotation=key,
        )
    return name


def parse_checkpoint_annotations(pod: Mapping[str, Any]) -> CheckpointSpec:
    """Hooks (in container spec order), artifacts and the hook timeout of ``pod``; raises
    InvalidCheckpointAnnotation (reason ``invalid_checkpoint_annotation``) for a malformed one."""
    annotations: Mapping[str, Any] = (pod.get("metadata") or {}).get("annotations") or {}
    containers = _container_names(pod)
    # SKIPPED_CONTAINERS_ANNOTATION is written by planning on a migrated pod: annotations naming these containers (left
    # out of this pod) are ignored.
    left_out = set(str(annotations.get(SKIPPED_CONTAINERS_ANNOTATION) or "").split(",")) - set(containers) - {""}
    order = {name: index for index, name in enumerate(containers)}
    hooks: list[Hook] = []
    artifacts: list[Artifact] = []
    timeout = DEFAULT_HOOK_TIMEOUT
    for key in sorted(annotations):
        raw = annotations[key]
        prefix = next((p for p in (CHECKPOINT_HOOK_PREFIX, CHECKPOINT_ARTIFACTS_PREFIX) if key.startswith(p)), None)
        if prefix is not None and key[len(prefix) :] in left_out:
            continue
        if key.startswith(CHECKPOINT_HOOK_PREFIX):
            hooks.append(Hook(_container_of(key, CHECKPOINT_HOOK_PREFIX, containers), parse_argv(key, raw)))
        elif key.startswith(CHECKPOINT_ARTIFACTS_PREFIX):
            container = _container_of(key, CHECKPOINT_ARTIFACTS_PREFIX, containers)
            artifacts += [Artifact(container, path) for path in parse_paths(key, raw)]
        elif key == CHECKPOINT_HOOK_TIMEOUT_ANNOTATION:
            timeout = parse_timeout(raw)
    hooks.sort(key=lambda h: order[h.container])
    artifacts.sort(key=lambda a: order[a.container])
    for artifact in artifacts:
        _check_restorable(pod, artifact)
    return CheckpointSpec(hooks=tuple(hooks), artifacts=tuple(artifacts), hook_timeout=timeout)


# Volumes the kubelet fills and keeps read-only, whatever the mount says.
KUBELET_MANAGED_VOLUMES = ("configMap", "secret", "projected", "downwardAPI")


def _read_only_reason(pod: Mapping[str, Any], mount: Mount) -> str | None:
    """Why a restore container cannot write under `mount` (None: it can, as far as the volume goes; the container's
    own ``readOnly`` is checked by ``_check_restorable``)."""
    volumes = ((pod.get("spec") or {}).get("volumes")) or []
    volume = next((v for v in volumes if isinstance(v, Mapping) and v.get("name") == mount.volume), None) or {}
    managed = next((kind for kind in KUBELET_MANAGED_VOLUMES if kind in volume), None)
    if managed is not None:
        return f"{managed} volume '{mount.volume}', which the kubelet keeps read-only"
    if (volume.get("persistentVolumeClaim") or {}).get("readOnly"):
        return f"volume '{mount.volume}', whose claim is mounted read-only"
    return None


def _check_restorable(pod: Mapping[str, Any], artifact: Artifact) -> None:
    """Refuse an artifact that holds another mount of its container (`tar` reads across it, but the restore would
    write those files beneath that mount, where the container does not see them), one on a read-only volume (the
    restore would fail after the source stopped), one under a mount the container declares ``readOnly`` (the restore
    would write through it), and one on a subPathExpr mount whose variables a restore container
    cannot be given."""
    container = container_spec(pod, artifact.container)
    key = CHECKPOINT_ARTIFACTS_PREFIX + artifact.container
    for inner in mounts_of(container) if container is not None else ():
        if within(inner.mount_path, artifact.path):
            raise InvalidCheckpointAnnotation(
                f"annotation {key}: {artifact.path} holds the mount of volume '{inner.volume}' at"
                f" {inner.mount_path}; its files would be restored beneath that mount, where the container does not"
                f" see them: list the paths beside {inner.mount_path} (and inside it) instead",
                annotation=key,
            )
    mount = mount_covering(container, artifact.path) if container is not None else None
    read_only = _read_only_reason(pod, mount) if mount is not None else None
    if read_only is not None:
        raise InvalidCheckpointAnnotation(
            f"annotation {key}: {artifact.path} is on {read_only}; the restore could not write it back on the target"
            " (after the source has stopped): leave it out (the target reads the volume itself)",
            annotation=key,
        )
    if mount is not None and mount.read_only:
        # The restore container would mount the volume read-write to put the files back: a write through a mount
        # the pod declares read-only, which neither the workload nor whoever patched the annotation may do.
        raise InvalidCheckpointAnnotation(
            f"annotation {key}: {artifact.path} is on the mount of volume '{mount.volume}' at {mount.mount_path},"
            f" which container '{artifact.container}' mounts read-only (readOnly: true); the restore would have to"
            " write through it: leave the path out, or list it for a container that mounts the volume read-write",
            annotation=key,
        )
    if container is None or mount is None or not mount.expression:
        return
    try:
        restore_env(container, [mount.sub_path_expr])
    except SubPathExprUnsupported as error:
        raise InvalidCheckpointAnnotation(
            f"annotation {key}: {artifact.path} is on volume mount '{mount.volume}' with subPathExpr"
            f" {mount.sub_path_expr!r}, which the restore could not expand as the kubelet does: {error}",
            annotation=key,
        ) from error
