"""The ApiClient the orchestrator talks through: no cap on connections at once (each watch holds one; the lease's
renewals must not queue behind a hundred of them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_storage_orchestrator.kube.client import create_api_client

pytestmark = pytest.mark.unit

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
"""


async def test_connections_to_the_api_server_are_not_capped(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    api_client = await create_api_client(str(kubeconfig))
    try:
        assert api_client.configuration.host == "https://127.0.0.1:6443"
        assert api_client.rest_client.pool_manager.connector.limit == 0, "aiohttp's 0: no limit"
    finally:
        await api_client.close()
