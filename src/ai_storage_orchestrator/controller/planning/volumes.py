"""Which pod volumes survive a move: classification, the claim catalog, and the checkpoint volume.

A volume is *shared persistent* when another node can read it after the pod moves: an inline ``nfs`` volume, or a PVC
whose access modes include ``ReadWriteMany`` and whose PV is not node-bound (``hostPath``/``local``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ai_storage_orchestrator.controller.planning.containers import spec_containers
from ai_storage_orchestrator.conventions import CHECKPOINT_VOLUME_ANNOTATION

RWX = "ReadWriteMany"
RWO_MODES = frozenset({"ReadWriteOnce", "ReadWriteOncePod"})
NODE_BOUND_KINDS = frozenset({"hostPath", "local"})
_INLINE_KINDS = ("nfs", "csi", "hostPath", "local", "emptyDir", "configMap", "secret", "projected", "downwardAPI")
_PV_KINDS = ("nfs", "csi", "hostPath", "local")


@dataclass(frozen=True, slots=True)
class ClaimInfo:
    """What the planner needs to know about a PVC; ``pv_kind`` is None while the claim is unbound.

    ``node_affinity`` is the bound PV's ``spec.nodeAffinity.required.nodeSelectorTerms`` (None when the PV does not
    restrict the nodes that can reach it), ``pv_name`` the bound PV's name.
    """

    access_modes: tuple[str, ...] = ()
    storage_class: str | None = None
    pv_kind: str | None = None
    node_affinity: tuple[Mapping[str, Any], ...] | None = field(default=None, compare=False)
    pv_name: str | None = None


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    """One pod volume. ``kind`` is the inline source, or for a PVC its PV's source (``pvc-unbound`` when unbound)."""

    name: str
    kind: str
    access_modes: tuple[str, ...] = ()
    storage_class: str | None = None
    shared: bool = False
    claim_name: str | None = None
    # The bound PV's required node affinity terms (ORed) and name: which nodes can reach the volume at all.
    node_affinity: tuple[Mapping[str, Any], ...] | None = field(default=None, compare=False)
    pv_name: str | None = None

    @property
    def is_claim(self) -> bool:
        return self.claim_name is not None

    @property
    def persistent(self) -> bool:
        """Outlives the pod: a PVC or an inline NFS export."""
        return self.is_claim or self.kind == "nfs"

    @property
    def node_bound(self) -> bool:
        """Its data lives on one node's disk (hostPath, or a PVC bound to a local/hostPath PV)."""
        return self.kind in NODE_BOUND_KINDS

    @property
    def read_write_once(self) -> bool:
        """A PVC only one node can mount read-write at a time."""
        return self.is_claim and RWX not in self.access_modes and bool(RWO_MODES & set(self.access_modes))

    def describe(self) -> str:
        return f"{self.kind} '{self.name}'" + (f" (PVC {self.claim_name})" if self.claim_name else "")


class VolumeCatalog(Protocol):
    """Looks up PVCs; the I/O layer backs it with informer caches."""

    def claim(self, namespace: str, name: str) -> ClaimInfo | None: ...


class StaticVolumeCatalog:
    """An in-memory catalog keyed by ``(namespace, claim name)``: for tests and dry runs."""

    def __init__(self, claims: Mapping[tuple[str, str], ClaimInfo] | None = None) -> None:
        self._claims = dict(claims or {})

    def claim(self, namespace: str, name: str) -> ClaimInfo | None:
        return self._claims.get((namespace, name))


def pv_source_kind(pv: Mapping[str, Any] | None) -> str | None:
    """``nfs``/``csi``/``hostPath``/``local``/``other`` for a raw PV object, None without one."""
    if pv is None:
        return None
    spec = pv.get("spec") or {}
    return next((kind for kind in _PV_KINDS if spec.get(kind) is not None), "other")


