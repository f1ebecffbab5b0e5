"""The ApiClient a kubernetes_asyncio API object (CoreV1Api, BatchV1Api, ...) was made with."""

from __future__ import annotations

from typing import Any, cast

from kubernetes_asyncio import client


def api_client_of(api: object) -> client.ApiClient:
    """``api.api_client``: every generated API object has it, but kubernetes_asyncio's stubs leave it out."""
    found: client.ApiClient = cast(Any, api).api_client
    return found
