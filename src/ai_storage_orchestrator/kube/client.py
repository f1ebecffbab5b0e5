"""The one place that creates a kubernetes_asyncio ApiClient: from a kubeconfig, or in-cluster."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client, config


async def create_api_client(kubeconfig: str | None = None, *, context: str | None = None) -> Any:
    """An ApiClient for the given kubeconfig, or the in-cluster service account when none is given."""
    if kubeconfig:
        return await config.new_client_from_config(config_file=kubeconfig, context=context)
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration=configuration)
