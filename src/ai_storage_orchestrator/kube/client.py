"""The one place that creates a kubernetes_asyncio ApiClient: from a kubeconfig, or in-cluster."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client, config

# Connections to the API server at once, no limit: every watch holds one for as long as it runs (three per watched
# namespace), and the lease's renewals must never queue behind them (the client's default is 100).
UNLIMITED = 0


async def create_api_client(kubeconfig: str | None = None, *, context: str | None = None) -> Any:
    """An ApiClient for the given kubeconfig, or the in-cluster service account when none is given."""
    configuration = client.Configuration()
    if kubeconfig:
        await config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = UNLIMITED
    return client.ApiClient(configuration=configuration)
