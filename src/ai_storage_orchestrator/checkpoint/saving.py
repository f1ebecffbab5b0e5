"""The PersistentVolume checkpointer: quiesce hooks, artifact copy, verification, manifest, retention.

``prepare`` (during Validating, pure) decides where the checkpoint goes and rewrites the target pod so it finds and
restores it; ``save`` (during Checkpointing) writes it, through exec into the source pod:

1. reset ``<dir>`` (``rm -rf``, ``mkdir -p <dir>/artifacts`` and each artifact's parent in it) -- a re-run after a
   crash starts clean;
2. run each quiesce hook in its container (argv, per-hook timeout); non-zero exit or timeout fails the checkpoint;
3. stream each artifact with tar from a container that can read it into the directory, hashing on the way; what each
   member is goes to a spool (``records``), so memory stays bounded whatever the artifacts hold (``TarLimits``);
4. write each artifact's checksum list (``checksums/``), check the lists, then ``sha256sum -c`` every copied file on
   the volume against them;
5. write ``manifest.json`` last and atomically (extract ``manifest.json.tmp``, ``mv`` it), and check it too;
6. apply retention to the workload's checkpoints (only in the namespaced layout, see ``layout``).

Steps 1 and 5 (with 6's listing) are plain file operations: each runs as one ``sh`` script exec (``batch``), and when
nothing is declared they are the same exec -- the whole checkpoint is one round-trip into the pod, two when retention
deletes. Each exec is a round-trip through the API server and the kubelet on the migration's critical path.

Any failure raises ``CheckpointError`` with a precise reason after removing the partial directory (unless
``keep_failed``) -- a malformed or oversized artifact stream included (``checkpoint_copy_failed``,
``checkpoint_too_large``); the source pod is untouched at that point. When the pod declares no hooks and no artifacts
the checkpoint is only its manifest: if the node cannot exec into the pod at all (the command never starts) that
manifest is skipped with a warning rather than failing the migration -- the pod's state is already on the shared
volume.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import posixpath
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import structlog

from ai_storage_orchestrator import __version__
from ai_storage_orchestrator.checkpoint import batch
from ai_storage_orchestrator.checkpoint import errors as reasons
from ai_storage_orchestrator.checkpoint.annotations import CheckpointSpec, parse_checkpoint_annotations
from ai_storage_orchestrator.checkpoint.archive import Member, archive_failure, stream_archive, write_archive
from ai_storage_orchestrator.checkpoint.batch import Steps
from ai_storage_orchestrator.checkpoint.copying import (
    Endpoint,
    check_reread,
    stream_artifact,
    verify_artifact,
    verify_files,
)
from ai_storage_orchestrator.checkpoint.errors import CheckpointError, InvalidCheckpointAnnotation, write_failure_reason
from ai_storage_orchestrator.checkpoint.layout import (
    ARTIFACTS_DIR,
    CHECKSUMS_DIR,
    MANIFEST_NAME,
    MANIFEST_TMP_NAME,
    artifact_store_path,
    checkpoint_dir,
    container_spec,
    mount_covering,
    plain_mount,
    running_containers,
    views_of,
    volume_path,
)
from ai_storage_orchestrator.checkpoint.manifest import ArtifactFile, manifest_header, serialise_streaming
from ai_storage_orchestrator.checkpoint.quiescing import run_hooks
from ai_storage_orchestrator.checkpoint.records import ArtifactSection, FileRecords
from ai_storage_orchestrator.checkpoint.redaction import redact_output
from ai_storage_orchestrator.checkpoint.restoring import Location, prepare_target_pod
from ai_storage_orchestrator.checkpoint.retention import CLEANUP_TIMEOUT, Listing, apply_retention, parse_listing
from ai_storage_orchestrator.checkpoint.tarstream import TarLimits
from ai_storage_orchestrator.checkpoint.transport import CommandResult, ExecStatus, ExecTransport, run
from ai_storage_orchestrator.conventions import CHECKPOINT_ARTIFACTS_PREFIX
from ai_storage_orchestrator.kube.exec import ExecError

JSON = dict[str, Any]
T = TypeVar("T")
log = structlog.get_logger(__name__)

EXEC_UNAVAILABLE = "exec_unavailable"
# Skipped without an exec: no running container could write the checkpoint (says nothing of the node's exec).
NO_RUNNING_WRITER = "no_running_writer"
WRITING_MANIFEST = "writing manifest.json.tmp"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class CheckpointJob:
    """Everything ``save`` needs, read by the controller from its caches."""

    migration_id: str
    namespace: str
    pod: Mapping[str, Any]  # the source pod as it is now
    checkpoint: Mapping[str, Any]  # status.checkpoint as ``prepare`` recorded it
    decisions: Sequence[Mapping[str, Any]]  # status.containers
    target_node: str
    strategy: str
    time_left: float  # seconds the whole save may take
    phases: Mapping[str, str] = field(default_factory=dict)  # other migrations of this workload: id -> phase
    in_use: frozenset[str] = frozenset()  # checkpoint ids live pods point at

    @property
    def pod_name(self) -> str:
        return str(self.pod["metadata"]["name"])


class _ExecUnavailable(Exception):
    """The checkpoint container cannot run commands at all (exec refused by the node, no such executable)."""


class PVCheckpointer:
    def __init__(
        self,
        transport: ExecTransport,
        *,
        retention: int = 3,
        keep_failed: bool = False,
        version: str = __version__,
        clock: Callable[[], str] = now_iso,
        limits: TarLimits | None = None,
        spool_dir: str | None = None,
    ) -> None:
        self.transport = transport
        self.retention = retention
        self.keep_failed = keep_failed
        self.version = version
        self.clock = clock
        self.limits = limits or TarLimits()
        self.spool_dir = spool_dir  # where file records spill beyond memory (None: tempfile's default)

    # Validating -------------------------------------------------------------------------------------------------
    def declared(self, pod: Mapping[str, Any]) -> CheckpointSpec:
        return parse_checkpoint_annotations(pod)

    def prepare(
        self,
        *,
        source_pod: Mapping[str, Any],
        target_pod: Mapping[str, Any],
        migration_id: str,
        pod_base: str,
        volume: Mapping[str, Any] | None,
        spec: CheckpointSpec,
    ) -> tuple[JSON, JSON]:
        """(target pod manifest, status.checkpoint). ``volume`` is planning's checkpoint volume
        (``volume``/``mount_path``/``container``) or None when the pod has no shared volume."""
        status: JSON = {"volume": dict(volume) if volume else None, "saved": False, "declared": spec.to_json()}
        if volume is None:
            if spec.artifacts:
                raise CheckpointError(
                    "the pod declares checkpoint artifacts but has no shared volume (NFS or ReadWriteMany PVC) to"
                    " save them on",
                    reason=reasons.NO_SHARED_VOLUME,
                )
            return dict(target_pod), status
        location = self._location(source_pod, volume, pod_base, migration_id)
        for artifact in spec.artifacts:
            container = container_spec(source_pod, artifact.container)
            mount = mount_covering(container, artifact.path) if container is not None else None
            if mount is not None and mount.volume == location.volume:
                key = f"{CHECKPOINT_ARTIFACTS_PREFIX}{artifact.container}"
                raise InvalidCheckpointAnnotation(
                    f"annotation {key}: {artifact.path} is on the shared volume '{mount.volume}' already;"
                    " list only paths the move would lose",
                    annotation=key,
                )
        _refuse_users_that_differ(source_pod, location, spec)
        target, restore = prepare_target_pod(source_pod=source_pod, target_pod=target_pod, spec=spec, location=location)
        status.update(location=location.to_json(), directory=location.directory, restore=restore)
        return target, status

    @staticmethod
    def _location(
        source_pod: Mapping[str, Any], volume: Mapping[str, Any], pod_base: str, migration_id: str
    ) -> Location:
        """Planning's checkpoint volume, seen through a mount whose path is known here: planning's container, unless
        it mounts the volume with subPathExpr (the path is the kubelet's to expand), then another container's."""
        name = str(volume["volume"])
        mount = plain_mount(source_pod, name, preferred=str(volume["container"]))
        if mount is None:
            raise CheckpointError(
                f"the shared volume '{name}' is mounted only with subPathExpr, whose path only the kubelet knows:"
                " there is no place to put the checkpoint that the target pod would find",
                reason=reasons.NO_SHARED_VOLUME,
            )
        namespace = str((source_pod.get("metadata") or {}).get("namespace") or "default")
        return Location(
            volume=name,
            container=mount.container,
            mount_path=mount.mount_path,
            directory=checkpoint_dir(mount.mount_path, namespace, pod_base, migration_id),
            pod_base=pod_base,
        )

    # Checkpointing ----------------------------------------------------------------------------------------------
    async def save(self, job: CheckpointJob) -> JSON:
        spec = CheckpointSpec.from_json(job.checkpoint.get("declared") or {})
        location_json = job.checkpoint.get("location")
        if not location_json:
            hooks = await self._within(
                job.time_left,
                run_hooks(self.transport, namespace=job.namespace, pod=job.pod_name, spec=spec, clock=self.clock),
            )
            return {"saved": False, "hooks": [h.to_json() for h in hooks], "note": "no shared volume: nothing written"}
        location = Location.from_json(location_json)
        writer = self._writer(job.pod, location)
        if writer is None:
            message = f"no running container of pod {job.pod_name} mounts volume '{location.volume}' read-write"
            if spec.empty:
                return self._skipped(job, message, reason=NO_RUNNING_WRITER)
            raise CheckpointError(message, reason=reasons.NO_RUNNING_CONTAINER)
        try:
            result, listing = await self._within(job.time_left, self._save(job, spec, location, writer))
        except _ExecUnavailable as error:
            return self._skipped(job, str(error))
        except CheckpointError:
            await self._discard(job, writer)
            raise
        result["retention"] = await self._apply_retention(job, location, writer, listing)
        return result

    async def _within(self, seconds: float, work: Coroutine[Any, Any, T]) -> T:
        if seconds <= 0:
            work.close()
            raise CheckpointError("the migration ran out of time before its checkpoint", reason=reasons.TIMED_OUT)
        try:
            async with asyncio.timeout(seconds):
                return await work
        except TimeoutError as error:
            raise CheckpointError(
                f"the checkpoint did not finish within the {seconds:.0f}s left of the migration's timeout",
                reason=reasons.TIMED_OUT,
            ) from error
        except ExecError as error:
            raise CheckpointError(f"exec failed: {error}", reason=reasons.EXEC_FAILED) from error

    def _skipped(self, job: CheckpointJob, message: str, *, reason: str = EXEC_UNAVAILABLE) -> JSON:
        log.warning("checkpoint.skipped", migration_id=job.migration_id, reason=reason, message=message)
        return {"saved": False, "skipped": reason, "message": message}

    @staticmethod
    def _writer(pod: Mapping[str, Any], location: Location) -> Endpoint | None:
        """A running container that mounts the shared volume read-write, the planned one first."""
        try:
            inside = location.inside_volume(pod)
        except ValueError:
            return None
        views = [v for v in views_of(pod, location.volume, inside, containers=running_containers(pod)) if v.writable]
        views.sort(key=lambda v: v.container != location.container)
        return Endpoint(views[0].container, views[0].path, views[0].mount_path) if views else None

    @staticmethod
    def _reader(pod: Mapping[str, Any], container: str, path: str) -> Endpoint | None:
        """A running container that sees ``path`` of ``container``: itself, or one mounting the same volume."""
        running = running_containers(pod)
        if container in running:
            return Endpoint(container, path)
        spec = container_spec(pod, container)
        mount = mount_covering(spec, path) if spec is not None else None
        if mount is None or mount.expression:
            return None
        views = views_of(pod, mount.volume, volume_path(mount, path), containers=running)
        return Endpoint(views[0].container, views[0].path) if views else None

    async def _exec(self, job: CheckpointJob, container: str, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        return await run(
            self.transport, namespace=job.namespace, pod=job.pod_name, container=container, argv=argv, **kwargs
        )

    async def _write(self, job: CheckpointJob, container: str, argv: Sequence[str], what: str, **kwargs: Any) -> None:
        result = await self._exec(job, container, argv, **kwargs)
        if not result.success:
            text = result.stderr.strip() or result.status.message
            raise CheckpointError(f"{what} failed ({result.describe()})", reason=write_failure_reason(text))

    async def _save(
        self, job: CheckpointJob, spec: CheckpointSpec, location: Location, writer: Endpoint
    ) -> tuple[JSON, Listing | None]:
        """Write the checkpoint; (the save's result, the listing retention needs -- None in the legacy layout).

        Exec round-trips into the source pod: one script resets the directory (``batch``), then each hook, each
        artifact copy (two execs at once), the checksum lists, each artifact's check, and one script writes, renames
        and re-reads the manifest and lists the workload's checkpoints. When nothing is declared (no hook, no
        artifact) the reset is part of that last script: the whole checkpoint is one exec."""
        started, created_at = time.monotonic(), self.clock()
        directory = writer.path
        mkdirs = [
            posixpath.join(directory, ARTIFACTS_DIR),
            *dict.fromkeys(
                artifact_store_path(directory, a.container, posixpath.dirname(a.path)) for a in spec.artifacts
            ),
        ]
        if not spec.empty:
            self._reset_failure(await self._script(job, writer, mkdirs=mkdirs), writer, mkdirs, empty=False)
        hooks = await run_hooks(self.transport, namespace=job.namespace, pod=job.pod_name, spec=spec, clock=self.clock)
        with FileRecords(max_entries=self.limits.max_entries, directory=self.spool_dir) as records:
            stream_bytes, copy_seconds = await self._copy_artifacts(job, spec, writer, records)
            checksums = await self._write_checksums(job, writer, records)
            for section in records.sections:
                await verify_artifact(
                    self.transport,
                    namespace=job.namespace,
                    pod=job.pod_name,
                    container=writer.container,
                    checkpoint_dir=directory,
                    section=section,
                )
            header = manifest_header(
                migration_id=job.migration_id,
                pod=job.pod,
                target_node=job.target_node,
                strategy=job.strategy,
                decisions=job.decisions,
                location={**location.to_json(), "writtenBy": writer.container},
                hooks=hooks,
                checksums=checksums,
                totals={"files": records.file_count, "bytes": records.file_bytes},
                created_at=created_at,
                finished_at=self.clock(),
                version=self.version,
            )
            digest, listing = await self._write_manifest(
                job,
                writer,
                header,
                records,
                mkdirs=mkdirs if spec.empty else None,
                root=self._retention_root(job, location, writer),
            )
            summary = {
                (s.container, s.artifact): {"files": s.file_count, "bytes": s.file_bytes} for s in records.sections
            }
            copied, files = records.file_bytes, records.file_count
        log.info("checkpoint.saved", directory=location.directory, files=files, bytes=copied)
        return {
            "saved": True,
            "directory": location.directory,
            "manifest": posixpath.join(location.directory, MANIFEST_NAME),
            "manifestSha256": digest,
            "writtenBy": writer.container,
            "hooks": [h.to_json() for h in hooks],
            "artifacts": [
                {
                    "container": a.container,
                    "path": a.path,
                    **summary.get((a.container, a.path), {"files": 0, "bytes": 0}),
                }
                for a in spec.artifacts
            ],
            "bytesCopied": copied,
            "streamBytes": stream_bytes,
            "copySeconds": round(copy_seconds, 3),
            "throughputBytesPerSecond": int(stream_bytes / copy_seconds) if copy_seconds > 0 else None,
            "durationSeconds": round(time.monotonic() - started, 3),
            "createdAt": created_at,
            "finishedAt": header["finishedAt"],
        }, listing

    async def _script(
        self,
        job: CheckpointJob,
        writer: Endpoint,
        *,
        mkdirs: Sequence[str] | None = None,
        manifest: Member | None = None,
        root: str | None = None,
    ) -> tuple[Steps, bool]:
        """Run ``batch.SCRIPT`` in the writer: the reset (``mkdirs`` given) and/or the manifest's write (``manifest``
        given, extracted from stdin) and the listing of ``root``; (its steps, whether it took all of stdin)."""
        argv = batch.argv(
            base=writer.base,
            directory=writer.path,
            mkdirs=mkdirs,
            manifest=(posixpath.join(writer.path, MANIFEST_TMP_NAME), posixpath.join(writer.path, MANIFEST_NAME))
            if manifest is not None
            else None,
            root=root,
            name=MANIFEST_NAME,
        )
        if manifest is None:
            return batch.Steps.read(await self._exec(job, writer.container, argv)), True
        try:
            result, accepted = await stream_archive(
                self.transport,
                namespace=job.namespace,
                pod=job.pod_name,
                container=writer.container,
                argv=argv,
                members=[manifest],
                mtime=time.time(),
                what=WRITING_MANIFEST,
            )
        except ExecError as error:
            if mkdirs is None:
                raise
            # The checkpoint's only exec (nothing declared) could not be carried out -- a node without exec may
            # refuse an exec with stdin this way instead of reporting a status: a command that never started, as
            # the exec without stdin this script replaced reported it (skipped, the save's documented fallback).
            return batch.Steps.read(CommandResult(ExecStatus(None, f"exec failed: {error}"), b"", "", "")), False
        return batch.Steps.read(result), accepted

    def _reset_failure(
        self, outcome: tuple[Steps, bool], writer: Endpoint, mkdirs: Sequence[str], *, empty: bool
    ) -> None:
        """CheckpointError (``_ExecUnavailable`` for a checkpoint with nothing declared, when the writer cannot run
        commands at all) if the reset's steps failed: clearing the directory, or creating one of ``mkdirs``."""
        steps, _ = outcome
        _unsafe_path_failure(steps, writer)
        status, directory = steps.status, writer.path
        failed = steps.failed
        if failed is None and not steps.result.success:
            if status.exit_code is None:
                message = f"cannot run commands in container {writer.container}: {redact_output(status.message)}"
                if empty:
                    raise _ExecUnavailable(message)
                raise CheckpointError(message, reason=reasons.EXEC_FAILED)
            failed = batch.RESET  # the script ended before its first step: say so as its first step's failure
        if failed == batch.RESET:
            reset = steps.alone(batch.RESET)
            raise CheckpointError(
                f"clearing {directory} failed ({reset.describe()})", reason=write_failure_reason(reset.stderr)
            )
        for index, target in enumerate(mkdirs):
            if failed == batch.mkdir_step(index):
                created = steps.alone(failed)
                what = f"creating {directory}" if index == 0 else f"creating {target}"
                text = created.stderr.strip() or created.status.message
                raise CheckpointError(f"{what} failed ({created.describe()})", reason=write_failure_reason(text))

    async def _copy_artifacts(
        self, job: CheckpointJob, spec: CheckpointSpec, writer: Endpoint, records: FileRecords
    ) -> tuple[int, float]:
        stream_bytes, seconds = 0, 0.0
        for artifact in spec.artifacts:
            reader = self._reader(job.pod, artifact.container, artifact.path)
            if reader is None:
                raise CheckpointError(
                    f"no running container of pod {job.pod_name} can read artifact {artifact.path} of container"
                    f" {artifact.container}",
                    reason=reasons.NO_RUNNING_CONTAINER,
                )
            parent = artifact_store_path(writer.path, artifact.container, posixpath.dirname(artifact.path))
            stats = await stream_artifact(
                self.transport,
                namespace=job.namespace,
                pod=job.pod_name,
                source=reader,
                destination=Endpoint(writer.container, parent),
                container=artifact.container,
                declared=artifact.path,
                records=records,
                limits=self.limits,
            )
            stream_bytes += stats.stream_bytes
            seconds += stats.seconds
            log.info(
                "checkpoint.artifact_copied",
                container=artifact.container,
                path=artifact.path,
                files=stats.files,
                bytes=stats.file_bytes,
                seconds=round(stats.seconds, 3),
            )
        return stream_bytes, seconds

    async def _write_checksums(self, job: CheckpointJob, writer: Endpoint, records: FileRecords) -> list[JSON]:
        """Every artifact's checksum list under ``checksums/``, checked; their entries for the manifest."""
        sections = records.sections
        if not sections:
            return []
        containers = dict.fromkeys(s.container for s in sections)
        members = [
            Member(CHECKSUMS_DIR),
            *(Member(posixpath.join(CHECKSUMS_DIR, c)) for c in containers),
            *(Member(s.list_path, s.list_size, partial(records.checksum_lines, s)) for s in sections),
        ]
        await write_archive(
            self.transport,
            namespace=job.namespace,
            pod=job.pod_name,
            container=writer.container,
            directory=writer.path,
            members=members,
            mtime=time.time(),
            what="writing the checksum lists",
        )
        await verify_files(
            self.transport,
            namespace=job.namespace,
            pod=job.pod_name,
            container=writer.container,
            checkpoint_dir=writer.path,
            files=[_list_file(s) for s in sections],
        )
        return [
            {
                "container": s.container,
                "artifact": s.artifact,
                "list": s.list_path,
                "sha256": s.list_sha256,
                "size": s.list_size,
                "files": s.file_count,
            }
            for s in sections
        ]

    async def _write_manifest(
        self,
        job: CheckpointJob,
        writer: Endpoint,
        header: JSON,
        records: FileRecords,
        *,
        mkdirs: Sequence[str] | None,
        root: str | None,
    ) -> tuple[str, Listing | None]:
        """Stream ``manifest.json.tmp`` (sized and hashed by a first pass over the records), rename it, check it, list
        ``root`` for retention -- one exec, which resets the directory first when ``mkdirs`` is given; (the
        manifest's sha256, the listing: None without ``root``)."""

        def chunks() -> Iterator[bytes]:
            return serialise_streaming(header, (f.to_json() for f in records.all_files()))

        size, digest = 0, hashlib.sha256()
        for chunk in chunks():
            size += len(chunk)
            digest.update(chunk)
        outcome = await self._script(
            job, writer, mkdirs=mkdirs, manifest=Member(MANIFEST_TMP_NAME, size, chunks), root=root
        )
        steps, accepted = outcome
        _unsafe_path_failure(steps, writer)
        if mkdirs is not None:
            self._reset_failure(outcome, writer, mkdirs, empty=True)
        if steps.failed in (None, batch.EXTRACT) and not steps.result.success:
            archive_failure(steps.result, accepted, WRITING_MANIFEST, text=steps.result.stderr)
        if not accepted:
            archive_failure(steps.result, accepted, WRITING_MANIFEST)
        if steps.failed == batch.RENAME:
            renamed = steps.alone(batch.RENAME)
            text = renamed.stderr.strip() or renamed.status.message
            raise CheckpointError(
                f"renaming manifest.json.tmp failed ({renamed.describe()})", reason=write_failure_reason(text)
            )
        verified = steps.alone(batch.VERIFY)
        if steps.failed in (batch.LIST, batch.FOUND):  # the manifest is written and read back: retention's problem
            verified = CommandResult(ExecStatus(0), verified.stdout, "", "")
        check = ArtifactFile("", "", MANIFEST_NAME, "file", size, digest.hexdigest(), MANIFEST_NAME)
        check_reread([check], verified)
        if root is None:
            return digest.hexdigest(), None
        if steps.failed is not None:
            return digest.hexdigest(), Listing(
                [], set(), f"listing {root} failed ({steps.alone(steps.failed).describe()})"
            )
        if not steps.ran(batch.FOUND):  # ls failed: no such directory, nothing to retain
            return digest.hexdigest(), Listing([], set())
        return digest.hexdigest(), parse_listing(steps.output(batch.LIST), steps.output(batch.FOUND))

    async def _discard(self, job: CheckpointJob, writer: Endpoint) -> None:
        """Remove a failed checkpoint's directory (best effort: it has no manifest, so it is never taken for one)."""
        if self.keep_failed:
            return
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT):
                await self._exec(job, writer.container, batch.remove_argv(base=writer.base, paths=[writer.path]))
        except (TimeoutError, ExecError) as error:
            log.warning("checkpoint.discard_failed", directory=writer.path, error=str(error))

    @staticmethod
    def _retention_root(job: CheckpointJob, location: Location, writer: Endpoint) -> str | None:
        """The directory of this workload's checkpoints retention works on, as the writer sees it -- None in the
        legacy layout (a migration prepared before the upgrade), whose parent other namespaces' checkpoints share."""
        namespaced = checkpoint_dir(location.mount_path, job.namespace, location.pod_base, job.migration_id)
        return posixpath.dirname(writer.path) if location.directory == namespaced else None

    async def _apply_retention(
        self, job: CheckpointJob, location: Location, writer: Endpoint, listing: Listing | None
    ) -> JSON:
        """Retention over this workload's checkpoints, from the listing the manifest's exec took -- only in the
        namespaced layout: a directory of the legacy one shares its parent with other namespaces' checkpoints."""
        root = self._retention_root(job, location, writer)
        if root is None:
            log.info("checkpoint.retention", kept=[], deleted=[], skipped="legacy layout", directory=location.directory)
            return {"skipped": "legacy layout: not namespaced", "kept": [], "deleted": [], "limit": self.retention}
        return await apply_retention(
            self.transport,
            namespace=job.namespace,
            pod=job.pod_name,
            container=writer.container,
            root=root,
            base=writer.base,
            current=job.migration_id,
            phases=job.phases,
            in_use=job.in_use,
            retention=self.retention,
            keep_failed=self.keep_failed,
            listing=listing,
        )


