"""What a pod's annotations can make the orchestrator do when the admission policy is not there to stop the author:
checkpoint annotations at and beyond their limits, artifact paths that try to leave the container's tree, triggers in
namespaces that did not opt in (or only seem to), and a hook whose output is the container's secrets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ai_storage_orchestrator.api.views import public_migration
from ai_storage_orchestrator.checkpoint.annotations import (
    MAX_ARGV_ITEMS,
    MAX_ARTIFACTS,
    parse_argv,
    parse_checkpoint_annotations,
    parse_paths,
)
from ai_storage_orchestrator.checkpoint.errors import INVALID_ANNOTATION, InvalidCheckpointAnnotation
from ai_storage_orchestrator.checkpoint.redaction import REDACTED, summarise
from ai_storage_orchestrator.conventions import (
    CHECKPOINT_ARTIFACTS_PREFIX,
    CHECKPOINT_HOOK_PREFIX,
    MIGRATE_TO_ANNOTATION,
    MIGRATION_STATUS_ANNOTATION,
    NAMESPACE_OPT_IN_LABEL,
    NAMESPACE_OPT_IN_VALUE,
)
from ai_storage_orchestrator.kube.resources import NAMESPACES, PODS
from tests.unit.controller.fakes import NAMESPACE, POD, TARGET, World, running_pod
from tests.unit.controller.test_triggers import FakeService

HOOK = CHECKPOINT_HOOK_PREFIX + "trainer"
ARTIFACTS = CHECKPOINT_ARTIFACTS_PREFIX + "trainer"
# What a service-account token looks like (a JWT), and a private key.
TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bWw6ZGVmYXVsdCJ9.c2lnbmF0dXJl"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


def refused(error: InvalidCheckpointAnnotation, annotation: str) -> None:
    """The refusal a migration of such a pod answers: 422 with the JSON shape, naming the annotation."""
    assert error.http_status == 422
    expected = {"error": INVALID_ANNOTATION, "message": error.message, "details": {"annotation": annotation}}
    assert error.to_json() == expected


def pod_with(**annotations: str) -> dict[str, Any]:
    pod = running_pod(POD, "node-a")
    pod["metadata"]["annotations"] = annotations
    return pod


# --- checkpoint annotations at and beyond their limits -------------------------------------------------------------


def test_a_hook_argv_at_its_limit_is_read_and_one_more_item_is_refused() -> None:
    at_limit = ["sh", *(["x" * 1000] * (MAX_ARGV_ITEMS - 1))]
    assert len(parse_argv(HOOK, json.dumps(at_limit))) == MAX_ARGV_ITEMS
    with pytest.raises(InvalidCheckpointAnnotation) as error:
        parse_argv(HOOK, json.dumps([*at_limit, "one-more"]))
    refused(error.value, HOOK)


def test_an_artifacts_list_at_its_limit_is_read_and_one_more_path_is_refused() -> None:
    at_limit = [f"/state/part-{i}" for i in range(MAX_ARTIFACTS)]
    assert len(parse_paths(ARTIFACTS, json.dumps(at_limit))) == MAX_ARTIFACTS
    with pytest.raises(InvalidCheckpointAnnotation) as error:
        parse_paths(ARTIFACTS, json.dumps([*at_limit, "/state/one-more"]))
    refused(error.value, ARTIFACTS)


@pytest.mark.parametrize(
    "value",
    [
        "cat /var/run/secrets/kubernetes.io/serviceaccount/token",  # a shell string, not an argv
        '["sh", "-c", 1]',
        "[]",
        '[""]',
        '["cat\\u0000", "/etc/shadow"]',
        '{"argv": ["cat"]}',
        '["cat", ' * 500 + "]" * 500,  # nested arrays
    ],
    ids=["shell-string", "non-string", "empty", "empty-command", "nul", "object", "nested"],
)
def test_hook_values_that_are_not_an_argv_are_refused(value: str) -> None:
    with pytest.raises(InvalidCheckpointAnnotation) as error:
        parse_checkpoint_annotations(pod_with(**{HOOK: value}))
    refused(error.value, HOOK)


@pytest.mark.parametrize(
    "paths",
    [
        ["/state/../../var/run/secrets/kubernetes.io/serviceaccount"],
        ["state/relative"],
        ["/"],
        ["///"],
        ["/state/./x"],
        ["/state\n/forged-log-line"],
        ["/state\x00/token"],
        ["/state", "/state/inside"],
        "/state",  # a string, not a list
    ],
    ids=["dotdot", "relative", "root", "triple-slash-root", "dot", "newline", "nul", "nested", "string"],
)
def test_artifact_paths_that_leave_or_confuse_the_tree_are_refused(paths: object) -> None:
    with pytest.raises(InvalidCheckpointAnnotation) as error:
        parse_checkpoint_annotations(pod_with(**{ARTIFACTS: json.dumps(paths)}))
    refused(error.value, ARTIFACTS)


@pytest.mark.parametrize("key", [HOOK, ARTIFACTS])
def test_a_deeply_nested_annotation_value_is_refused_not_a_crash(key: str) -> None:
    value = "[" * 5000 + "]" * 5000  # 10 KB, far below the 256 KiB the API server allows for annotations
    with pytest.raises(InvalidCheckpointAnnotation) as error:
        parse_checkpoint_annotations(pod_with(**{key: value}))
    refused(error.value, key)


def test_the_root_directory_spelled_with_two_slashes_is_refused() -> None:
    with pytest.raises(InvalidCheckpointAnnotation) as error:
        parse_checkpoint_annotations(pod_with(**{ARTIFACTS: json.dumps(["//"])}))
    refused(error.value, ARTIFACTS)


def test_a_hook_for_a_container_the_pod_does_not_have_is_refused() -> None:
    key = CHECKPOINT_HOOK_PREFIX + "sidecar-of-another-pod"
    with pytest.raises(InvalidCheckpointAnnotation) as error:
        parse_checkpoint_annotations(pod_with(**{key: '["true"]'}))
    refused(error.value, key)


# --- triggers in namespaces that did not opt in ---------------------------------------------------------------------


def _namespace(world: World, *, labels: dict[str, str], annotations: dict[str, str] | None = None) -> None:
    world.api.objects[(NAMESPACES.plural, "", NAMESPACE)] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": labels, "annotations": annotations or {}},
    }


@pytest.mark.parametrize(
    ("labels", "annotations", "pod_labels"),
    [
        ({}, {}, {}),
        ({NAMESPACE_OPT_IN_LABEL: "Enabled"}, {}, {}),
        ({NAMESPACE_OPT_IN_LABEL: "true"}, {}, {}),
        ({"ai-storage.io/migrations-enabled": NAMESPACE_OPT_IN_VALUE}, {}, {}),
        ({}, {NAMESPACE_OPT_IN_LABEL: NAMESPACE_OPT_IN_VALUE}, {}),  # an annotation is not the label
        ({}, {}, {NAMESPACE_OPT_IN_LABEL: NAMESPACE_OPT_IN_VALUE}),  # the pod cannot opt its namespace in
    ],
    ids=["no-label", "wrong-case", "true", "other-key", "namespace-annotation", "pod-label"],
)
async def test_a_trigger_in_a_namespace_that_did_not_opt_in_is_refused(
    labels: dict[str, str], annotations: dict[str, str], pod_labels: dict[str, str]
) -> None:
    from ai_storage_orchestrator.controller.triggers import NOT_OPTED_IN, AnnotationTrigger

    world = World()
    _namespace(world, labels=labels, annotations=annotations)
    service = FakeService()
    trigger = AnnotationTrigger(api=world.api, state=world.state, service=service, recorder=world.events)  # type: ignore[arg-type]
    pod = running_pod(POD, "node-a", **pod_labels)
    pod["metadata"]["annotations"] = {MIGRATE_TO_ANNOTATION: TARGET, HOOK: '["cat", "/token"]'}
    pod["metadata"]["uid"] = world.source["metadata"]["uid"]
    world.api.put(PODS, pod)
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert service.submitted == []
    status = world.api.pod(POD)["metadata"]["annotations"][MIGRATION_STATUS_ANNOTATION]  # type: ignore[index]
    assert status.startswith(f"Refused ({TARGET}): {NOT_OPTED_IN}: ")


# --- a hook whose output is the container's secrets -----------------------------------------------------------------


def test_hook_output_never_leaves_through_the_api_view() -> None:
    """A failed hook that printed the token: the API (readable with `get pods`) shows exit code and size only."""
    migration = {
        "migration_id": "0123456789ab",
        "message": f"checkpoint hook failed; output: {TOKEN}",
        "error": {"reason": "checkpoint_hook_failed", "message": f"hook exited 1; output: {TOKEN}"},
        "phase_transitions": [{"phase": "Failed", "message": f"x; output: {KEY}"}],
        "checkpoint": {
            "hooks": [{"container": "trainer", "exitCode": 1, "outputTail": TOKEN, "stderr": KEY, "new": TOKEN}],
            "nested": {"stdout": TOKEN, "output": KEY},
        },
    }
    view = json.dumps(public_migration(migration))
    assert TOKEN not in view
    assert "PRIVATE KEY" not in view
    assert '"exitCode": 1' in view


@pytest.mark.parametrize(
    "output",
    [
        TOKEN,
        KEY,
        f"Authorization: Bearer {TOKEN[:20]}",
        "password=hunter2-but-longer",
        "AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "x" * 300 + TOKEN[:40],  # cut at the summary limit: the front of a token must not slip through
    ],
    ids=["jwt", "pem", "bearer", "password", "aws-key", "cut-token"],
)
def test_the_logged_summary_of_a_failed_hook_is_redacted(output: str) -> None:
    summary = summarise(f"starting\n{output}\n", truncated=False)
    assert REDACTED in summary
    for secret in ("eyJhbGci", "MIIEvQIB", "hunter2", "wJalrXUtnFEMI"):
        assert secret not in summary


async def test_a_trigger_without_the_admission_policy_installed_is_refused() -> None:
    """Fail closed: where the shipped binding is missing, nobody checked who wrote the annotation -- refused, even in
    a namespace that opted in."""
    from ai_storage_orchestrator.controller.triggers import ADMISSION_POLICY_MISSING, AnnotationTrigger

    world = World()
    _namespace(world, labels={NAMESPACE_OPT_IN_LABEL: NAMESPACE_OPT_IN_VALUE})
    service = FakeService()
    trigger = AnnotationTrigger(
        api=world.api,  # type: ignore[arg-type]
        state=world.state,
        service=service,  # type: ignore[arg-type]
        recorder=world.events,  # type: ignore[arg-type]
        admission_binding="ai-storage-orchestrator-annotations",
    )
    pod = running_pod(POD, "node-a")
    pod["metadata"]["annotations"] = {MIGRATE_TO_ANNOTATION: TARGET}
    pod["metadata"]["uid"] = world.source["metadata"]["uid"]
    world.api.put(PODS, pod)
    await trigger.reconcile(f"{NAMESPACE}/{POD}")
    assert service.submitted == []
    status = world.api.pod(POD)["metadata"]["annotations"][MIGRATION_STATUS_ANNOTATION]  # type: ignore[index]
    assert status.startswith(f"Refused ({TARGET}): {ADMISSION_POLICY_MISSING}: ")
