"""Who may call the REST API: nobody is checked (``--auth=none``, loopback only), or the Kubernetes API server decides
(``--auth=kubernetes``): a TokenReview authenticates the bearer token, a SubjectAccessReview checks that its user has
the same rights on pods that the migration itself exercises.

Audience. The TokenReview asks for ``--token-audience`` (default ``ai-storage-orchestrator``) and the answer must
confirm it in ``status.audiences``. A token minted for this service (``kubectl create token SA --audience
ai-storage-orchestrator``, or a projected service-account token volume with that audience) is accepted here and is
worthless against the API server; a token for the API server (a pod's default token, a kubeconfig's token) is refused
here, so this service cannot be used to collect tokens that work elsewhere. The trade-off: clients that only hold
default tokens must mint one for the audience. ``--token-audience=`` (empty) is the explicit opt-out: no audience is
asked for, the API server's own audiences are accepted, and a token sent here is also valid against the API server
(the start-up log warns).

Caching. Positive TokenReviews are cached for 30 s, rejected tokens for 10 s and SubjectAccessReviews (either answer)
for 10 s, keyed by the SHA-256 of the token, in bounded maps: the token itself is never stored. Concurrent requests
with the same uncached token share one TokenReview.

Failed attempts. Every request that fails authentication (no or malformed header, rejected token) costs its client
address one unit of a token bucket (10 at once, one more every 2 s; IPv6 clients by /64); a TokenReview of an
unknown token is paid for up front and refunded when it succeeds. An empty bucket is 429 ``auth_rate_limited`` with
``Retry-After``, before any TokenReview: a stranger cannot turn requests into TokenReviews faster than that. Tokens
already cached as valid pass even from a limited address (a shared NAT does not lock out its known users). The address
is the TCP peer's; forwarded-for headers are not trusted.

An unreachable API server is a 503 ``auth_unavailable``, never a 500 and never an open door (and not counted as the
caller's failure)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import aiohttp
import structlog
from aiohttp import web

from ai_storage_orchestrator.errors import Forbidden, OrchestratorError, TemporaryError, Unauthorized
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import SUBJECT_ACCESS_REVIEWS, TOKEN_REVIEWS, Resource

JSON = dict[str, Any]
ANONYMOUS = "anonymous"
RESOURCE = "pods"  # rights are checked on pods: a migration creates and deletes them
DEFAULT_AUDIENCE = "ai-storage-orchestrator"
TOKEN_TTL_SECONDS = 30.0
REJECTED_TTL_SECONDS = 10.0
ACCESS_TTL_SECONDS = 10.0
MAX_CACHE_ENTRIES = 1024
FAILURE_BURST = 10
FAILURES_PER_SECOND = 0.5
MAX_TRACKED_CLIENTS = 4096

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
    headers = request.headers.getall("Authorization", [])
    if len(headers) > 1:  # a proxy that read the other one would authorize a different caller than we do
        raise Unauthorized("more than one Authorization header: send exactly one", reason="unauthorized")
    header = headers[0] if headers else None
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


class AuthRateLimited(OrchestratorError):
    """429: this client address failed authentication too often; ``retry_after`` whole seconds until the next try."""

    http_status = 429
    default_reason = "auth_rate_limited"

    def __init__(self, client: str, retry_after: int) -> None:
        super().__init__(
            f"too many failed authentications from {client}; try again in {retry_after} s",
            details={"retry_after_seconds": retry_after},
        )
        self.retry_after = retry_after


def client_key(request: web.Request) -> str:
    """Whose bucket a request drains: the peer's IPv4 address, or its IPv6 /64 (one host usually owns a /64)."""
    remote = request.remote or "unknown"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class FailureLimiter:
    """A token bucket per client: `burst` failures at once, then `rate` more per second. Bounded: the clients seen
    longest ago are forgotten first (a full bucket is never stored at all)."""

    def __init__(
        self,
        *,
        burst: int = FAILURE_BURST,
        rate: float = FAILURES_PER_SECOND,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = rate
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _refilled(self, client: str) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            return _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        return bucket

    def _store(self, client: str, bucket: _Bucket) -> None:
        if bucket.tokens >= self.burst:
            self._buckets.pop(client, None)
            return
        self._buckets[client] = bucket
        self._buckets.move_to_end(client)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)

    def take(self, client: str) -> None:
        """Spend one attempt of `client`; ``AuthRateLimited`` (nothing spent) when none is left."""
        bucket = self._refilled(client)
        if bucket.tokens < 1:
            self._store(client, bucket)
            retry_after = max(1, math.ceil((1 - bucket.tokens) / self.rate))
            log.info("auth.rate_limited", client=client, retry_after=retry_after)
            raise AuthRateLimited(client, retry_after)
        bucket.tokens -= 1
        self._store(client, bucket)

    def give_back(self, client: str) -> None:
        """Refund an attempt that turned out well."""
        bucket = self._refilled(client)
        bucket.tokens = min(float(self.burst), bucket.tokens + 1)
        self._store(client, bucket)


