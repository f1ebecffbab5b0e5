"""Requests as another identity, from the admin kubeconfig (system:masters may impersonate anyone): what RBAC and
admission see is that user, exactly as if the user had sent the request with its own credentials."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from kubernetes_asyncio import client, config


def service_account_user(namespace: str, name: str) -> str:
    """The user name a ServiceAccount's token authenticates as."""
    return f"system:serviceaccount:{namespace}:{name}"


@contextlib.asynccontextmanager
async def impersonating(kubeconfig: Path, user: str) -> AsyncIterator[client.ApiClient]:
    """An ApiClient whose every request carries ``Impersonate-User: user``."""
    api_client = await config.new_client_from_config(config_file=str(kubeconfig))
    api_client.set_default_header("Impersonate-User", user)
    async with api_client:
        yield api_client


async def poll_until(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> None:
    """Poll a condition the API server offers no watch for until a deadline: that a new RoleBinding or admission
    policy is in force (the authorizer's and the admission plugin's caches fill asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)
