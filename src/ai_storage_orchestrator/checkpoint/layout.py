"""Where a checkpoint lives and how one path looks from different containers of a pod (pure).

A checkpoint is the directory ``<mountPath>/.ai-storage/namespaces/<namespace>/checkpoints/<pod>/<migration-id>/`` on
the shared volume, ``<mountPath>`` being where the container chosen by planning mounts it and ``<pod>`` the pod's name
without a ``-migrated-<id>`` suffix, so every migration of one workload lands next to the previous ones (retention
counts them) and never next to a workload of another namespace that shares the export and the pod name:

    manifest.json                      written last, atomically: a directory without it is not a checkpoint
    artifacts/<container>/<path>       each declared artifact, under its absolute path inside <container>
    checksums/<container>/<key>.sha256 per artifact, ``sha256sum -c`` lines for its regular files, named relative to
                                       the artifact's parent directory (``<key>``: see ``checksum_list``)

Before namespaces the layout was ``<mountPath>/.ai-storage/checkpoints/<pod>/<migration-id>/`` (``LEGACY_ROOT``): a
migration prepared by an older orchestrator carries that directory in its status and target pod, and is saved and
restored there; retention never runs over it (another namespace's checkpoints may sit next to it), so legacy
directories stay until an operator removes ``.ai-storage/checkpoints/`` -- safe once no pod's
``checkpoint-path`` annotation points into it.

Containers may mount one volume at different paths (and subPaths), so paths are translated through the volume:
``(volume, path inside the volume)`` is the same file for every container. A ``subPathExpr`` mount is only known to the
kubelet that expands it: no path is translated through one.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ai_storage_orchestrator.conventions import CHECKPOINT_PATH_ANNOTATION as CHECKPOINT_PATH_ANNOTATION

NAMESPACES_ROOT = ".ai-storage/namespaces"
LEGACY_ROOT = ".ai-storage/checkpoints"
MANIFEST_NAME = "manifest.json"
MANIFEST_TMP_NAME = "manifest.json.tmp"
ARTIFACTS_DIR = "artifacts"
CHECKSUMS_DIR = "checksums"
CHECKPOINT_DIR_ENV = "AI_STORAGE_CHECKPOINT_DIR"
MIGRATION_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a DNS label, as Kubernetes requires


def pod_checkpoints_dir(mount_path: str, namespace: str, pod_base: str) -> str:
    """The directory holding every checkpoint of one workload (``namespace``/``pod_base``): retention's root."""
    if not NAMESPACE_PATTERN.match(namespace):
        raise ValueError(f"unexpected namespace {namespace!r}")
    if not pod_base or "/" in pod_base or pod_base in (".", ".."):
        raise ValueError(f"unexpected pod name {pod_base!r}")
    return posixpath.join(posixpath.normpath(mount_path), NAMESPACES_ROOT, namespace, "checkpoints", pod_base)


def checkpoint_dir(mount_path: str, namespace: str, pod_base: str, migration_id: str) -> str:
    if not MIGRATION_ID_PATTERN.match(migration_id):
        raise ValueError(f"unexpected migration id {migration_id!r}")
    return posixpath.join(pod_checkpoints_dir(mount_path, namespace, pod_base), migration_id)


