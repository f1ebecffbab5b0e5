"""Kubernetes resources as raw JSON: list, watch, get, create, patch and delete through the real API server.

Objects stay plain dicts (the API server's camelCase JSON): no model classes, no deserialisation cost, and every
field the server sends is kept. kubernetes_asyncio only provides the transport (TLS, auth, token refresh).

Each method says whether it is ``Idempotency.SAFE`` to repeat after an unknown outcome; ``kube/retrying.py`` decides
the rest (which failures, how long)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from ai_storage_orchestrator.conventions import API_GROUP, API_VERSION
from ai_storage_orchestrator.kube.errors import KubeApiError, raise_for_status
from ai_storage_orchestrator.kube.interning import share_strings
from ai_storage_orchestrator.kube.retrying import DEFAULT_POLICY, Idempotency, RetryPolicy

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resource:
    """A Kubernetes resource type: where it lives in the REST API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    stored: bool = True  # False for reviews: a create only asks a question, nothing is kept

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
REPLICA_SETS = Resource("apps", "v1", "replicasets", "ReplicaSet")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
JOBS = Resource("batch", "v1", "jobs", "Job")
POD_MIGRATIONS = Resource(API_GROUP, API_VERSION, "podmigrations", "PodMigration")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)
TOKEN_REVIEWS = Resource("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False, stored=False)
SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", namespaced=False, stored=False
)
VALIDATING_ADMISSION_POLICIES = Resource(
    "admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", False
)
VALIDATING_ADMISSION_POLICY_BINDINGS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingadmissionpolicybindings",
    "ValidatingAdmissionPolicyBinding",
    namespaced=False,
)

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: JSON


