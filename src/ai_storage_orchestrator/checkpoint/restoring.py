"""How the target pod finds and restores its checkpoint: a transformation of the target pod manifest (pure).

* annotation ``ai-storage.io/checkpoint-path`` = the checkpoint directory;
* env var ``AI_STORAGE_CHECKPOINT_DIR`` in every container = that directory as the container sees it (containers that
  do not mount the shared volume get the path as the checkpoint's own container sees it);
* for each container with artifacts, an init container ``ai-storage-restore-<container>`` (its image, security context
  and resources; the shared volume read-only and the artifact's volumes at their original mount paths) copies the
  artifacts back to their original paths before the main containers start, then checks every restored file against
  the sha256 the manifest records (the artifact's checksum list, ``checksums``): a missing checkpoint manifest, a
  missing file or a different one fails the init container (status 1, the file named on stderr), so the pod never
  starts on a wrong restore. It runs a fixed POSIX ``sh`` script that takes the paths as arguments (nothing
  user-supplied is ever parsed by a shell); tools: ``sh``, ``dirname``, ``mkdir``, ``cp``, ``sha256sum``. It runs
  once per pod (a record in the emptyDir ``ai-storage-restore-state``): init containers run again when a pod's
  sandbox is recreated, and a second restore would put the checkpoint back over what the containers wrote since.
* an artifact's mount with ``subPathExpr`` is given to the init container as it is, with the env entries the
  expression needs (see ``subpath``), so the kubelet puts the restored files where the container will see them.

* hook and artifact annotations of containers the target leaves out are removed; their artifacts are re-declared
  for a target container that mounts the same volume, so the next move carries them again.

An artifact is restored when its volume is part of the target pod; one on a container's root filesystem, or on a
volume only skipped containers used, stays in the checkpoint (reachable through ``AI_STORAGE_CHECKPOINT_DIR``) and is
listed under ``notRestored``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ai_storage_orchestrator.checkpoint.annotations import CheckpointSpec
from ai_storage_orchestrator.checkpoint.checksums import CHECK_FUNCTION
from ai_storage_orchestrator.checkpoint.errors import InvalidCheckpointAnnotation
from ai_storage_orchestrator.checkpoint.layout import (
    ARTIFACTS_DIR,
    CHECKPOINT_DIR_ENV,
    MANIFEST_NAME,
    Mount,
    checksum_list,
    container_spec,
    mount_covering,
    mounts_of,
    view_through,
    views_of,
    volume_path,
)
from ai_storage_orchestrator.checkpoint.subpath import SubPathExprUnsupported, restore_env
from ai_storage_orchestrator.conventions import CHECKPOINT_ARTIFACTS_PREFIX as ARTIFACTS_PREFIX
from ai_storage_orchestrator.conventions import CHECKPOINT_HOOK_PREFIX as HOOK_PREFIX
from ai_storage_orchestrator.conventions import CHECKPOINT_PATH_ANNOTATION

RESTORE_CONTAINER_PREFIX = "ai-storage-restore-"
# The restore runs once per pod: init containers run again when the pod's sandbox is recreated (a node restart),
# and restoring then would put the checkpoint back over what the containers have written since. The restore
# containers record that they restored in an emptyDir that lives as long as the pod.
RESTORE_STATE_VOLUME = "ai-storage-restore-state"
RESTORE_STATE_PATH = "/.ai-storage-restore-state"
RESTORE_STATE_ENV = "AI_STORAGE_RESTORE_STATE"
# argv: ai-storage-restore CHECKPOINT_DIR CONTAINER (PATH CHECKSUM_LIST)...; the lists relative to CHECKPOINT_DIR;
# $AI_STORAGE_RESTORE_STATE: the directory of the once-per-pod record (unset: none kept).
# An artifact whose path already is a directory (a volume's mount point, say) gets the checkpoint's entries inside
# it: the directory's own owner and times stay (a non-root restore cannot change a mount point's), while `cp -p`
# of the directory itself would fail on them.
RESTORE_SCRIPT = (
    """set -eu
dir=$1
container=$2
shift 2
state=${"""
    + RESTORE_STATE_ENV
    + """:-}
if [ -n "$state" ] && [ -e "$state/$container.done" ]; then
  echo "$0: the checkpoint was restored in this pod already: not again (what the containers wrote since stays)" >&2
  exit 0
