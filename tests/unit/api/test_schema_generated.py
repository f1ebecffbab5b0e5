"""One schema source: the committed CRD copies and OpenAPI document are what the generator writes from the pydantic
models (schema/), every component schema of the document is a model's, and the server answers the committed document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ai_storage_orchestrator.api import generate, openapi_schemas
from ai_storage_orchestrator.api.auth import KubernetesAuthenticator
from ai_storage_orchestrator.api.openapi import OPENAPI_PATHS, build_openapi, render_openapi
from ai_storage_orchestrator.models import MigrationRequest
from ai_storage_orchestrator.schema.crd import CRD_PATHS, crd_document, render_crd
from ai_storage_orchestrator.schema.dialects import openapi_schema
from ai_storage_orchestrator.schema.request import MigrationRequestBody
from ai_storage_orchestrator.schema.resource import WRITTEN_ONCE, TargetChoice
from ai_storage_orchestrator.schema.responses import RESPONSES, Migration, MigrationList
from tests.unit.api.conftest import Serve
from tests.unit.api.fakes import FakeReviewApi, FakeService

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("path", CRD_PATHS)
def test_committed_crd_is_the_generated_one(path: str) -> None:
    assert (ROOT / path).read_text() == render_crd(), (
        "the CRD differs from the models: run `python -m ai_storage_orchestrator.api.generate`"
    )


@pytest.mark.parametrize("path", OPENAPI_PATHS)
def test_committed_openapi_is_the_generated_one(path: str) -> None:
    assert (ROOT / path).read_text() == render_openapi(), (
        "the OpenAPI document differs from the code and models: run `python -m ai_storage_orchestrator.api.generate`"
    )


def test_generator_check_mode_agrees(tmp_path: Path) -> None:
    assert generate.main(["--check", str(ROOT)]) == 0
    assert set(generate.generated()) == {*CRD_PATHS, *OPENAPI_PATHS}
    for path in [*CRD_PATHS, *OPENAPI_PATHS]:
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
    differ, written_once = spec["x-kubernetes-validations"]
    assert differ == {"rule": "self.sourceNode != self.targetNode", "message": "sourceNode and targetNode must differ"}
    assert set(WRITTEN_ONCE) == set(spec["properties"]) - {"cancelRequested"}, "a new spec field is written once too"
    assert all(f"self.{field} == oldSelf.{field}" in written_once["rule"] for field in WRITTEN_ONCE)
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


def test_every_component_schema_is_generated_from_a_model() -> None:
    schemas = build_openapi()["components"]["schemas"]
    assert list(schemas) == ["MigrationRequest", *(model.__name__ for model in RESPONSES)]
    for model in RESPONSES:
        generated = openapi_schema(model, by_alias=model is MigrationList, components={"Migration"} - {model.__name__})
        assert schemas[model.__name__] == generated
    assert schemas["MigrationList"]["properties"]["migrations"]["items"] == {"$ref": "#/components/schemas/Migration"}
    assert "continue" in schemas["MigrationList"]["properties"]
    # the hand-written helpers are gone: nothing but models describes a body
    assert not hasattr(openapi_schemas, "object_schema")
    assert not hasattr(openapi_schemas, "MIGRATION")


def test_optional_nullable_and_literal_fields_in_openapi_terms() -> None:
    schemas = build_openapi()["components"]["schemas"]
    migration = schemas["Migration"]
    assert "target_choice" not in migration["required"]
    assert "nullable" not in migration["properties"]["target_choice"]
    assert migration["properties"]["message"] == {"type": "string", "nullable": True}
    assert migration["properties"]["checkpoint"]["nullable"] is True
    assert "required" not in migration["properties"]["checkpoint"]
    assert migration["properties"]["resources"]["required"] == ["before", "after"]
    assert schemas["MigrationPlan"]["properties"]["dry_run"] == {"type": "boolean", "enum": [True]}
    assert schemas["Health"] == {
        "type": "object",
        "description": "Liveness.",
        "properties": {"status": {"type": "string", "enum": ["ok"]}},
        "required": ["status"],
        "additionalProperties": False,
    }
    assert schemas["Error"]["properties"]["details"] == {"type": "object"}
    assert schemas["MigrationList"]["required"] == ["migrations", "count"]


def test_a_migration_the_service_answers_is_a_valid_model() -> None:
    answer = FakeService().add(MigrationRequest("p", "ns", "a", "b"))
    assert Migration.model_validate(answer).migration_id == answer["migration_id"]


async def test_the_server_answers_the_committed_document(serve: Serve) -> None:
    committed = json.loads((ROOT / OPENAPI_PATHS[0]).read_text())
    authenticated = await serve(authenticator=KubernetesAuthenticator(FakeReviewApi(users={}, grants=set())))
    assert await (await authenticated.get("/api/openapi.json")).json() == committed
    # --auth=none: the same document, but no operation asks for credentials
    anonymous = await serve()
    served = await (await anonymous.get("/api/openapi.json")).json()
    for operations in committed["paths"].values():
        for operation in operations.values():
            operation["security"] = []
    assert served == committed
