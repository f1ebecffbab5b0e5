"""AdmissionReview (``admission.k8s.io/v1``) in and out: what the API server asks, and the answer it expects.

Free of HTTP: ``server.py`` hands over the decoded body and sends back what these functions return. A review that is
not what the API server sends raises ``MalformedReview`` (answered 400). The decisions come from a ``PodAdmission``
(``ports.py``); whatever goes wrong inside it, the answer is ``allowed: true`` and the failure is logged: the webhooks
are fail-open, like their ``failurePolicy: Ignore`` -- a pod is created, or evicted, as Kubernetes alone would."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import structlog

from ai_storage_orchestrator.admission.ports import JSON, EvictionVerdict, PodAdmission

ADMISSION_API_VERSION = "admission.k8s.io/v1"
ADMISSION_REVIEW = "AdmissionReview"
TOO_MANY_REQUESTS = 429
# The metav1.Status reason of each refusal code a verdict may carry; kubectl drain retries TooManyRequests.
_STATUS_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    TOO_MANY_REQUESTS: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}

log = structlog.get_logger(__name__)


class MalformedReview(ValueError):
    """The body is not an ``admission.k8s.io/v1`` AdmissionReview with the request this webhook serves."""


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """The parts of ``AdmissionReview.request`` the webhooks read."""

    api_version: str
    kind: str
    uid: str
    namespace: str
    name: str
    object: JSON
    dry_run: bool


def parse_review(body: object) -> AdmissionRequest:
    """The request of an AdmissionReview; ``MalformedReview`` names the first thing that is wrong."""
    if not isinstance(body, dict):
        raise MalformedReview("the body is not a JSON object")
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if api_version != ADMISSION_API_VERSION or kind != ADMISSION_REVIEW:
        raise MalformedReview(
            f"expected apiVersion {ADMISSION_API_VERSION} and kind {ADMISSION_REVIEW}, got {api_version!r} and {kind!r}"
        )
    request = body.get("request")
    if not isinstance(request, dict):
        raise MalformedReview("the review has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReview("request.uid is missing")
    namespace, name = request.get("namespace", ""), request.get("name", "")
    if not isinstance(namespace, str) or not isinstance(name, str):
        raise MalformedReview("request.namespace and request.name must be strings")
    obj = request.get("object")
    if obj is not None and not isinstance(obj, dict):
        raise MalformedReview("request.object must be an object")
    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise MalformedReview("request.dryRun must be a boolean")
    return AdmissionRequest(
        api_version=api_version,
        kind=kind,
        uid=uid,
        namespace=namespace,
        name=name,
        object=obj or {},
        dry_run=dry_run,
    )


def response_review(request: AdmissionRequest, response: JSON) -> JSON:
    """The AdmissionReview answering `request`: its apiVersion and kind echoed, `response` with the request's uid."""
    return {
        "apiVersion": request.api_version,
        "kind": request.kind,
        "response": {"uid": request.uid, **response},
    }


def patch_response(patch: list[JSON]) -> JSON:
    """Allowed, with `patch` (RFC 6902) when it changes anything."""
    if not patch:
        return {"allowed": True}
    encoded = base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode()
    return {"allowed": True, "patchType": "JSONPatch", "patch": encoded}


def verdict_response(verdict: EvictionVerdict) -> JSON:
    """Allowed, or refused with a metav1.Status the API server returns to the evicting client as it is."""
    if verdict.allowed:
        return {"allowed": True}
    return {
        "allowed": False,
        "status": {
            "status": "Failure",
            "code": verdict.code,
            "reason": _STATUS_REASONS.get(verdict.code, "Forbidden"),
            "message": verdict.message,
        },
    }


def review_pod_create(admission: PodAdmission, body: object) -> JSON:
    """The answer to the mutating webhook's review of a pod CREATE."""
    request = parse_review(body)
    if not request.object:
        raise MalformedReview("request.object (the pod) is missing")
    try:
        patch = admission.mutate_pod_create(request.object, request.namespace)
        _check_patch(patch)
        response = patch_response(patch)
    except Exception as error:
        log.exception(
            "webhook.mutate_failed",
            uid=request.uid,
            namespace=request.namespace,
            pod=_pod_name(request.object),
            error=repr(error),
        )
        response = {"allowed": True}
    return response_review(request, response)


async def review_eviction(admission: PodAdmission, body: object) -> JSON:
    """The answer to the validating webhook's review of a pods/eviction CREATE."""
    request = parse_review(body)
    if not request.name:
        raise MalformedReview("request.name (the pod to evict) is missing")
    try:
        verdict = await admission.review_eviction(request.namespace, request.name, dry_run=request.dry_run)
        if not isinstance(verdict, EvictionVerdict):
            raise TypeError(f"review_eviction returned {type(verdict).__name__}, not an EvictionVerdict")
        response = verdict_response(verdict)
    except Exception as error:
        log.exception(
            "webhook.eviction_review_failed",
            uid=request.uid,
            namespace=request.namespace,
            pod=request.name,
            dry_run=request.dry_run,
            error=repr(error),
        )
        response = {"allowed": True}
    else:
        if not verdict.allowed:
            log.info(
                "webhook.eviction_refused",
                namespace=request.namespace,
                pod=request.name,
                dry_run=request.dry_run,
                code=verdict.code,
                message=verdict.message,
            )
    return response_review(request, response)


def _check_patch(patch: object) -> None:
    if not isinstance(patch, list) or not all(isinstance(op, dict) and "op" in op and "path" in op for op in patch):
        raise TypeError(f"mutate_pod_create returned {patch!r}, not a list of JSONPatch operations")


def _pod_name(pod: JSON) -> str:
    metadata: Any = pod.get("metadata") or {}
    if not isinstance(metadata, dict):
        return ""
    return str(metadata.get("name") or metadata.get("generateName") or "")