fi
if [ ! -f "$dir/"""
    + MANIFEST_NAME
    + """" ]; then
  echo "$0: $dir holds no """
    + MANIFEST_NAME
    + """: not a complete checkpoint" >&2
  exit 1
fi
"""
    + CHECK_FUNCTION
    + """while [ $# -ge 2 ]; do
  path=$1
  list=$dir/$2
  shift 2
  parent=$(dirname "$path")
  from=$dir/"""
    + ARTIFACTS_DIR
    + """/$container$path
  mkdir -p "$parent"
  if [ -d "$path" ] && [ ! -L "$path" ] && [ -d "$from" ] && [ ! -L "$from" ]; then
    for entry in "$from"/* "$from"/.[!.]* "$from"/..?*; do
      if [ -e "$entry" ] || [ -L "$entry" ]; then
        cp -R -P -p -f "$entry" "$path/"
      fi
    done
  else
    cp -R -P -p -f "$from" "$parent/"
  fi
  check "$parent" "$list"
done
if [ -n "$state" ] && ! : > "$state/$container.done"; then
  echo "$0: restored, but could not record it in $state: a restart of this pod would restore again" >&2
fi
"""
)
_COPIED_FIELDS = ("imagePullPolicy", "securityContext")
JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Location:
    """Where the checkpoint goes: planning's checkpoint volume, the container whose mount defines the canonical paths,
    and the checkpoint directory as that container sees it."""

    volume: str
    container: str
    mount_path: str
    directory: str
    pod_base: str

    def to_json(self) -> dict[str, Any]:
        return {
            "volume": self.volume,
            "container": self.container,
            "mountPath": self.mount_path,
            "directory": self.directory,
            "podBase": self.pod_base,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Location:
        return cls(
            volume=str(data["volume"]),
            container=str(data["container"]),
            mount_path=str(data["mountPath"]),
            directory=str(data["directory"]),
            pod_base=str(data["podBase"]),
        )

    def mount(self, pod: Mapping[str, Any]) -> Mount | None:
        container = container_spec(pod, self.container)
        if container is None:
            return None
        mounts = [m for m in mounts_of(container) if m.volume == self.volume]
        at_path = [m for m in mounts if m.mount_path == posixpath.normpath(self.mount_path)]
        return next(iter(at_path or mounts), None)

    def inside_volume(self, pod: Mapping[str, Any]) -> str:
        """The checkpoint directory as a path inside the shared volume."""
        mount = self.mount(pod)
        if mount is None:
            raise ValueError(f"container {self.container} of the pod does not mount volume {self.volume}")
        return volume_path(mount, self.directory)


def restore_container_name(container: str) -> str:
    name = RESTORE_CONTAINER_PREFIX + container
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(container.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


def _mutable_containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]


def _set_env(container: dict[str, Any], value: str) -> None:
    env = [e for e in container.get("env") or [] if e.get("name") != CHECKPOINT_DIR_ENV]
    env.append({"name": CHECKPOINT_DIR_ENV, "value": value})
    container["env"] = env


def _restore_container(
    source: Mapping[str, Any],
    *,
    name: str,
    checkpoint_mount: Mount,
    artifact_mounts: list[Mount],
    directory: str,
    paths: list[str],
    runs_on_target: bool,
) -> dict[str, Any]:
    mounts = [checkpoint_mount.to_spec(read_only=True)]
    seen = {checkpoint_mount.mount_path}
    for mount in artifact_mounts:
        if mount.mount_path not in seen:
            # As the artifact's container mounts it, never with more rights (an artifact under a readOnly mount is
            # refused before: annotation parsing, prepare_target_pod).
            mounts.append(mount.to_spec())
            seen.add(mount.mount_path)
    mounts.append({"name": RESTORE_STATE_VOLUME, "mountPath": RESTORE_STATE_PATH})
    pairs = [item for path in paths for item in (path, checksum_list(name, path))]
    init: dict[str, Any] = {
        "name": restore_container_name(name),
        "image": source.get("image"),
        "command": ["sh", "-c", RESTORE_SCRIPT, "ai-storage-restore", directory, name, *pairs],
        "volumeMounts": mounts,
    }
    env = restore_env(source, [m.sub_path_expr for m in artifact_mounts if m.expression])
    init["env"] = [*env, {"name": RESTORE_STATE_ENV, "value": RESTORE_STATE_PATH}]
    for field in _COPIED_FIELDS:
        if source.get(field) is not None:
            init[field] = copy.deepcopy(source[field])
    if runs_on_target and source.get("resources"):
        init["resources"] = copy.deepcopy(source["resources"])
    return init


def _carry_annotations(source_pod: Mapping[str, Any], target: dict[str, Any], spec: CheckpointSpec) -> list[JSON]:
    """Hook and artifact annotations of containers the target leaves out would name containers it does not have:
    their hooks are dropped, and their artifacts move to a container of the target that mounts the same volume (at
    the path it sees), so the next move copies them again."""
    annotations: dict[str, Any] = target["metadata"].setdefault("annotations", {})
    present = {str(c.get("name")) for c in _mutable_containers(target["spec"])}
    regular = {str(c.get("name")) for c in target["spec"].get("containers") or []}
    for key in list(annotations):
        prefix = next((p for p in (HOOK_PREFIX, ARTIFACTS_PREFIX) if key.startswith(p)), None)
        if prefix is not None and key[len(prefix) :] not in present:
            del annotations[key]
    paths = {name: list(found) for name, found in spec.checkpointed_paths().items() if name in present}
    carried: list[JSON] = []
    for artifact in spec.artifacts:
        if artifact.container in present:
            continue
        source = container_spec(source_pod, artifact.container)
        mount = mount_covering(source, artifact.path) if source is not None else None
        if mount is None or mount.expression:
            continue  # on the left-out container's own filesystem: nobody on the target can read it
        # Only a container that may write there: an artifact under a readOnly mount is refused at the next move.
        views = [
            v
            for v in views_of(target, mount.volume, volume_path(mount, artifact.path))
            if v.container in regular and v.writable
        ]
        if not views:
            continue
        view = views[0]
        listed = paths.setdefault(view.container, [])
        if any(view.path == p or view.path.startswith(p + "/") for p in listed):
            continue
        listed[:] = [p for p in listed if not p.startswith(view.path + "/")] + [view.path]
        annotations[ARTIFACTS_PREFIX + view.container] = json.dumps(listed)
        carried.append({"from": artifact.container, "to": view.container, "path": view.path})
    return carried


def prepare_target_pod(
    *, source_pod: Mapping[str, Any], target_pod: Mapping[str, Any], spec: CheckpointSpec, location: Location
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the target pod that finds and restores the checkpoint, a summary for the migration status)."""
    target: dict[str, Any] = copy.deepcopy(dict(target_pod))
    target_spec = target["spec"]
    # Restore containers of an earlier checkpoint would copy stale artifacts over this checkpoint's: replaced.
    replaced = [
        str(c.get("name"))
        for c in target_spec.get("initContainers") or []
        if str(c.get("name")).startswith(RESTORE_CONTAINER_PREFIX)
    ]
    if replaced:
        kept = [c for c in target_spec["initContainers"] if str(c.get("name")) not in replaced]
        if kept:
            target_spec["initContainers"] = kept
        else:
            del target_spec["initContainers"]
    checkpoint_mount = location.mount(source_pod)
    if checkpoint_mount is None or checkpoint_mount.expression:
        raise ValueError(f"container {location.container} does not mount volume {location.volume} without subPathExpr")
    inside = location.inside_volume(source_pod)
    volumes = {str(v.get("name")): v for v in target_spec.get("volumes") or []}
    source_volumes = {str(v.get("name")): v for v in (source_pod.get("spec") or {}).get("volumes") or []}
    target_containers = {str(c.get("name")) for c in target_spec.get("containers") or []}

    restored: list[dict[str, str]] = []
    not_restored: list[dict[str, str]] = []
    init_containers: list[dict[str, Any]] = []
    by_container: dict[str, list[str]] = {}
    for artifact in spec.artifacts:
        by_container.setdefault(artifact.container, []).append(artifact.path)
    for name, paths in by_container.items():
        source = container_spec(source_pod, name)
        assert source is not None  # annotation parsing checked the container exists
        usable: list[str] = []
        mounts: list[Mount] = []
        for path in paths:
            mount = mount_covering(source, path)
            why = None
            if mount is None:
                why = "on the container's own filesystem: the application reads it from the checkpoint directory"
            elif mount.volume not in volumes:
                why = f"volume '{mount.volume}' is not part of the target pod (only skipped containers used it)"
            elif mount.mount_path == checkpoint_mount.mount_path:
                why = "its mount path is the checkpoint volume's mount path"
            if why is not None:
                not_restored.append({"container": name, "path": path, "why": why})
                continue
            assert mount is not None
            if mount.read_only:  # annotation parsing refuses it already: never written through, whoever calls
                key = ARTIFACTS_PREFIX + name
                raise InvalidCheckpointAnnotation(
                    f"annotation {key}: {path} is on the mount of volume '{mount.volume}' at {mount.mount_path}, which"
                    f" container '{name}' mounts read-only: the restore would have to write through it",
                    annotation=key,
                )
            usable.append(path)
            mounts.append(mount)
            restored.append({"container": name, "path": path})
        if usable:
            try:
                init = _restore_container(
                    source,
                    name=name,
                    checkpoint_mount=checkpoint_mount,
                    artifact_mounts=mounts,
                    directory=location.directory,
                    paths=usable,
                    runs_on_target=name in target_containers,
                )
            except SubPathExprUnsupported as error:
                key = ARTIFACTS_PREFIX + name
                raise InvalidCheckpointAnnotation(
                    f"annotation {key}: the restore cannot reproduce a subPathExpr mount: {error}", annotation=key
                ) from error
            init_containers.append(init)

    if init_containers:
        target_spec["initContainers"] = [*init_containers, *(target_spec.get("initContainers") or [])]
        if location.volume not in volumes and location.volume in source_volumes:
            target_spec.setdefault("volumes", []).append(copy.deepcopy(source_volumes[location.volume]))
        if RESTORE_STATE_VOLUME not in volumes:  # an earlier move's is kept: the new pod's emptyDir starts empty
            target_spec.setdefault("volumes", []).append({"name": RESTORE_STATE_VOLUME, "emptyDir": {}})
    elif RESTORE_STATE_VOLUME in volumes:
        _drop_restore_state(target_spec)
    for container in _mutable_containers(target_spec):
        view = None
        for mount in mounts_of(container):
            if mount.volume == location.volume:
                view = view_through(mount, inside)
                if view is not None:
                    break
        _set_env(container, view or location.directory)
    target["metadata"].setdefault("annotations", {})[CHECKPOINT_PATH_ANNOTATION] = location.directory
    carried = _carry_annotations(source_pod, target, spec)
    summary = {
        "annotation": CHECKPOINT_PATH_ANNOTATION,
        "env": CHECKPOINT_DIR_ENV,
        "initContainers": [c["name"] for c in init_containers],
        "restored": restored,
        "notRestored": not_restored,
        "replaced": replaced,
        "carried": carried,
    }
    return target, summary


def without_checkpoint(target_pod: Mapping[str, Any]) -> dict[str, Any]:
    """The target pod without what ``prepare_target_pod`` added (for a checkpoint that could not be written)."""
    target: dict[str, Any] = copy.deepcopy(dict(target_pod))
    spec = target["spec"]
    if "initContainers" in spec:
        spec["initContainers"] = [
            c for c in spec["initContainers"] if not str(c.get("name")).startswith(RESTORE_CONTAINER_PREFIX)
        ]
        if not spec["initContainers"]:
            del spec["initContainers"]
    for container in _mutable_containers(spec):
        if "env" in container:
            container["env"] = [e for e in container["env"] if e.get("name") != CHECKPOINT_DIR_ENV]
            if not container["env"]:
                del container["env"]
    _drop_restore_state(spec)
    (target["metadata"].get("annotations") or {}).pop(CHECKPOINT_PATH_ANNOTATION, None)
    return target


def _drop_restore_state(spec: dict[str, Any]) -> None:
    """The restore containers' record volume, once no restore container is left to use it."""
    if "volumes" in spec:
        spec["volumes"] = [v for v in spec["volumes"] if v.get("name") != RESTORE_STATE_VOLUME]
        if not spec["volumes"]:
            del spec["volumes"]