def _list_file(section: ArtifactSection) -> ArtifactFile:
    """A checksum list as a file to re-read (size and sha256) on the volume."""
    return ArtifactFile(
        section.container,
        section.artifact,
        section.list_path,
        "file",
        section.list_size,
        section.list_sha256,
        section.list_path,
    )


def _unsafe_path_failure(steps: batch.Steps, writer: Endpoint) -> None:
    """CheckpointError (`checkpoint_path_unsafe`) when the script refused the checkpoint's path: a directory in it,
    below the volume's mount point, is a symbolic link (planted by another writer of the shared volume, say)."""
    if steps.failed == batch.GUARD:
        result = steps.result
        text = redact_output(result.stderr, truncated=result.stderr_truncated) or redact_output(steps.status.message)
        raise CheckpointError(
            f"the checkpoint directory {writer.path} in container {writer.container} is not safe to write: {text}",
            reason=reasons.PATH_UNSAFE,
        )


def _run_as_user(pod: Mapping[str, Any], container: Mapping[str, Any]) -> int | None:
    """The user a container runs as when the pod spec says it (its own securityContext, else the pod's); None when
    only the image knows."""
    for context in (container.get("securityContext"), (pod.get("spec") or {}).get("securityContext")):
        user = (context or {}).get("runAsUser")
        if isinstance(user, int) and not isinstance(user, bool):
            return user
    return None


def _refuse_users_that_differ(pod: Mapping[str, Any], location: Location, spec: CheckpointSpec) -> None:
    """Artifacts are written through the checkpoint's container and restored as their own container's user: files
    the writer extracts are its user's, with the modes they had (0600, say), which another non-root user cannot read.
    The restore would fail after the source stopped, and again in the rolled-back source: refused before anything
    runs, when the pod spec says both users (an image's own USER is not known here)."""
    writer_spec = container_spec(pod, location.container)
    writer = _run_as_user(pod, writer_spec) if writer_spec is not None else None
    if writer is None or writer == 0:
        return
    for artifact in spec.artifacts:
        owner_spec = container_spec(pod, artifact.container)
        owner = _run_as_user(pod, owner_spec) if owner_spec is not None else None
        if owner is not None and owner not in (0, writer):
            raise CheckpointError(
                f"the artifacts of container {artifact.container} (user {owner}) would be written by container"
                f" {location.container} (user {writer}), and restored as user {owner}, who could not read them: run"
                " both as one user",
                reason=reasons.USERS_DIFFER,
            )
