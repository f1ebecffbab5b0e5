"""review.py: the AdmissionReview a webhook reads and the one it answers, fail-open whatever PodAdmission does."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any, cast

import pytest
import structlog.testing

from ai_storage_orchestrator.admission.ports import ALLOW_EVICTION, JSON, EvictionVerdict
from ai_storage_orchestrator.admission.review import (
    MalformedReview,
    parse_review,
    review_eviction,
    review_pod_create,
)

LABEL_PATCH = [{"op": "add", "path": "/metadata/labels", "value": {"captured": "yes"}}]


class Recording:
    """A PodAdmission that records its calls and answers what it was given (or raises it)."""

    def __init__(self, *, patch: object = (), verdict: object = ALLOW_EVICTION) -> None:
        self.patch = patch
        self.verdict = verdict
        self.mutations: list[tuple[JSON, str]] = []
        self.evictions: list[tuple[str, str, bool]] = []

    def mutate_pod_create(self, pod: JSON, namespace: str) -> list[JSON]:
        self.mutations.append((pod, namespace))
        if isinstance(self.patch, BaseException):
            raise self.patch
        return list(cast(Iterable[JSON], self.patch))

    async def review_eviction(self, namespace: str, name: str, *, dry_run: bool) -> EvictionVerdict:
        self.evictions.append((namespace, name, dry_run))
        if isinstance(self.verdict, BaseException):
            raise self.verdict
        return self.verdict  # type: ignore[return-value]


def _pod_review(**request: Any) -> JSON:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "ml",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "trainer-"}},
            "dryRun": False,
            **request,
        },
    }


def _eviction_review(**request: Any) -> JSON:
    review = _pod_review(
        kind={"group": "policy", "version": "v1", "kind": "Eviction"},
        resource={"group": "", "version": "v1", "resource": "pods"},
        subResource="eviction",
        name="trainer-0",
        object={"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "trainer-0", "namespace": "ml"}},
    )
    review["request"].update(request)
    return review


def test_a_pod_create_answers_the_patch_base64_with_the_same_uid() -> None:
    admission = Recording(patch=LABEL_PATCH)
    answer = review_pod_create(admission, _pod_review())
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == LABEL_PATCH
    [(pod, namespace)] = admission.mutations
    assert namespace == "ml"
    assert pod["metadata"] == {"generateName": "trainer-"}


def test_an_empty_patch_is_allowed_without_a_patch() -> None:
    response = review_pod_create(Recording(patch=[]), _pod_review())["response"]
    assert response == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyError("spec"), "not a list", [{"no": "op"}], [{1}]])
def test_a_failing_mutation_admits_the_pod_unchanged(failure: object) -> None:
    response = review_pod_create(Recording(patch=failure), _pod_review())["response"]
    assert response == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


async def test_an_allowed_eviction_is_allowed() -> None:
    admission = Recording()
    response = (await review_eviction(admission, _eviction_review()))["response"]
    assert response == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}
    assert admission.evictions == [("ml", "trainer-0", False)]


async def test_a_refused_eviction_is_a_429_too_many_requests_with_the_message() -> None:
    verdict = EvictionVerdict(allowed=False, message="trainer-0 is moving: migration 455f2b4c6538")
    response = (await review_eviction(Recording(verdict=verdict), _eviction_review()))["response"]
    assert response["allowed"] is False
    assert response["status"] == {
        "status": "Failure",
        "code": 429,
        "reason": "TooManyRequests",
        "message": "trainer-0 is moving: migration 455f2b4c6538",
    }


async def test_a_refusal_keeps_its_own_code() -> None:
    verdict = EvictionVerdict(allowed=False, message="cannot move", code=403)
    status = (await review_eviction(Recording(verdict=verdict), _eviction_review()))["response"]["status"]
    assert (status["code"], status["reason"]) == (403, "Forbidden")


@pytest.mark.parametrize("dry_run", [True, False])
async def test_the_dry_run_flag_is_passed_through(dry_run: bool) -> None:
    admission = Recording()
    await review_eviction(admission, _eviction_review(dryRun=dry_run))
    assert admission.evictions == [("ml", "trainer-0", dry_run)]


async def test_a_review_without_dry_run_is_not_a_dry_run() -> None:
    review = _eviction_review()
    del review["request"]["dryRun"]
    admission = Recording()
    await review_eviction(admission, review)
    assert admission.evictions == [("ml", "trainer-0", False)]


@pytest.mark.parametrize("failure", [RuntimeError("API down"), TimeoutError(), "not a verdict"])
async def test_a_failing_eviction_review_lets_the_eviction_go_ahead(failure: object) -> None:
    response = (await review_eviction(Recording(verdict=failure), _eviction_review()))["response"]
    assert response == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


def _without(key: str) -> JSON:
    review = _pod_review()
    del review["request"][key]
    return review


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ([], "not a JSON object"),
        ({**_pod_review(), "apiVersion": "admission.k8s.io/v1beta1"}, "expected apiVersion"),
        ({**_pod_review(), "kind": "Pod"}, "expected apiVersion"),
        ({**_pod_review(), "request": None}, "no request"),
        (_without("uid"), "uid"),
        (_pod_review(uid=""), "uid"),
        (_pod_review(namespace=3), "strings"),
        (_pod_review(object=[]), "request.object"),
        (_pod_review(dryRun="yes"), "dryRun"),
    ],
)
def test_a_malformed_review_is_refused_with_the_reason(body: object, complaint: str) -> None:
    with pytest.raises(MalformedReview, match=complaint):
        parse_review(body)


def test_a_pod_review_needs_the_pod() -> None:
    with pytest.raises(MalformedReview, match="the pod"):
        review_pod_create(Recording(), _without("object"))


async def test_an_eviction_review_needs_the_pod_name() -> None:
    admission = Recording()
    with pytest.raises(MalformedReview, match="the pod to evict"):
        await review_eviction(admission, _eviction_review(name=""))
    assert admission.evictions == []


async def test_failures_are_logged_with_the_pod() -> None:
    with structlog.testing.capture_logs() as logs:
        review_pod_create(Recording(patch=RuntimeError("boom")), _pod_review())
        await review_eviction(Recording(verdict=RuntimeError("API down")), _eviction_review())
    failed = [(e["event"], e["namespace"], e["pod"], e["error"]) for e in logs if e["log_level"] == "error"]
    assert failed == [
        ("webhook.mutate_failed", "ml", "trainer-", "RuntimeError('boom')"),
        ("webhook.eviction_review_failed", "ml", "trainer-0", "RuntimeError('API down')"),
    ]