def checksum_list(container: str, artifact: str) -> str:
    """Relative to the checkpoint directory: the ``sha256sum -c`` list of ``artifact``'s regular files. Named by a
    digest of the artifact's path, so no two artifacts' lists collide whatever their paths."""
    key = hashlib.sha256(artifact.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return posixpath.join(CHECKSUMS_DIR, container, f"{key}.sha256")


def artifact_store_path(directory: str, container: str, path: str) -> str:
    """Where artifact ``path`` of ``container`` is kept inside checkpoint ``directory``."""
    return posixpath.join(directory, ARTIFACTS_DIR, container) + path


def within(path: str, base: str) -> str | None:
    """``path`` relative to ``base`` ('' when equal), or None when it is not inside."""
    base = base.rstrip("/") or "/"
    if path == base:
        return ""
    prefix = base if base.endswith("/") else base + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


@dataclass(frozen=True, slots=True)
class Mount:
    container: str
    volume: str
    mount_path: str
    sub_path: str = ""  # "" for the volume's root
    read_only: bool = False
    sub_path_expr: str = ""  # subPathExpr: the real path depends on the container's environment

    @property
    def expression(self) -> bool:
        return bool(self.sub_path_expr)

    def to_spec(self, *, read_only: bool | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.volume, "mountPath": self.mount_path}
        if self.sub_path:
            spec["subPath"] = self.sub_path
        if self.sub_path_expr:
            spec["subPathExpr"] = self.sub_path_expr
        if read_only if read_only is not None else self.read_only:
            spec["readOnly"] = True
        return spec


def all_containers(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]


def container_spec(pod: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    return next((c for c in all_containers(pod.get("spec") or {}) if c.get("name") == name), None)


def mounts_of(container: Mapping[str, Any]) -> list[Mount]:
    result = []
    for mount in container.get("volumeMounts") or []:
        result.append(
            Mount(
                container=str(container.get("name")),
                volume=str(mount.get("name")),
                mount_path=posixpath.normpath(str(mount.get("mountPath") or "/")),
                sub_path=str(mount.get("subPath") or "").strip("/"),
                read_only=bool(mount.get("readOnly", False)),
                sub_path_expr=str(mount.get("subPathExpr") or ""),
            )
        )
    return result


def plain_mount(pod: Mapping[str, Any], volume: str, preferred: str) -> Mount | None:
    """A mount of ``volume`` whose path is known without the kubelet (no subPathExpr): ``preferred``'s, else the first
    read-write one in spec order, else the first read-only one."""
    found = [
        mount
        for container in all_containers(pod.get("spec") or {})
        for mount in mounts_of(container)
        if mount.volume == volume and not mount.expression
    ]
    found.sort(key=lambda m: (m.container != preferred, m.read_only))
    return found[0] if found else None


def mount_covering(container: Mapping[str, Any], path: str) -> Mount | None:
    """The mount of ``container`` that holds ``path`` (the deepest mount point above it), None for its root fs."""
    best: Mount | None = None
    for mount in mounts_of(container):
        if within(path, mount.mount_path) is not None and (
            best is None or len(mount.mount_path) > len(best.mount_path)
        ):
            best = mount
    return best


def volume_path(mount: Mount, path: str) -> str:
    """``path`` (seen by ``mount``'s container) as a path inside the volume, '' for the volume's root; ValueError when
    it is not under the mount, or the mount's subPathExpr leaves the answer to the kubelet."""
    if mount.expression:
        raise ValueError(f"the mount at {mount.mount_path} uses subPathExpr {mount.sub_path_expr!r}")
    rest = within(path, mount.mount_path)
    if rest is None:
        raise ValueError(f"{path} is not under {mount.mount_path}")
    return posixpath.join(mount.sub_path, rest).strip("/") if rest else mount.sub_path


def view_through(mount: Mount, inside_volume: str) -> str | None:
    """The path at which ``mount``'s container sees ``inside_volume``, None when its subPath hides it."""
    if mount.expression:
        return None
    rest = within("/" + inside_volume, "/" + mount.sub_path) if mount.sub_path else inside_volume
    if rest is None:
        return None
    return posixpath.join(mount.mount_path, rest) if rest else mount.mount_path


def running_containers(pod: Mapping[str, Any]) -> set[str]:
    status = pod.get("status") or {}
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    return {str(s.get("name")) for s in statuses if (s.get("state") or {}).get("running") is not None}


@dataclass(frozen=True, slots=True)
class View:
    """A container of the pod and the path at which it sees a file."""

    container: str
    path: str
    writable: bool
    mount_path: str = ""  # where that container mounts the volume the file is on


def views_of(
    pod: Mapping[str, Any], volume: str, inside_volume: str, *, containers: Iterable[str] | None = None
) -> list[View]:
    """Every container (restricted to ``containers`` when given) that sees ``inside_volume`` of ``volume``, in spec
    order."""
    wanted = None if containers is None else set(containers)
    found: list[View] = []
    for container in all_containers(pod.get("spec") or {}):
        name = str(container.get("name"))
        if wanted is not None and name not in wanted:
            continue
        for mount in mounts_of(container):
            if mount.volume != volume:
                continue
            path = view_through(mount, inside_volume)
            if path is not None:
                found.append(View(name, path, not mount.read_only, mount.mount_path))
                break
    return found