def pv_node_affinity(pv: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], ...] | None:
    """A PV's ``spec.nodeAffinity.required.nodeSelectorTerms``, None when it sets no required node affinity."""
    required = (((pv or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if required is None:
        return None
    return tuple(required.get("nodeSelectorTerms") or ())


def _pv_name(pv: Mapping[str, Any] | None) -> str | None:
    name = ((pv or {}).get("metadata") or {}).get("name")
    return None if name is None else str(name)


def claim_info_from_objects(pvc: Mapping[str, Any], pv: Mapping[str, Any] | None) -> ClaimInfo:
    """Build a ClaimInfo from raw PVC and (bound) PV objects; the PVC's status access modes win when bound."""
    spec = pvc.get("spec") or {}
    status = pvc.get("status") or {}
    modes = status.get("accessModes") or spec.get("accessModes") or []
    storage_class = spec.get("storageClassName")
    bound = pv is not None and status.get("phase") in (None, "Bound")
    return ClaimInfo(
        access_modes=tuple(str(mode) for mode in modes),
        storage_class=None if storage_class is None else str(storage_class),
        pv_kind=pv_source_kind(pv) if bound else None,
        node_affinity=pv_node_affinity(pv) if bound else None,
        pv_name=_pv_name(pv) if bound else None,
    )


def _classify(namespace: str, volume: Mapping[str, Any], catalog: VolumeCatalog) -> VolumeInfo:
    name = str(volume.get("name"))
    claim_ref = volume.get("persistentVolumeClaim")
    if claim_ref is not None:
        claim_name = str(claim_ref.get("claimName"))
        claim = catalog.claim(namespace, claim_name)
        if claim is None or claim.pv_kind is None:
            modes = claim.access_modes if claim else ()
            return VolumeInfo(name, "pvc-unbound", modes, claim.storage_class if claim else None, False, claim_name)
        shared = RWX in claim.access_modes and claim.pv_kind not in NODE_BOUND_KINDS
        return VolumeInfo(
            name,
            claim.pv_kind,
            claim.access_modes,
            claim.storage_class,
            shared,
            claim_name,
            node_affinity=claim.node_affinity,
            pv_name=claim.pv_name,
        )
    kind = next((kind for kind in _INLINE_KINDS if volume.get(kind) is not None), "other")
    return VolumeInfo(name, kind, shared=kind == "nfs")


def classify_pod_volumes(pod: Mapping[str, Any], catalog: VolumeCatalog) -> dict[str, VolumeInfo]:
    """Every volume of ``spec.volumes``, keyed by pod volume name, in spec order."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    volumes = (pod.get("spec") or {}).get("volumes") or []
    return {str(volume.get("name")): _classify(namespace, volume, catalog) for volume in volumes}


class Mount(NamedTuple):
    """A volume use by a container: a ``volumeMount`` or a raw block ``volumeDevice`` (always writable)."""

    volume: str
    path: str
    read_only: bool


def container_mounts(container: Mapping[str, Any]) -> list[Mount]:
    mounts = [
        Mount(str(m.get("name")), str(m.get("mountPath", "")), bool(m.get("readOnly", False)))
        for m in container.get("volumeMounts") or []
    ]
    devices = container.get("volumeDevices") or []
    mounts += [Mount(str(d.get("name")), str(d.get("devicePath", "")), False) for d in devices]
    return mounts


def referenced_volumes(container: Mapping[str, Any]) -> set[str]:
    return {mount.volume for mount in container_mounts(container)}


class CheckpointVolume(NamedTuple):
    volume: str
    mount_path: str
    container: str


def _mount_of(pod_spec: Mapping[str, Any], volume: str, *, writable_only: bool) -> CheckpointVolume | None:
    for _, container in spec_containers(pod_spec):
        for mount in container_mounts(container):
            if mount.volume == volume and not (writable_only and mount.read_only):
                return CheckpointVolume(volume, mount.path, str(container.get("name")))
    return None


def choose_checkpoint_volume(pod: Mapping[str, Any], infos: Mapping[str, VolumeInfo]) -> CheckpointVolume | None:
    """Where a checkpoint goes: the volume named by the ``ai-storage.io/checkpoint-volume`` annotation when it is
    shared and mounted, else the first shared volume (``spec.volumes`` order) some container mounts read-write."""
    spec = pod.get("spec") or {}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    wanted = annotations.get(CHECKPOINT_VOLUME_ANNOTATION)
    if wanted and wanted in infos and infos[wanted].shared:
        chosen = _mount_of(spec, wanted, writable_only=True) or _mount_of(spec, wanted, writable_only=False)
        if chosen is not None:
            return chosen
    for volume in spec.get("volumes") or []:
        name = str(volume.get("name"))
        info = infos.get(name)
        if info is not None and info.shared:
            chosen = _mount_of(spec, name, writable_only=True)
            if chosen is not None:
                return chosen
    return None
