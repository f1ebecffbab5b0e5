"""The PodMigration record behind the REST migration object: `ignore_pdb` is written as `spec.ignorePDB` (only when
set), read back, shown, echoed by a dry run, and the CRD keeps every spec field the orchestrator writes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_storage_orchestrator.checkpoint import parse_checkpoint_annotations
from ai_storage_orchestrator.controller.planner import Planner
from ai_storage_orchestrator.controller.records import migration_resource, request_of, to_api
from ai_storage_orchestrator.controller.service import MigrationService
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import MigrationRequest, Strategy
from tests.unit.api.test_real_service import RecordingApi, seed_cluster

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
CRD_PATHS = ("src/ai_storage_orchestrator/crds/podmigrations.yaml", "k8s/crds/podmigrations.yaml")


def full_request(**overrides: Any) -> MigrationRequest:
    values: dict[str, Any] = {
        "pod_name": "trainer",
        "pod_namespace": "ml",
        "source_node": "a",
        "target_node": "b",
        "preserve_pv": True,
        "timeout_seconds": 900,
        "strategy": Strategy.CHECKPOINT_RESTART,
        "triggered_by": "cli",
        "ignore_pdb": True,
    }
    return MigrationRequest(**{**values, **overrides})


def spec_properties(path: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / path).read_text())
    (version,) = crd["spec"]["versions"]
    properties: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    return properties


def test_ignore_pdb_is_written_only_when_set() -> None:
    assert migration_resource(full_request(), "0123456789ab")["spec"]["ignorePDB"] is True
    assert "ignorePDB" not in migration_resource(full_request(ignore_pdb=False), "0123456789ab")["spec"]


@pytest.mark.parametrize("ignore_pdb", [True, False])
def test_request_round_trips_through_the_record(ignore_pdb: bool) -> None:
    request = full_request(ignore_pdb=ignore_pdb)
    assert request_of(migration_resource(request, "0123456789ab")) == request


@pytest.mark.parametrize(("spec", "shown"), [({"ignorePDB": True}, True), ({"ignorePDB": False}, False), ({}, False)])
def test_migration_object_shows_ignore_pdb(spec: dict[str, Any], shown: bool) -> None:
    record = migration_resource(full_request(ignore_pdb=False), "0123456789ab")
    record["spec"].update(spec)
    assert to_api(record)["ignore_pdb"] is shown
    assert request_of(record).ignore_pdb is shown


@pytest.mark.parametrize("path", CRD_PATHS)
def test_crd_keeps_every_spec_field_the_orchestrator_writes(path: str) -> None:
    """The API server prunes fields its structural schema does not name: each one written must be declared."""
    properties = spec_properties(path)
    assert properties["ignorePDB"] == {"type": "boolean"}
    written = migration_resource(full_request(), "0123456789ab", request_id="req-1")["spec"]
    assert set(written) <= set(properties)


@pytest.mark.parametrize("ignore_pdb", [True, False])
def test_dry_run_of_the_real_service_echoes_ignore_pdb(ignore_pdb: bool) -> None:
    state = seed_cluster()
    planner = Planner(state, declared=parse_checkpoint_annotations)
    service = MigrationService(api=RecordingApi(), state=state, metrics=Metrics(), planner=planner)
    request = MigrationRequest(
        pod_name="tensorflow-ai-workload",
        pod_namespace="default",
        source_node="a",
        target_node="b",
        preserve_pv=True,
        ignore_pdb=ignore_pdb,
    )
    plan = service.dry_run(request)
    assert plan["request"]["ignore_pdb"] is ignore_pdb
    assert plan["ok"] is True


# Kubernetes' rule for a label value (apimachinery validation.IsValidLabelValue).
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


@pytest.mark.parametrize("pod_name", ["trainer", "t" * 62 + "-worker-0", "a" * 62 + ".b", "x" * 253])
def test_the_pod_label_is_a_valid_label_value_for_any_pod_name(pod_name: str) -> None:
    labels = migration_resource(full_request(pod_name=pod_name), migration_id="abc123def456")["metadata"]["labels"]
    value = labels["ai-storage.io/pod"]
    assert len(value) <= 63
    assert LABEL_VALUE.fullmatch(value), value
    assert pod_name.startswith(value)
