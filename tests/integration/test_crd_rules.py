"""The PodMigration CRD's own rules, enforced by the real API server: a record's spec is written once (only
cancelRequested may change), so what was planned and checked is what is done; source and target differ."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.conventions import API_GROUP, API_VERSION
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, KubeApi

JSON = dict[str, Any]


def _record(name: str) -> JSON:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "PodMigration",
        "metadata": {"name": name},
        "spec": {
            "podName": "trainer",
            "sourceNode": "node-a",
            "targetNode": "node-b",
            "strategy": "checkpoint-restart",
            "targetChoice": {
                "considered": 2,
                "eligible": 1,
                "runnersUp": [],
                "refused": [{"node": "node-a", "reason": "source_equals_target", "check": "c", "message": "m"}],
                "refusedTotal": 1,
                "ranking": "images, least allocated, spread, name",
            },
        },
    }


async def _created(api: client.ApiClient, namespace: str) -> KubeApi:
    kube = KubeApi(api)
    await kube.create(POD_MIGRATIONS, _record("m1"), namespace=namespace)
    return kube


@pytest.mark.parametrize(
    "change",
    [
        {"targetNode": "node-c"},
        {"podName": "other"},
        {"ignorePDB": True},
        {"timeoutSeconds": 60},
        {"strategy": "make-before-break"},
        {"targetChoice": None},
    ],
)
async def test_a_planned_spec_cannot_be_changed(
    api: client.ApiClient, namespace: str, crd_installed: None, change: JSON
) -> None:
    kube = await _created(api, namespace)
    with pytest.raises(KubeApiError) as refused:
        await kube.merge_patch(POD_MIGRATIONS, "m1", {"spec": change}, namespace=namespace)
    assert refused.value.status == 422
    assert "only cancelRequested may change" in refused.value.message


async def test_a_cancel_is_the_one_change_a_spec_takes(
    api: client.ApiClient, namespace: str, crd_installed: None
) -> None:
    kube = await _created(api, namespace)
    patched = await kube.merge_patch(POD_MIGRATIONS, "m1", {"spec": {"cancelRequested": True}}, namespace=namespace)
    assert patched["spec"]["cancelRequested"] is True
    assert patched["spec"]["targetNode"] == "node-b"
