"""Errors that carry a machine reason, a human message and the HTTP status the API answers with."""

from __future__ import annotations

from typing import Any


class OrchestratorError(Exception):
    """Base error: `reason` is a stable machine-readable word, the message a human sentence."""

    http_status = 500
    default_reason = "internal_error"

    def __init__(self, message: str, *, reason: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": self.reason, "message": self.message, "details": self.details}


class InvalidRequest(OrchestratorError):
    http_status = 400
    default_reason = "invalid_request"


class NotFound(OrchestratorError):
    http_status = 404
    default_reason = "not_found"


class Conflict(OrchestratorError):
    http_status = 409
    default_reason = "conflict"


class Unprocessable(OrchestratorError):
    """The request is well-formed but the cluster forbids it."""

    http_status = 422
    default_reason = "unprocessable"


class NotReady(OrchestratorError):
    http_status = 503
    default_reason = "not_ready"


class TemporaryError(OrchestratorError):
    """A step failed in a way that may succeed when retried (API server unreachable, 5xx, conflicts)."""

    http_status = 503
    default_reason = "temporary_error"


class Unauthorized(OrchestratorError):
    """No credentials, or credentials the API server does not accept."""

    http_status = 401
    default_reason = "unauthorized"


class Forbidden(OrchestratorError):
    """Authenticated, but RBAC does not allow the operation."""

    http_status = 403
    default_reason = "forbidden"


class PayloadTooLarge(OrchestratorError):
    http_status = 413
    default_reason = "payload_too_large"


class UnsupportedMediaType(OrchestratorError):
    http_status = 415
    default_reason = "unsupported_media_type"
