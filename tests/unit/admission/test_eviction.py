"""The eviction webhook's decision: allow, refuse with 429 naming the migration, or start (plan, for a dry run) one."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ai_storage_orchestrator.admission.eviction import (
    RECENT_FAILURE,
    Action,
    Decision,
    decide,
    migrates_on_evict,
    refused,
    started,
    would_migrate,
)
from ai_storage_orchestrator.controller.planning.marking import mark_containers
from ai_storage_orchestrator.conventions import MIGRATE_ON_EVICT_ANNOTATION, MIGRATION_ID_LABEL

JSON = dict[str, Any]
NOW = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)


def pod(
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    node: str | None = "node-a",
    phase: str = "Running",
    terminating: bool = False,
) -> JSON:
    metadata: JSON = {"name": "train", "namespace": "ml", "annotations": annotations or {}, "labels": labels or {}}
    if terminating:
        metadata["deletionTimestamp"] = "2025-05-01T11:59:00Z"
    spec: JSON = {"containers": [{"name": "trainer"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": metadata, "spec": spec, "status": {"phase": phase}}


def migration(name: str, phase: str | None, *, finished: dt.datetime | None = None, **status: Any) -> JSON:
    recorded: JSON = dict(status)
    if phase is not None:
        recorded["phase"] = phase
    if finished is not None:
        recorded["finishedAt"] = finished.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"metadata": {"name": name, "namespace": "ml"}, "spec": {"podName": "train"}, "status": recorded}


def decision(
    subject: JSON | None,
    migrations: list[JSON] | None = None,
    *,
    opted_in: bool = True,
    dry_run: bool = False,
    moving_to_it: JSON | None = None,
) -> Decision:
    return decide(
        subject, opted_in=opted_in, migrations=migrations or [], moving_to_it=moving_to_it, dry_run=dry_run, now=NOW
    )


def test_an_unknown_pod_is_evicted() -> None:
    assert decision(None).action is Action.ALLOW


def test_a_terminating_pod_is_evicted() -> None:
    assert decision(pod(terminating=True)).action is Action.ALLOW


def test_a_pod_that_did_not_opt_in_is_evicted() -> None:
    result = decision(pod(), opted_in=False)
    assert result.action is Action.ALLOW
    assert "opted in" in result.why


@pytest.mark.parametrize("subject", [pod(node=None), pod(phase="Succeeded"), pod(phase="Failed")])
def test_a_pod_on_no_node_or_finished_is_evicted(subject: JSON) -> None:
    assert decision(subject).action is Action.ALLOW


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [({MIGRATE_ON_EVICT_ANNOTATION: "true"}, True), ({MIGRATE_ON_EVICT_ANNOTATION: "True"}, True),
     ({MIGRATE_ON_EVICT_ANNOTATION: "false"}, False), ({}, False)],
)  # fmt: skip
def test_the_pod_opts_in_with_its_annotation(annotations: dict[str, str], expected: bool) -> None:
    assert migrates_on_evict(pod(annotations=annotations)) is expected
    assert migrates_on_evict(None) is False


def test_an_opted_in_pod_without_migrations_starts_one() -> None:
    assert decision(pod()) == Decision(Action.START)


def test_a_dry_run_only_plans() -> None:
    assert decision(pod(), dry_run=True) == Decision(Action.PLAN)


@pytest.mark.parametrize(
    "phase", [None, "Pending", "Validating", "Checkpointing", "CreatingTarget", "WaitingForTarget"]
)
def test_an_active_migration_refuses_with_its_name_and_phase(phase: str | None) -> None:
    result = decision(pod(), [migration("done", "Completed"), migration("mig-1", phase)])
    assert result.action is Action.REFUSE
    assert result.migration == "mig-1"
    assert result.why == (
        f"pod ml/train is being migrated by migration mig-1 (phase {phase or 'Pending'}); the eviction is retried"
        " until it has moved"
    )
    verdict = refused(result)
    assert (verdict.allowed, verdict.code, verdict.message) == (False, 429, result.why)


def test_a_dry_run_is_refused_too_while_a_migration_is_active() -> None:
    assert decision(pod(), [migration("mig-1", "Checkpointing")], dry_run=True).action is Action.REFUSE


@pytest.mark.parametrize("phase", ["StoppingSource", "RemovingSource", "RollingBack", "CreatingTarget"])
def test_the_orchestrators_own_eviction_goes_ahead_once_the_source_is_stopped(phase: str) -> None:
    result = decision(pod(), [migration("mig-1", phase, sourceStopped=True)])
    assert (result.action, result.migration) == (Action.ALLOW, "mig-1")


def test_the_source_stopped_flag_goes_ahead_even_for_a_pod_that_did_not_opt_in() -> None:
    assert decision(pod(), [migration("mig-1", "StoppingSource", sourceStopped=True)], opted_in=False).action is (
        Action.ALLOW
    )


@pytest.mark.parametrize("phase", ["Failed", "Cancelled"])
def test_a_recent_failure_falls_back_to_eviction(phase: str) -> None:
    recent = migration("mig-1", phase, finished=NOW - RECENT_FAILURE + dt.timedelta(seconds=1))
    result = decision(pod(), [recent])
    assert (result.action, result.migration) == (Action.ALLOW, "mig-1")
    assert f"ended {phase}" in result.why


@pytest.mark.parametrize("phase", ["Failed", "Cancelled"])
def test_an_old_failure_starts_a_new_migration(phase: str) -> None:
    old = migration("mig-1", phase, finished=NOW - RECENT_FAILURE - dt.timedelta(seconds=1))
    assert decision(pod(), [old]).action is Action.START


def test_a_completed_migration_of_the_same_name_starts_a_new_one() -> None:
    assert decision(pod(), [migration("mig-1", "Completed", finished=NOW)]).action is Action.START


def test_a_failure_without_finished_at_is_not_recent() -> None:
    assert decision(pod(), [migration("mig-1", "Failed")]).action is Action.START


def test_the_target_of_an_active_migration_is_refused_until_it_has_ended() -> None:
    target = pod(labels={MIGRATION_ID_LABEL: "mig-9"})
    mark_containers(target["spec"]["containers"], "mig-9")
    result = decision(target, moving_to_it=migration("mig-9", "WaitingForTarget", sourceStopped=True))
    assert (result.action, result.migration) == (Action.REFUSE, "mig-9")
    assert "is the target of migration mig-9 (phase WaitingForTarget)" in result.why
    assert decision(target, moving_to_it=migration("mig-9", "Completed")).action is Action.START


def test_a_pod_merely_labelled_as_a_target_is_not_held_by_that_move() -> None:
    """A label any pod patcher can set would otherwise make every eviction of the pod wait (a drain hangs)."""
    labelled = pod(labels={MIGRATION_ID_LABEL: "mig-9"})
    active = migration("mig-9", "WaitingForTarget", sourceStopped=True)
    assert decision(labelled, moving_to_it=active).action is Action.START


def test_the_verdicts_name_the_pod_the_migration_and_the_node() -> None:
    verdict = started("ml/train", "mig-1", "node-b")
    assert (verdict.allowed, verdict.code) == (False, 429)
    assert "ml/train is being migrated by migration mig-1 (phase Pending) to node node-b" in verdict.message
    assert "retried until it has moved" in verdict.message
    dry = would_migrate("ml/train", "node-b")
    assert (dry.allowed, dry.code) == (False, 429)
    assert "would be migrated to node node-b" in dry.message
    assert "dry run" in dry.message


def test_a_retried_eviction_waits_until_the_prewarmed_target_has_proven_it_can_start() -> None:
    """A drain retries the eviction that started the move: once the move has recorded the source's removal ahead,
    the retry must not stop the source before the move itself would (its target's gate running)."""
    stopping = migration("mig-1", "StoppingSource", sourceStopped=True)
    for prepared, action in ((False, Action.REFUSE), (True, Action.ALLOW)):
        result = decide(
            pod(),
            opted_in=True,
            migrations=[stopping],
            may_stop_source=lambda _: prepared,  # noqa: B023 -- used at once, within the iteration
            dry_run=False,
            now=NOW,
        )
        assert (result.action, result.migration) == (action, "mig-1")
    refusal = decide(
        pod(), opted_in=True, migrations=[stopping], may_stop_source=lambda _: False, dry_run=False, now=NOW
    )
    assert "once its new pod has proven it can start" in refusal.why
