"""Kubernetes resources as raw JSON: list, watch, get, create, patch and delete through the real API server.

Objects stay plain dicts (the API server's camelCase JSON): no model classes, no deserialisation cost, and every
field the server sends is kept. kubernetes_asyncio only provides the transport (TLS, auth, token refresh)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from ai_storage_orchestrator.conventions import API_GROUP, API_VERSION
from ai_storage_orchestrator.kube.errors import KubeApiError, raise_for_status

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resource:
    """A Kubernetes resource type: where it lives in the REST API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


PODS = Resource("", "v1", "pods", "Pod")
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PVS = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
EVENTS = Resource("", "v1", "events", "Event")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
POD_MIGRATIONS = Resource(API_GROUP, API_VERSION, "podmigrations", "PodMigration")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)
TOKEN_REVIEWS = Resource("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False)
SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", namespaced=False
)

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: JSON


class KubeApi:
    """Raw-JSON access to the API server over a kubernetes_asyncio ApiClient."""

    def __init__(self, api_client: Any, *, request_timeout: float = 30.0) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout

    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int | bool] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | float | None = None,
    ) -> aiohttp.ClientResponse:
        params = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items()]
        try:
            response: aiohttp.ClientResponse = await self.api_client.call_api(
                path,
                method,
                query_params=params,
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout if timeout is not None else self.request_timeout,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise KubeApiError(0, "ConnectionError", f"{method} {path}: {error!r}") from error
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> JSON:
        response = await self._request(method, path, **kwargs)
        async with response:
            try:
                data = await response.read()
            except (aiohttp.ClientError, TimeoutError) as error:
                raise KubeApiError(0, "ConnectionError", f"{method} {path}: {error!r}") from error
            raise_for_status(response.status, data, f"{method} {path}")
            parsed: JSON = json.loads(data) if data else {}
            return parsed

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON:
        return await self._json("GET", resource.path(namespace=namespace, name=name))

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> tuple[list[JSON], str]:
        """All objects (paginated) and the list's resourceVersion."""
        items: list[JSON] = []
        query: dict[str, str | int | bool] = {"limit": limit}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        while True:
            page = await self._json("GET", resource.path(namespace=namespace), query=query)
            for item in page.get("items") or []:
                # managedFields are most of a listed object's memory and nothing here reads them; drop them per
                # page rather than after the whole LIST is held.
                (item.get("metadata") or {}).pop("managedFields", None)
                items.append(item)
            metadata = page.get("metadata") or {}
            continue_token = metadata.get("continue")
            if not continue_token:
                return items, str(metadata.get("resourceVersion", ""))
            query["continue"] = continue_token

    async def watch(
        self,
        resource: Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        timeout_seconds: int = 300,
        inactivity_timeout: float = 90.0,
        label_selector: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Events from `resource_version` on, with bookmarks, until the server closes the stream.

        Raises KubeApiError(410) when the version is too old; a silent connection longer than
        `inactivity_timeout` raises KubeApiError(0) (bookmarks arrive about once a minute on a healthy stream)."""
        query: dict[str, str | int | bool] = {
            "watch": True,
            "resourceVersion": resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": timeout_seconds,
        }
        if label_selector:
            query["labelSelector"] = label_selector
        path = resource.path(namespace=namespace)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=inactivity_timeout)
        response = await self._request("GET", path, query=query, timeout=timeout)
        async with response:
            if response.status != 200:
                raise_for_status(response.status, await response.read(), f"WATCH {path}")
            buffer = b""
            try:
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            yield _watch_event(line)
            except (aiohttp.ClientError, TimeoutError) as error:
                raise KubeApiError(0, "ConnectionError", f"WATCH {path}: {error!r}") from error

    async def create(self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None) -> JSON:
        return await self._json("POST", resource.path(namespace=namespace), body=dict(body))

    async def merge_patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> JSON:
        return await self._json(
            "PATCH",
            resource.path(namespace=namespace, name=name, subresource=subresource),
            body=dict(patch),
            content_type=MERGE_PATCH,
        )

    async def apply(
        self, resource: Resource, obj: Mapping[str, Any], *, field_manager: str, dry_run: bool = False
    ) -> JSON:
        """Server-side apply (JSON is valid YAML); with `dry_run` the server validates and admits but stores nothing."""
        metadata = obj["metadata"]
        query: dict[str, str | int | bool] = {"fieldManager": field_manager, "force": True}
        if dry_run:
            query["dryRun"] = "All"
        path = resource.path(namespace=metadata.get("namespace"), name=metadata["name"])
        return await self._json("PATCH", path, query=query, body=dict(obj), content_type=APPLY_PATCH)

    async def replace(self, resource: Resource, obj: Mapping[str, Any]) -> JSON:
        """PUT the whole object; its resourceVersion makes it fail with 409 on a stale read."""
        metadata = obj["metadata"]
        return await self._json(
            "PUT", resource.path(namespace=metadata.get("namespace"), name=metadata["name"]), body=dict(obj)
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        uid: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> JSON:
        body: JSON = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        return await self._json("DELETE", resource.path(namespace=namespace, name=name), body=body)

    async def evict(self, name: str, *, namespace: str, uid: str | None = None) -> JSON:
        """Ask to remove a pod through the Eviction API, which honours its PodDisruptionBudgets: 429 when a budget
        forbids it now. The API server marks the pod with the DisruptionTarget condition, as `kubectl drain` does."""
        body: JSON = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        if uid:
            body["deleteOptions"] = {"preconditions": {"uid": uid}}
        return await self._json("POST", PODS.path(namespace=namespace, name=name, subresource="eviction"), body=body)


def _watch_event(line: bytes) -> WatchEvent:
    event = json.loads(line)
    obj = event.get("object") or {}
    if event.get("type") == "ERROR":
        code = int(obj.get("code") or 500)
        raise KubeApiError(code, str(obj.get("reason") or "WatchError"), str(obj.get("message") or ""))
    return WatchEvent(str(event.get("type")), obj)
