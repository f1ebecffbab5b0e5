"""checkpoint layer (see docs/DESIGN.md): save a pod's state and artifacts to its shared PersistentVolume before the
source is touched, verify them, and let the target pod restore them. Imports only kube and core.

Contract (pod annotations read, all optional):

``ai-storage.io/checkpoint-hook.<container>: '["python", "/scripts/save.py"]'``
    quiesce hook: a JSON argv array (never a shell string) run through exec in <container> before anything is copied;
    exit code, duration and output size go into the migration's ``checkpoint.hooks``; the output itself (the
    workload's: it may hold the pod's token) never goes into the status, Events or manifest, only -- redacted, at most
    256 characters, when the hook failed -- into the orchestrator's log (``checkpoint.redaction``). A non-zero exit or
    timeout fails the migration with ``checkpoint_hook_failed``. Setting a hook or artifacts annotation on an existing
    pod needs ``create pods/exec`` in its namespace (the ValidatingAdmissionPolicy in ``k8s/admission``).
``ai-storage.io/checkpoint-hook-timeout: "60"``
    seconds per hook (default 60, at most 3600).
``ai-storage.io/checkpoint-artifacts.<container>: '["/scratch/optimizer"]'``
    absolute paths inside <container> that the move would lose (emptyDir, container filesystem). They are copied into
    the checkpoint, count as saved for the container analysis (a completed container whose only unsafe mounts they
    cover is left out), and are restored on the target. Declaring artifacts makes every migration of the pod take a
    checkpoint; with no shared volume it is refused (``no_shared_volume``).
``ai-storage.io/checkpoint-volume: <volume>``
    which shared volume holds checkpoints (planning's ``choose_checkpoint_volume``; default: the first shared one).
Malformed values are refused with 422 ``invalid_checkpoint_annotation`` (at request time, and again in Validating).

Where: ``<mountPath>/.ai-storage/namespaces/<namespace>/checkpoints/<pod>/<migration-id>/`` (``<pod>`` without
``-migrated-<id>``), holding ``artifacts/<container>/<absolute path>``, ``checksums/<container>/<key>.sha256`` (per
artifact, the ``sha256sum -c`` list of its files) and ``manifest.json`` (schema 1, see ``manifest``), which is written
last and atomically: a directory without it is not a checkpoint. See ``layout`` for the layout before namespaces.

The target pod gets annotation ``ai-storage.io/checkpoint-path: <dir>``, env ``AI_STORAGE_CHECKPOINT_DIR`` in every
container, and per container with artifacts an init container ``ai-storage-restore-<container>`` that copies them back
and checks each file against the manifest's sha256, failing (and so holding the pod back) on any difference (see
``restoring``). Retention keeps the newest ``--checkpoint-retention`` checkpoints per namespace and pod (see
``retention``).

Limits (``tarstream.TarLimits``): at most 100,000 entries per checkpoint, names and link targets of at most 4096 bytes,
pax headers of at most 64 KiB; the orchestrator's memory for a checkpoint stays bounded whatever its artifacts hold
(per-file records spill to a temporary file past 16 MiB, see ``records``).

Failure reasons: ``checkpoint_hook_failed``, ``checkpoint_copy_failed`` (also: an artifact stream that is not a valid
tar archive), ``checkpoint_too_large`` (beyond the limits), ``checkpoint_verify_failed``, ``checkpoint_volume_full``,
``checkpoint_volume_read_only``, ``checkpoint_volume_permission_denied``, ``checkpoint_write_failed``,
``checkpoint_exec_failed``, ``checkpoint_timeout``, ``checkpoint_no_running_container``. Each is raised before the
source pod is touched, after the partial directory is removed.

Tools the checkpoint needs in the containers it execs into: ``tar``, ``mkdir``, ``rm``, ``mv``, ``ls``, ``find``, and
``sh`` + ``wc`` + ``sha256sum`` (verification); the restore init container needs ``sh``, ``cp``, ``mkdir``,
``dirname``, ``sha256sum``. A pod that declares neither hooks nor artifacts but cannot be exec'd into at all (the
command never starts: no such executable, or a node without exec) gets no manifest and a ``CheckpointSkipped`` warning
instead of a failed migration -- its state is already on the shared volume.
"""

from ai_storage_orchestrator.checkpoint.annotations import (
    Artifact,
    CheckpointSpec,
    Hook,
    parse_checkpoint_annotations,
)
from ai_storage_orchestrator.checkpoint.errors import CheckpointError, InvalidCheckpointAnnotation
from ai_storage_orchestrator.checkpoint.layout import CHECKPOINT_DIR_ENV, MANIFEST_NAME, checkpoint_dir
from ai_storage_orchestrator.checkpoint.restoring import Location, prepare_target_pod, without_checkpoint
from ai_storage_orchestrator.checkpoint.saving import EXEC_UNAVAILABLE, CheckpointJob, PVCheckpointer
from ai_storage_orchestrator.checkpoint.transport import ExecSessionLike, ExecTransport
from ai_storage_orchestrator.conventions import CHECKPOINT_ARTIFACTS_PREFIX as ARTIFACTS_PREFIX
from ai_storage_orchestrator.conventions import CHECKPOINT_HOOK_PREFIX as HOOK_PREFIX
from ai_storage_orchestrator.conventions import CHECKPOINT_HOOK_TIMEOUT_ANNOTATION as HOOK_TIMEOUT_ANNOTATION
from ai_storage_orchestrator.conventions import CHECKPOINT_PATH_ANNOTATION

# The keys (under their old names here) are defined in conventions; new code imports them from there.
__all__ = [
    "ARTIFACTS_PREFIX",
    "CHECKPOINT_DIR_ENV",
    "CHECKPOINT_PATH_ANNOTATION",
    "EXEC_UNAVAILABLE",
    "HOOK_PREFIX",
    "HOOK_TIMEOUT_ANNOTATION",
    "MANIFEST_NAME",
    "Artifact",
    "CheckpointError",
    "CheckpointJob",
    "CheckpointSpec",
    "ExecSessionLike",
    "ExecTransport",
    "Hook",
    "InvalidCheckpointAnnotation",
    "Location",
    "PVCheckpointer",
    "checkpoint_dir",
    "parse_checkpoint_annotations",
    "prepare_target_pod",
    "without_checkpoint",
]
