"""One schema source: the committed CRD copies are what the generator writes from the pydantic models, and the
OpenAPI document's request and target-choice schemas are the models' (schema/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ai_storage_orchestrator.api.openapi import build_openapi
from ai_storage_orchestrator.schema import generate
from ai_storage_orchestrator.schema.crd import CRD_PATHS, crd_document, render_crd
from ai_storage_orchestrator.schema.dialects import openapi_schema
from ai_storage_orchestrator.schema.request import MigrationRequestBody
from ai_storage_orchestrator.schema.resource import TargetChoice

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("path", CRD_PATHS)
def test_committed_crd_is_the_generated_one(path: str) -> None:
    assert (ROOT / path).read_text() == render_crd(), (
        "the CRD differs from the models: run `python -m ai_storage_orchestrator.schema.generate`"
    )


def test_generator_check_mode_agrees(tmp_path: Path) -> None:
    assert generate.main(["--check", str(ROOT)]) == 0
    for path in CRD_PATHS:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("stale\n")
    assert generate.main(["--check", str(tmp_path)]) == 1
    assert generate.main([str(tmp_path)]) == 0
    assert generate.stale(tmp_path) == []


def test_crd_schema_is_structural() -> None:
    """No references, no nulls or unions, and the resource's own rules kept (CEL rule, unknown status fields)."""
    text = yaml.safe_dump(crd_document())
    for word in ("$ref", "anyOf", "oneOf", "allOf", "nullable", "title", "additionalProperties: false"):
        assert word not in text
    (version,) = crd_document()["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["required"] == ["spec"]
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["podName", "sourceNode", "targetNode"]
    assert spec["x-kubernetes-validations"] == [
        {"rule": "self.sourceNode != self.targetNode", "message": "sourceNode and targetNode must differ"}
    ]
    assert schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "required" not in spec["properties"]["targetChoice"]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Pod",
        "Source",
        "Target",
        "Phase",
        "Age",
        "New-Pod",
        "Message",
    ]


def test_openapi_request_and_target_choice_come_from_the_models() -> None:
    schemas = build_openapi()["components"]["schemas"]
    assert schemas["MigrationRequest"] == openapi_schema(MigrationRequestBody)
    choice = openapi_schema(TargetChoice)
    assert schemas["Migration"]["properties"]["target_choice"]["properties"] == choice["properties"]
    assert schemas["MigrationPlan"]["properties"]["target_choice"]["properties"] == choice["properties"]
    assert schemas["MigrationRequest"]["not"] == {"required": ["timeout_seconds", "timeout"]}
    assert choice["properties"]["chosen"]["nullable"] is True
