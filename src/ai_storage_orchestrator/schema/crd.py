"""The PodMigration CustomResourceDefinition, its ``openAPIV3Schema`` generated from ``resource.PodMigration``.

Written by ``generate`` to every place the CRD is kept (``CRD_PATHS``); a test fails when a committed copy differs."""

from __future__ import annotations

from typing import Any

import yaml

from ai_storage_orchestrator.conventions import API_GROUP
from ai_storage_orchestrator.schema.dialects import structural_schema
from ai_storage_orchestrator.schema.resource import PodMigration

JSON = dict[str, Any]

# Relative to the repository root: the packaged CRD (serve --install-crd), kustomize's, the Helm chart's.
CRD_PATHS = (
    "src/ai_storage_orchestrator/crds/podmigrations.yaml",
    "k8s/crds/podmigrations.yaml",
    "charts/ai-storage-orchestrator/crds/podmigrations.yaml",
)
HEADER = """\
# PodMigration: the durable record of one pod migration, whatever triggered it (REST API, annotation, CLI).
# Generated from the pydantic models of src/ai_storage_orchestrator/schema/resource.py by
# `python -m ai_storage_orchestrator.api.generate`, which writes every copy (k8s/crds/, the package's crds/, the
# Helm chart's crds/); do not edit by hand: a test fails when a copy differs from what the generator writes.
"""
PRINTER_COLUMNS = [
    {"name": "Pod", "type": "string", "jsonPath": ".spec.podName"},
    {"name": "Source", "type": "string", "jsonPath": ".spec.sourceNode"},
    {"name": "Target", "type": "string", "jsonPath": ".spec.targetNode"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "New-Pod", "type": "string", "jsonPath": ".status.targetPod", "priority": 1},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def crd_document() -> JSON:
    schema = structural_schema(PodMigration)
    schema.pop("description", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"podmigrations.{API_GROUP}",
            "labels": {"app.kubernetes.io/name": "ai-storage-orchestrator"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": "PodMigration",
                "listKind": "PodMigrationList",
                "plural": "podmigrations",
                "singular": "podmigration",
                "shortNames": ["pm", "pmig"],
                "categories": ["ai-storage"],
            },
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD file's text, exactly as committed."""
    return HEADER + yaml.safe_dump(crd_document(), sort_keys=False, width=120, default_flow_style=False)
