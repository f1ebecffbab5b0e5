"""The one description of the REST migration request and the PodMigration resource (pydantic models).

Request validation (``api.schemas``) runs through ``request.MigrationRequestBody``; the OpenAPI document's request
schema (``api.openapi_schemas``) and the CRD's ``openAPIV3Schema`` (``crd``) are generated from these models, the CRD
into the checked-in files by ``python -m ai_storage_orchestrator.schema.generate`` (a test fails when they drift)."""