class KubeApi:
    """Raw-JSON access to the API server over a kubernetes_asyncio ApiClient. Failed calls are repeated as
    ``retry_policy`` says (``kube.retrying.NO_RETRIES`` turns that off); watches never are."""

    def __init__(
        self, api_client: Any, *, request_timeout: float = 30.0, retry_policy: RetryPolicy = DEFAULT_POLICY
    ) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout
        self.retry_policy = retry_policy

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
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            raise KubeApiError(0, "ConnectionError", f"{method} {path}: {error!r}", sent=False) from error
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise KubeApiError(0, "ConnectionError", f"{method} {path}: {error!r}") from error
        return response

    async def _json(self, method: str, path: str, *, idempotency: Idempotency | None = None, **kwargs: Any) -> JSON:
        """One call, repeated as the retry policy says. Without ``idempotency``, only a GET counts as SAFE."""
        if idempotency is None:
            idempotency = Idempotency.SAFE if method == "GET" else Idempotency.UNSAFE
        return await self.retry_policy.call(
            lambda: self._json_once(method, path, **kwargs), idempotency=idempotency, method=method, path=path
        )

    async def _json_once(self, method: str, path: str, **kwargs: Any) -> JSON:
        response = await self._request(method, path, **kwargs)
        async with response:
            try:
                data = await response.read()
            except (aiohttp.ClientError, TimeoutError) as error:
                raise KubeApiError(0, "ConnectionError", f"{method} {path}: {error!r}") from error
            raise_for_status(response.status, data, f"{method} {path}", headers=response.headers)
            parsed: JSON = json.loads(data) if data else {}
            return parsed

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON:
        """GET: SAFE."""
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
        """All objects (paginated) and the list's resourceVersion. Each page is a GET (SAFE, repeated on its own);
        an expired continue token is a 410 that reaches the caller, which lists afresh."""
        items: list[JSON] = []
        query: dict[str, str | int | bool] = {"limit": limit}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        while True:
            page = await self._json("GET", resource.path(namespace=namespace), query=query)
            for item in page.get("items") or []:
                # managedFields are most of a listed object's memory and nothing here reads them; drop them, and
                # share equal strings, per page rather than after the whole LIST is held.
                (item.get("metadata") or {}).pop("managedFields", None)
                share_strings(item)
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
        `inactivity_timeout` raises KubeApiError(0) (bookmarks arrive about once a minute on a healthy stream).
        Never repeated here: the reflector owns reconnects (a 429 carries the server's ``retry_after``)."""
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
                raise_for_status(response.status, await response.read(), f"WATCH {path}", headers=response.headers)
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
        """POST. SAFE when the object is named: a repeat after a lost success answers 409 AlreadyExists, so callers
        must read AlreadyExists as "perhaps our own create" (the pod creates check the migration label). SAFE for
        reviews (nothing is stored). UNSAFE for a generateName create, whose repeat would make a second object."""
        named = bool((body.get("metadata") or {}).get("name"))
        return await self._json(
            "POST",
            resource.path(namespace=namespace),
            body=dict(body),
            idempotency=_safe_if(named or not resource.stored),
        )

    async def merge_patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> JSON:
        """JSON merge patch. SAFE only with ``metadata.resourceVersion`` in the patch (a repeat after a lost success
        is a 409 the caller re-reads on); without it UNSAFE: a late repeat could undo another writer's change."""
        return await self._json(
            "PATCH",
            resource.path(namespace=namespace, name=name, subresource=subresource),
            body=dict(patch),
            content_type=MERGE_PATCH,
            idempotency=_safe_if(_has_resource_version(patch)),
        )

    async def apply(
        self, resource: Resource, obj: Mapping[str, Any], *, field_manager: str, dry_run: bool = False
    ) -> JSON:
        """Server-side apply (JSON is valid YAML); with `dry_run` the server validates and admits but stores nothing.
        SAFE only with ``metadata.resourceVersion`` (as merge_patch)."""
        metadata = obj["metadata"]
        query: dict[str, str | int | bool] = {"fieldManager": field_manager, "force": True}
        if dry_run:
            query["dryRun"] = "All"
        path = resource.path(namespace=metadata.get("namespace"), name=metadata["name"])
        return await self._json(
            "PATCH",
            path,
            query=query,
            body=dict(obj),
            content_type=APPLY_PATCH,
            idempotency=_safe_if(_has_resource_version(obj)),
        )

    async def replace(self, resource: Resource, obj: Mapping[str, Any]) -> JSON:
        """PUT the whole object; its resourceVersion makes it fail with 409 on a stale read. SAFE only with that
        resourceVersion (as merge_patch)."""
        metadata = obj["metadata"]
        return await self._json(
            "PUT",
            resource.path(namespace=metadata.get("namespace"), name=metadata["name"]),
            body=dict(obj),
            idempotency=_safe_if(_has_resource_version(obj)),
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
        """DELETE. SAFE only with a ``uid`` precondition: a repeat then answers 404 or a Precondition 409, never
        removes a newer object of the same name; without one UNSAFE."""
        body: JSON = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        return await self._json(
            "DELETE", resource.path(namespace=namespace, name=name), body=body, idempotency=_safe_if(bool(uid))
        )

    async def evict(self, name: str, *, namespace: str, uid: str | None = None) -> JSON:
        """Ask to remove a pod through the Eviction API, which honours its PodDisruptionBudgets: 429 when a budget
        forbids it now. The API server marks the pod with the DisruptionTarget condition, as `kubectl drain` does.

        UNSAFE even with a uid: a repeat after a lost success can be refused by the budget the first one consumed."""
        body: JSON = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        if uid:
            body["deleteOptions"] = {"preconditions": {"uid": uid}}
        path = PODS.path(namespace=namespace, name=name, subresource="eviction")
        return await self._json("POST", path, body=body, idempotency=Idempotency.UNSAFE)


def _safe_if(condition: bool) -> Idempotency:
    return Idempotency.SAFE if condition else Idempotency.UNSAFE


def _has_resource_version(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("resourceVersion"))


def _watch_event(line: bytes) -> WatchEvent:
    event = json.loads(line)
    obj = event.get("object") or {}
    share_strings(obj)
    if event.get("type") == "ERROR":
        code = int(obj.get("code") or 500)
        raise KubeApiError(code, str(obj.get("reason") or "WatchError"), str(obj.get("message") or ""))
    return WatchEvent(str(event.get("type")), obj)
