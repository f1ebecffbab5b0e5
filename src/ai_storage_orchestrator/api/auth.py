"""Who may call the REST API: nobody is checked (``--auth=none``, loopback only), or the Kubernetes API server decides
(``--auth=kubernetes``): a TokenReview authenticates the bearer token, a SubjectAccessReview checks that its user has
the same rights on pods that the migration itself exercises.

Positive TokenReviews are cached for 30 s and SubjectAccessReviews (either answer) for 10 s, keyed by the SHA-256 of
the token, in bounded maps: the token itself is never stored. An unreachable API server is a 503 ``auth_unavailable``,
never a 500 and never an open door."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import aiohttp
import structlog
from aiohttp import web

from ai_storage_orchestrator.errors import Forbidden, TemporaryError, Unauthorized
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import SUBJECT_ACCESS_REVIEWS, TOKEN_REVIEWS, Resource

JSON = dict[str, Any]
ANONYMOUS = "anonymous"
RESOURCE = "pods"  # rights are checked on pods: a migration creates and deletes them
TOKEN_TTL_SECONDS = 30.0
ACCESS_TTL_SECONDS = 10.0
MAX_CACHE_ENTRIES = 1024

log = structlog.get_logger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class Authenticator(Protocol):
    @property
    def requires_credentials(self) -> bool:
        """Whether callers must present a bearer token (documented in the served OpenAPI document)."""
        ...

    async def authenticate(self, request: web.Request) -> str:
        """The caller's user name; ``Unauthorized`` when it cannot be established."""
        ...

    async def authorize(self, request: web.Request, *, verb: str, namespace: str | None) -> str:
        """The caller's user name when it may `verb` pods in `namespace` (None: cluster-wide), else ``Forbidden``."""
        ...


class ReviewApi(Protocol):
    """The part of ``kube.resources.KubeApi`` the authenticator needs."""

    async def create(self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None) -> JSON: ...


class AllowAll:
    """``--auth=none``: every caller is ``anonymous`` and may do anything."""

    requires_credentials = False

    async def authenticate(self, request: web.Request) -> str:
        return ANONYMOUS

    async def authorize(self, request: web.Request, *, verb: str, namespace: str | None) -> str:
        return ANONYMOUS


@dataclass(frozen=True, slots=True)
class UserInfo:
    """The user a TokenReview found behind a token."""

    username: str
    uid: str | None = None
    groups: tuple[str, ...] = ()
    extra: Mapping[str, list[str]] = field(default_factory=dict)


class TtlCache(Generic[K, V]):
    """A bounded map whose entries expire `ttl` seconds after they were put; the oldest entry goes first."""

    def __init__(self, *, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + self.ttl, value)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized(
            "authentication required: send 'Authorization: Bearer <token>' with a Kubernetes token",
            reason="unauthorized",
        )
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'", reason="unauthorized")
    return token


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KubernetesAuthenticator:
    """``--auth=kubernetes``: TokenReview for who, SubjectAccessReview for what, both cached briefly."""

    requires_credentials = True

    def __init__(
        self,
        api: ReviewApi,
        *,
        token_ttl: float = TOKEN_TTL_SECONDS,
        access_ttl: float = ACCESS_TTL_SECONDS,
        max_entries: int = MAX_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.users: TtlCache[str, UserInfo] = TtlCache(ttl=token_ttl, max_entries=max_entries, clock=clock)
        self.decisions: TtlCache[tuple[str, str, str], bool] = TtlCache(
            ttl=access_ttl, max_entries=max_entries, clock=clock
        )

    async def authenticate(self, request: web.Request) -> str:
        token = bearer_token(request)
        user = await self._user(token_key(token), token)
        return user.username

    async def authorize(self, request: web.Request, *, verb: str, namespace: str | None) -> str:
        token = bearer_token(request)
        key = token_key(token)
        user = await self._user(key, token)
        cache_key = (key, verb, namespace or "")
        allowed = self.decisions.get(cache_key)
        if allowed is None:
            allowed = await self._review_access(user, verb=verb, namespace=namespace)
            self.decisions.put(cache_key, allowed)
        if not allowed:
            where = f"in namespace {namespace}" if namespace else "cluster-wide"
            raise Forbidden(
                f"user {user.username} may not {verb} {RESOURCE} {where}",
                reason="forbidden",
                details={"user": user.username, "verb": verb, "resource": RESOURCE, "namespace": namespace},
            )
        return user.username

    async def _user(self, key: str, token: str) -> UserInfo:
        cached = self.users.get(key)
        if cached is not None:
            return cached
        review = await self._create(
            TOKEN_REVIEWS,
            {"apiVersion": TOKEN_REVIEWS.api_version, "kind": TOKEN_REVIEWS.kind, "spec": {"token": token}},
        )
        status = review.get("status") or {}
        user = status.get("user") or {}
        username = user.get("username")
        if status.get("authenticated") is not True or not isinstance(username, str) or not username:
            log.info("auth.token_rejected", error=status.get("error"))
            raise Unauthorized("the bearer token was not accepted by the Kubernetes API server", reason="unauthorized")
        info = UserInfo(
            username=username,
            uid=user.get("uid") or None,
            groups=tuple(str(g) for g in user.get("groups") or ()),
            extra={str(k): [str(v) for v in vs] for k, vs in (user.get("extra") or {}).items()},
        )
        self.users.put(key, info)
        return info

    async def _review_access(self, user: UserInfo, *, verb: str, namespace: str | None) -> bool:
        attributes: JSON = {"verb": verb, "group": "", "resource": RESOURCE}
        if namespace:
            attributes["namespace"] = namespace
        spec: JSON = {"user": user.username, "groups": list(user.groups), "resourceAttributes": attributes}
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}
        review = await self._create(
            SUBJECT_ACCESS_REVIEWS,
            {"apiVersion": SUBJECT_ACCESS_REVIEWS.api_version, "kind": SUBJECT_ACCESS_REVIEWS.kind, "spec": spec},
        )
        status = review.get("status") or {}
        allowed = status.get("allowed") is True and status.get("denied") is not True
        if not allowed:
            log.info("auth.access_denied", user=user.username, verb=verb, namespace=namespace, why=status.get("reason"))
        return allowed

    async def _create(self, resource: Resource, body: JSON) -> JSON:
        try:
            return await self.api.create(resource, body)
        except (KubeApiError, aiohttp.ClientError, OSError, TimeoutError) as error:
            log.warning("auth.review_failed", kind=resource.kind, error=str(error))
            raise TemporaryError(
                "cannot check credentials: the Kubernetes API server is unavailable, try again",
                reason="auth_unavailable",
            ) from error
