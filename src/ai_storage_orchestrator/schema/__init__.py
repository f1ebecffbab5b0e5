"""The one description of the REST API's bodies and the PodMigration resource (pydantic models).

Request validation (``api.schemas``) runs through ``request.MigrationRequestBody``; every component schema of the
OpenAPI document (``api.openapi_schemas``: the request, and the responses of ``responses``) and the CRD's
``openAPIV3Schema`` (``crd``) are generated from these models, and written with the whole OpenAPI document into the
checked-in files by ``python -m ai_storage_orchestrator.api.generate`` (a test fails when they drift)."""