class KubernetesAuthenticator:
    """``--auth=kubernetes``: TokenReview for who (for our audience), SubjectAccessReview for what, both cached
    briefly; failed attempts limited per client address."""

    requires_credentials = True

    def __init__(
        self,
        api: ReviewApi,
        *,
        audience: str = DEFAULT_AUDIENCE,
        token_ttl: float = TOKEN_TTL_SECONDS,
        rejected_ttl: float = REJECTED_TTL_SECONDS,
        access_ttl: float = ACCESS_TTL_SECONDS,
        max_entries: int = MAX_CACHE_ENTRIES,
        limiter: FailureLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`audience` "" asks for no audience: the API server's own tokens are accepted (see the module doc)."""
        self.api = api
        self.audience = audience
        self.users: TtlCache[str, UserInfo] = TtlCache(ttl=token_ttl, max_entries=max_entries, clock=clock)
        self.rejected: TtlCache[str, bool] = TtlCache(ttl=rejected_ttl, max_entries=max_entries, clock=clock)
        self.decisions: TtlCache[tuple[str, str, str], bool] = TtlCache(
            ttl=access_ttl, max_entries=max_entries, clock=clock
        )
        self.limiter = limiter if limiter is not None else FailureLimiter(clock=clock)
        self._reviews: dict[str, asyncio.Future[UserInfo]] = {}

    async def authenticate(self, request: web.Request) -> str:
        _key, user = await self._identify(request)
        return user.username

    async def authorize(self, request: web.Request, *, verb: str, namespace: str | None) -> str:
        key, user = await self._identify(request)
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

    async def _identify(self, request: web.Request) -> tuple[str, UserInfo]:
        """The token's cache key and user. Every failure spends one attempt of the client's bucket."""
        client = client_key(request)
        try:
            token = bearer_token(request)
        except Unauthorized:
            self.limiter.take(client)
            raise
        key = token_key(token)
        cached = self.users.get(key)
        if cached is not None:
            return key, cached
        review = self._reviews.get(key)
        if review is None:
            self.limiter.take(client)  # paid up front, refunded on success: a limited client gets no TokenReview
            if self.rejected.get(key):
                raise self._rejected()
            review = asyncio.ensure_future(self._review_token(key, token, client))
            self._reviews[key] = review
            review.add_done_callback(functools.partial(self._review_done, key))
        return key, await asyncio.shield(review)  # a caller that goes away does not cancel the others' review

    def _review_done(self, key: str, review: asyncio.Future[UserInfo]) -> None:
        self._reviews.pop(key, None)
        if not review.cancelled():
            review.exception()  # retrieved here: waiters that went away do not leave it unobserved

    def _rejected(self) -> Unauthorized:
        message = "the bearer token was not accepted by the Kubernetes API server"
        if self.audience:
            message += (
                f" for audience {self.audience} (mint one with `kubectl create token <service-account>"
                f" --audience {self.audience}`)"
            )
        return Unauthorized(message, reason="unauthorized")

    async def _review_token(self, key: str, token: str, client: str) -> UserInfo:
        try:
            user = await self._token_review(token)
        except Unauthorized:
            self.rejected.put(key, True)
            raise
        except BaseException:
            self.limiter.give_back(client)  # the API server failed, not the caller
            raise
        self.users.put(key, user)
        self.limiter.give_back(client)
        return user

    async def _token_review(self, token: str) -> UserInfo:
        spec: JSON = {"token": token}
        if self.audience:
            spec["audiences"] = [self.audience]
        review = await self._create(
            TOKEN_REVIEWS, {"apiVersion": TOKEN_REVIEWS.api_version, "kind": TOKEN_REVIEWS.kind, "spec": spec}
        )
        status = review.get("status") or {}
        user = status.get("user") or {}
        username = user.get("username")
        if status.get("authenticated") is not True or not isinstance(username, str) or not username:
            log.info("auth.token_rejected", error=status.get("error"))
            raise self._rejected()
        # An audience-unaware authenticator answers without status.audiences: the token may be meant for anyone.
        if self.audience and self.audience not in (status.get("audiences") or ()):
            log.info("auth.token_rejected", error=f"audience {self.audience} not confirmed", user=username)
            raise self._rejected()
        return UserInfo(
            username=username,
            uid=user.get("uid") or None,
            groups=tuple(str(g) for g in user.get("groups") or ()),
            extra={str(k): [str(v) for v in vs] for k, vs in (user.get("extra") or {}).items()},
        )

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
