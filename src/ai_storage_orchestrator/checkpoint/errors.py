"""Why a checkpoint failed: one stable reason per cause, recorded as the migration's ``error.reason``."""

from __future__ import annotations

from typing import Any

from ai_storage_orchestrator.errors import OrchestratorError, Unprocessable

INVALID_ANNOTATION = "invalid_checkpoint_annotation"
HOOK_FAILED = "checkpoint_hook_failed"
COPY_FAILED = "checkpoint_copy_failed"  # reading an artifact in the source container failed, or its stream is bad
TOO_LARGE = "checkpoint_too_large"  # more entries, or longer names, than a checkpoint may hold (tarstream.TarLimits)
VERIFY_FAILED = "checkpoint_verify_failed"  # what landed on the volume is not what was streamed
VOLUME_READ_ONLY = "checkpoint_volume_read_only"  # EROFS
VOLUME_PERMISSION_DENIED = "checkpoint_volume_permission_denied"  # EACCES
VOLUME_FULL = "checkpoint_volume_full"  # ENOSPC / EDQUOT
WRITE_FAILED = "checkpoint_write_failed"  # any other failure writing the checkpoint directory
PATH_UNSAFE = "checkpoint_path_unsafe"  # a directory of the checkpoint's path on the volume is a symbolic link
EXEC_FAILED = "checkpoint_exec_failed"  # the API server or kubelet refused or broke an exec
TIMED_OUT = "checkpoint_timeout"
NO_RUNNING_CONTAINER = "checkpoint_no_running_container"
NO_SHARED_VOLUME = "no_shared_volume"
# The checkpoint's writer and an artifact's container run as different users: the restore could not read the files.
USERS_DIFFER = "checkpoint_users_differ"

_WRITE_ERRORS = (
    ("Read-only file system", VOLUME_READ_ONLY),
    ("No space left on device", VOLUME_FULL),
    ("Disk quota exceeded", VOLUME_FULL),
    # GNU tar reports a short write(2) -- what a full filesystem gives a regular file -- without errno text.
    ("Wrote only", VOLUME_FULL),
    ("Permission denied", VOLUME_PERMISSION_DENIED),
    ("Operation not permitted", VOLUME_PERMISSION_DENIED),
)


class CheckpointError(OrchestratorError):
    """A checkpoint could not be taken; raised before the source pod is touched."""

    http_status = 500
    default_reason = WRITE_FAILED

    def __init__(self, message: str, *, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, reason=reason, details=details)


class InvalidCheckpointAnnotation(Unprocessable):
    default_reason = INVALID_ANNOTATION

    def __init__(self, message: str, *, annotation: str) -> None:
        super().__init__(message, reason=INVALID_ANNOTATION, details={"annotation": annotation})


def write_failure_reason(output: str) -> str:
    """The precise reason for a failed write on the checkpoint volume, read from the tool's error output."""
    for needle, reason in _WRITE_ERRORS:
        if needle in output:
            return reason
    return WRITE_FAILED
