"""What `ai-storage-orchestrator compare` finds by itself when a flag does not say it: the cluster, the orchestrator
(its Service in kube-system, reached by cluster IP or endpoint address, TLS verified with the CA of its ConfigMap), a
short-lived token for the comparison's ServiceAccount, the two nodes and the shared volume.

Every value found is one printed line that names the flag overriding it. When pieces are missing, ``DiscoveryError``
carries one sentence per missing piece (all of them are checked), and the command exits 2 without a traceback.

The orchestrator is reached directly, never through the API server's service proxy: the proxy strips the caller's
``Authorization`` header, so the orchestrator would never see the token."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from ai_storage_orchestrator.compare import workload as wl
from ai_storage_orchestrator.compare.cluster import CompareError, is_simulated
from ai_storage_orchestrator.compare.options import Options
from ai_storage_orchestrator.compare.orchestrating import OrchestratorClient
from ai_storage_orchestrator.compare.sampling import PathApi
from ai_storage_orchestrator.controller.planning.fit import untolerated_taints
from ai_storage_orchestrator.controller.planning.quantities import cpu_millicores, format_cpu
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import CONFIG_MAPS, NODES, PODS, PVCS, PVS, Resource
from ai_storage_orchestrator.kube.retrying import Idempotency
from ai_storage_orchestrator.rest_client import client_context, is_loopback_host

JSON = dict[str, Any]

SYSTEM_NAMESPACE = "kube-system"
SERVICE_NAME = "ai-storage-orchestrator"
SERVICE_PORT = 8080
SERVER_NAME = f"{SERVICE_NAME}.{SYSTEM_NAMESPACE}.svc"  # a SAN of the certificate scripts/deploy.sh creates
CA_CONFIG_MAP = "ai-storage-orchestrator-ca"
CA_KEY = "ca.crt"
CLIENT_SERVICE_ACCOUNT = "ai-migration-compare"
CLIENT_IDENTITY = f"{SYSTEM_NAMESPACE}/{CLIENT_SERVICE_ACCOUNT}"
TOKEN_AUDIENCE = "ai-storage-orchestrator"  # settings.token_audience's default (api/auth.py DEFAULT_AUDIENCE)
TOKEN_SECONDS = 3600
NFS_STORAGE_CLASS = "nfs"
CONNECT_TIMEOUT = 2.0
PROBE_TIMEOUT = 5.0
VERSION_TIMEOUT = 15.0
ACCESS_NAME = "ai-migration-compare"  # the Role and RoleBinding in the comparison's namespace
# What the orchestrator's SubjectAccessReviews ask (api/handlers.py, api/auth.py RESOURCE="pods"): POST a migration
# needs create and delete on pods in its namespace, GET (and DELETE, the cancel) of a migration get (and delete).
ACCESS_RULES: list[JSON] = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create", "delete"]}]

SERVICES = Resource("", "v1", "services", "Service")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
FIELD_MANAGER = "ai-storage-orchestrator-compare"


class DiscoveryError(CompareError):
    """Pieces the comparison needs are missing: one sentence each in ``problems``."""

    def __init__(self, problems: Sequence[str], found: Sequence[str] = ()) -> None:
        super().__init__(" ".join(problems))
        self.problems = list(problems)
        self.found = list(found)  # the lines of what was found, printed before the problems


class DiscoveryKube(Protocol):
    """The part of the API the discovery reads (``DiscoveryApi`` over the real API server)."""

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON: ...

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> tuple[list[JSON], str]: ...

    async def get_path(self, path: str) -> JSON: ...

    async def post_path(self, path: str, body: Mapping[str, Any]) -> JSON: ...


class AccessKube(Protocol):
    """What granting and revoking the ServiceAccount's rights needs."""

    async def apply(
        self, resource: Resource, obj: Mapping[str, Any], *, field_manager: str, dry_run: bool = False
    ) -> JSON: ...

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        uid: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> JSON: ...


class DiscoveryApi(PathApi):
    """``PathApi`` plus POST to a path (the TokenRequest subresource of a ServiceAccount)."""

    async def post_path(self, path: str, body: Mapping[str, Any]) -> JSON:
        # UNSAFE: a repeat after a lost answer would mint a second token (harmless, but not what was asked).
        return await self._json("POST", path, body=dict(body), idempotency=Idempotency.UNSAFE)


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    answered: bool
    detail: str  # "GET /readyz: 200" or why it did not answer


Prober = Callable[[str], Awaitable[ProbeAnswer]]


# kubeconfig ----------------------------------------------------------------------------------------------------------
def resolve_kubeconfig(given: str | None) -> tuple[str | None, str]:
    """The kubeconfig to load (None: in-cluster credentials) and where it came from: --kubeconfig, the first entry of
    $KUBECONFIG, ~/.kube/config."""
    if given:
        return given, f"--kubeconfig {given}"
    from_env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if from_env:
        return from_env, f"$KUBECONFIG {from_env}"
    default = Path.home() / ".kube" / "config"
    if default.exists():
        return str(default), str(default)
    return None, "in-cluster service account"


# the orchestrator's client -------------------------------------------------------------------------------------------
def ssl_context(*, ca_file: str | None, ca_data: str | None) -> ssl.SSLContext:
    """The system trust store plus ``ca_file`` and ``ca_data`` (PEM); ``OSError``/``ssl.SSLError`` when unusable."""
    return client_context(ca_file, ca_data)


def orchestrator_client(options: Options) -> OrchestratorClient:
    """The REST client for these options: pinned to ``server_name`` when discovery found the orchestrator by
    address. A CA that cannot be used raises ``OSError``/``ssl.SSLError`` here, before any request."""
    return OrchestratorClient(
        options.orchestrator_url,
        token=options.token,
        ca_file=options.ca_file,
        ca_data=options.ca_data,
        server_name=options.server_name,
    )


def _error_text(error: BaseException) -> str:
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate not accepted: {error.certificate_error}"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect: {error.os_error.strerror or error.os_error}"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return str(error) or type(error).__name__


def https_prober(
    context: ssl.SSLContext, *, server_name: str = SERVER_NAME, connect_timeout: float = CONNECT_TIMEOUT
) -> Callable[[aiohttp.ClientSession], Prober]:
    """A prober over a shared session: GET /readyz (an answer 200 or 503 is the orchestrator, ready or not), else
    /healthz 200; TLS verified for ``server_name`` whatever address is dialled. ``connect_timeout`` is the session's
    (``_probe_all``), named in the message of a connection that did not come up in time."""

    def bound(session: aiohttp.ClientSession) -> Prober:
        async def probe(url: str) -> ProbeAnswer:
            status = 0
            for path in ("/readyz", "/healthz"):
                try:
                    async with session.get(
                        url + path, ssl=context, server_hostname=server_name, allow_redirects=False
                    ) as response:
                        status = response.status
                        await response.read()
                except (aiohttp.ClientError, TimeoutError, OSError) as error:
                    if isinstance(error, aiohttp.ConnectionTimeoutError):
                        return ProbeAnswer(False, f"no connection within {connect_timeout:g}s")
                    return ProbeAnswer(False, _error_text(error))
                if status == 200 or (path == "/readyz" and status == 503):
                    return ProbeAnswer(True, f"GET {path}: {status}")
            return ProbeAnswer(False, f"GET /readyz and /healthz answered HTTP {status}: not the orchestrator")

        return probe

    return bound


async def _probe_all(
    urls: Sequence[str], *, prober: Prober | None, context: ssl.SSLContext | None, connect_timeout: float
) -> list[ProbeAnswer]:
    if prober is not None:
        return list(await asyncio.gather(*(prober(u) for u in urls)))
    assert context is not None
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT, sock_connect=connect_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        probe = https_prober(context, connect_timeout=connect_timeout)(session)
        return list(await asyncio.gather(*(probe(u) for u in urls)))


def _url(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"https://[{host}]:{port}"
    except ValueError:
        pass
    return f"https://{host}:{port}"


def _candidates(service: JSON, slices: Iterable[JSON]) -> list[tuple[str, str]]:
    """(url, how it was found) in order of preference: the cluster IP on the Service's port, then every ready
    endpoint address on the EndpointSlice's port of the same name."""
    spec = service.get("spec") or {}
    ports = spec.get("ports") or []
    port = next((p for p in ports if p.get("port") == SERVICE_PORT), None) or (ports[0] if ports else {})
    found: list[tuple[str, str]] = []
    cluster_ip = spec.get("clusterIP")
    if cluster_ip and cluster_ip != "None" and port.get("port"):
        found.append((_url(str(cluster_ip), int(port["port"])), "cluster IP"))
    for endpoint_slice in slices:
        slice_ports = endpoint_slice.get("ports") or []
        slice_port = next((p for p in slice_ports if p.get("name") == port.get("name")), None)
        if slice_port is None and len(slice_ports) == 1:
            slice_port = slice_ports[0]
        if slice_port is None or not slice_port.get("port"):
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:  # unset means ready
                continue
            pod = (endpoint.get("targetRef") or {}).get("name")
            how = f"ready endpoint of pod {pod}" if pod else "ready endpoint"
            for address in endpoint.get("addresses") or []:
                url = _url(str(address), int(slice_port["port"]))
                if url not in (u for u, _ in found):
                    found.append((url, how))
    return found


# the pieces ----------------------------------------------------------------------------------------------------------
@dataclass
class _Found:
    options: Options
    lines: list[str]
    problems: list[str]


async def _get_optional(kube: DiscoveryKube, resource: Resource, name: str, namespace: str | None) -> JSON | None:
    try:
        return await kube.get(resource, name, namespace=namespace)
    except KubeApiError as error:
        if error.not_found:
            return None
        raise


async def _orchestrator(kube: DiscoveryKube, found: _Found, *, prober: Prober | None, connect_timeout: float) -> None:
    o = found.options
    where = f"{SYSTEM_NAMESPACE}/{SERVICE_NAME}"
    try:
        service = await _get_optional(kube, SERVICES, SERVICE_NAME, SYSTEM_NAMESPACE)
    except KubeApiError as error:
        found.problems.append(f"Cannot read the orchestrator Service {where} ({error}): pass --orchestrator-url URL.")
        service = None
    else:
        if service is None:
            found.problems.append(
                f"No orchestrator Service {where}: deploy the orchestrator (./scripts/deploy.sh), or pass"
                " --orchestrator-url URL."
            )
    ca_data: str | None = None
    ca_source = f"--ca-file {o.ca_file}" if o.ca_file else ""
    if not o.ca_file:
        map_name = f"{SYSTEM_NAMESPACE}/{CA_CONFIG_MAP}"
        try:
            config_map = await _get_optional(kube, CONFIG_MAPS, CA_CONFIG_MAP, SYSTEM_NAMESPACE)
        except KubeApiError as error:
            found.problems.append(f"Cannot read the CA ConfigMap {map_name} ({error}): pass --ca-file FILE.")
            config_map = None
        else:
            ca_data = str(((config_map or {}).get("data") or {}).get(CA_KEY) or "") or None
            if ca_data is None:
                missing = "has no key ca.crt" if config_map is not None else "does not exist"
                found.problems.append(
                    f"No CA for the orchestrator's certificate: ConfigMap {map_name} {missing}"
                    " (./scripts/deploy.sh creates it); pass --ca-file FILE."
                )
        ca_source = f"the CA from ConfigMap {map_name}"
    if service is None or (ca_data is None and not o.ca_file):
        return
    try:
        slices, _ = await kube.list(
            ENDPOINT_SLICES, namespace=SYSTEM_NAMESPACE, label_selector=f"kubernetes.io/service-name={SERVICE_NAME}"
        )
    except KubeApiError:
        slices = []  # the cluster IP may still answer; the sentence below names what was tried
    candidates = _candidates(service, slices)
    context: ssl.SSLContext | None = None
    if prober is None:
        try:
            context = ssl_context(ca_file=o.ca_file, ca_data=ca_data)
        except (OSError, ssl.SSLError) as error:
            found.problems.append(f"The orchestrator's CA ({ca_source}) cannot be used: {error}.")
            return
    answers = await _probe_all(
        [u for u, _ in candidates], prober=prober, context=context, connect_timeout=connect_timeout
    )
    for (url, how), answer in zip(candidates, answers, strict=True):
        if answer.answered:
            found.options = replace(o, orchestrator_url=url, ca_data=ca_data, server_name=SERVER_NAME)
            found.lines.append(
                f"• Orchestrator: {url} (Service {where}, {how}; {answer.detail}; TLS verified as {SERVER_NAME} with"
                f" {ca_source}); override: --orchestrator-url, --ca-file"
            )
            return
    tried = "; ".join(f"{url} ({how}): {a.detail}" for (url, how), a in zip(candidates, answers, strict=True))
    if not any(how != "cluster IP" for _, how in candidates):
        tried = f"{tried}; no ready endpoints" if tried else "no cluster IP and no ready endpoints"
    found.problems.append(
        f"The orchestrator Service {where} answers at none of its addresses ({tried}): check its pods"
        f" (kubectl -n {SYSTEM_NAMESPACE} get pods -l app.kubernetes.io/name={SERVICE_NAME}), or pass"
        " --orchestrator-url URL."
    )


async def _ca_for_given_url(kube: DiscoveryKube, found: _Found) -> None:
    """An https --orchestrator-url without --ca-file: trust the deploy's CA too (ConfigMap kube-system/
    ai-storage-orchestrator-ca), besides the system store, when it exists. A courtesy: nothing is missing without it."""
    o = found.options
    if o.ca_file or o.ca_data or urlsplit(o.orchestrator_url).scheme != "https":
        return
    try:
        config_map = await _get_optional(kube, CONFIG_MAPS, CA_CONFIG_MAP, SYSTEM_NAMESPACE)
    except KubeApiError:
        return  # the system trust store alone, as with no cluster at all
    ca_data = str(((config_map or {}).get("data") or {}).get(CA_KEY) or "") or None
    if ca_data is not None:
        found.options = replace(o, ca_data=ca_data)
        found.lines.append(
            f"• CA: ConfigMap {SYSTEM_NAMESPACE}/{CA_CONFIG_MAP} (besides the system trust store), for"
            f" {o.orchestrator_url}; override: --ca-file"
        )


async def _token(kube: DiscoveryKube, found: _Found, *, required: bool) -> None:
    """Mint a token for the comparison's ServiceAccount. ``required``: the orchestrator was discovered, so a missing
    ServiceAccount is a missing piece; otherwise (a URL given without --token) minting is a courtesy."""
    o = found.options
    if not required:
        parsed = urlsplit(o.orchestrator_url)
        if parsed.scheme != "https" and not is_loopback_host(parsed.hostname or ""):
            found.lines.append(
                f"• Token: none (a token never goes over plain HTTP to {parsed.hostname}); override: --token"
            )
            return
    path = SERVICE_ACCOUNTS.path(namespace=SYSTEM_NAMESPACE, name=CLIENT_SERVICE_ACCOUNT, subresource="token")
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": [TOKEN_AUDIENCE], "expirationSeconds": TOKEN_SECONDS},
    }
    problem: str | None = None
    try:
        answer = await kube.post_path(path, body)
    except KubeApiError as error:
        if error.not_found:
            problem = (
                f"No ServiceAccount {CLIENT_IDENTITY} to mint the orchestrator's token for: apply k8s/"
                " (./scripts/deploy.sh), or pass --token TOKEN."
            )
        elif error.status == 403:
            problem = (
                f"Your kubeconfig's user may not create tokens for ServiceAccount {CLIENT_IDENTITY} (create"
                f" serviceaccounts/token in {SYSTEM_NAMESPACE} is forbidden): pass --token TOKEN, e.g. from"
                f" `kubectl create token {CLIENT_SERVICE_ACCOUNT} -n {SYSTEM_NAMESPACE} --audience {TOKEN_AUDIENCE}`"
                " run by someone who may."
            )
        else:
            problem = f"Cannot mint a token for ServiceAccount {CLIENT_IDENTITY} ({error}): pass --token TOKEN."
    else:
        status = answer.get("status") or {}
        token = status.get("token")
        if isinstance(token, str) and token:
            found.options = replace(found.options, token=token, minted_for=CLIENT_IDENTITY)
            found.lines.append(
                f"• Token: minted for ServiceAccount {CLIENT_IDENTITY} (audience {TOKEN_AUDIENCE}, expires"
                f" {status.get('expirationTimestamp')}; rights granted at set-up: get, create, delete pods in"
                f" namespace {o.namespace} only); override: --token"
            )
            return
        problem = f"The TokenRequest for ServiceAccount {CLIENT_IDENTITY} returned no token: pass --token TOKEN."
    if required:
        found.problems.append(problem)
    else:
        found.lines.append(f"• Token: none ({problem.rstrip('.')}); override: --token")


@dataclass(frozen=True, slots=True)
class NodeFacts:
    name: str
    simulated: bool
    cpu: int  # allocatable millicores
    excluded: str | None  # why it cannot host the workload; None: usable

    def describe(self) -> str:
        kind = "simulated, " if self.simulated else ""
        return f"{self.name} ({kind}Ready, {format_cpu(self.cpu)} allocatable CPU)"


def _tolerations(simulated: bool, workload: str) -> list[JSON]:
    variant = workload if workload in wl.WORKLOADS else ("simulated" if simulated else "tensorflow")
    if (variant == "simulated") != simulated:
        variant = "simulated" if simulated else "tensorflow"
    pod = wl.workload_pod(variant, node="-", namespace="-", claim=wl.CLAIM, complete_after="1s", labels={})
    return list((pod.get("spec") or {}).get("tolerations") or [])


def node_facts(node: Mapping[str, Any], *, workload: str = "auto") -> NodeFacts:
    name = str((node.get("metadata") or {}).get("name"))
    spec, status = node.get("spec") or {}, node.get("status") or {}
    simulated = is_simulated(node)
    try:
        cpu = cpu_millicores((status.get("allocatable") or {}).get("cpu") or 0)
    except (ValueError, ArithmeticError):
        cpu = 0
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    excluded: str | None = None
    if ready is None or ready.get("status") != "True":
        excluded = "not Ready"
    elif spec.get("unschedulable"):
        excluded = "cordoned"
    else:
        bad = untolerated_taints(spec.get("taints") or [], _tolerations(simulated, workload))
        if bad:
            texts = [f"{t.get('key')}{'=' + str(t['value']) if t.get('value') else ''}:{t.get('effect')}" for t in bad]
            excluded = f"taint {', '.join(texts)} not tolerated"
    return NodeFacts(name, simulated, cpu, excluded)


def choose_nodes(
    facts: Sequence[NodeFacts], *, source: str | None, target: str | None, pod_node: str | None
) -> tuple[str | None, str | None]:
    """Source: given, else the node the workload pod runs on, else the usable node with the most allocatable CPU;
    target: given, else the next usable one, preferring a node of the source's kind (simulated or real)."""
    usable = sorted((f for f in facts if f.excluded is None), key=lambda f: (-f.cpu, f.name))
    if source is None:
        if pod_node and pod_node != target:
            source = pod_node
        else:
            source = next((f.name for f in usable if f.name != target), None)
    if target is None and source is not None:
        kind = next((f.simulated for f in facts if f.name == source), None)
        others = [f for f in usable if f.name != source]
        others.sort(key=lambda f: f.simulated != kind)  # stable: most CPU first within each kind
        target = others[0].name if others else None
    return source, target


async def _nodes(kube: DiscoveryKube, found: _Found) -> tuple[bool | None, str | None]:
    """Fill source and target; (both simulated?, problem) -- simulated None when unknown."""
    o = found.options
    try:
        nodes, _ = await kube.list(NODES)
    except KubeApiError as error:
        return None, f"Cannot list the nodes ({error}): pass --source-node and --target-node."
    facts = [node_facts(n, workload=o.workload) for n in nodes]
    by_name = {f.name: f for f in facts}
    pod_node: str | None = None
    if o.source_node is None:
        try:
            pod = await _get_optional(kube, PODS, wl.POD_NAME, o.namespace)
        except KubeApiError:
            pod = None
        pod_node = str(((pod or {}).get("spec") or {}).get("nodeName") or "") or None
    source, target = choose_nodes(facts, source=o.source_node, target=o.target_node, pod_node=pod_node)
    if source is None or target is None:
        seen = ", ".join(f"{f.name} ({f.excluded or 'usable'})" for f in sorted(facts, key=lambda f: f.name))
        return None, (
            f"Fewer than two usable nodes for the source and the target (seen: {seen or 'no nodes'}): make two nodes"
            " Ready and schedulable, or name them with --source-node and --target-node."
        )
    if o.source_node is None:
        facts_of = by_name.get(source)
        why = (
            f"where pod {wl.POD_NAME} runs in {o.namespace}"
            if source == pod_node
            else "the usable node with the most allocatable CPU"
        )
        described = facts_of.describe() if facts_of else source
        found.lines.append(f"• Source node: {described}, {why}; override: --source-node")
    if o.target_node is None:
        facts_of = by_name.get(target)
        described = facts_of.describe() if facts_of else target
        found.lines.append(f"• Target node: {described}, the next usable node; override: --target-node")
    found.options = replace(found.options, source_node=source, target_node=target)
    chosen = [by_name.get(source), by_name.get(target)]
    simulated = all(f is not None and f.simulated for f in chosen)
    return simulated, None


def _nfs_export(pv: Mapping[str, Any]) -> tuple[str, str] | None:
    spec = pv.get("spec") or {}
    nfs = spec.get("nfs") or {}
    if spec.get("storageClassName") != NFS_STORAGE_CLASS or "ReadWriteMany" not in (spec.get("accessModes") or []):
        return None
    if not nfs.get("server") or not nfs.get("path"):
        return None
    return str(nfs["server"]), str(nfs["path"])


async def _volume(kube: DiscoveryKube, found: _Found, *, simulated: bool | None) -> str | None:
    """Fill pvc, or nfs_server/nfs_path; the problem sentence when there is no shared volume."""
    o = found.options
    override = "override: --pvc, --nfs-server/--nfs-path"
    try:
        claim = await _get_optional(kube, PVCS, wl.CLAIM, o.namespace)
    except KubeApiError as error:
        return f"Cannot read claim {wl.CLAIM} in namespace {o.namespace} ({error}): pass --pvc NAME."
    if claim is not None:
        spec = claim.get("spec") or {}
        modes = ", ".join(spec.get("accessModes") or []) or "no access modes"
        volume = f", bound to PV {spec['volumeName']}" if spec.get("volumeName") else ""
        found.options = replace(o, pvc=wl.CLAIM)
        found.lines.append(
            f"• Shared volume: claim {wl.CLAIM} in namespace {o.namespace} ({modes}{volume}); {override}"
        )
        return None
    try:
        pvs, _ = await kube.list(PVS)
    except KubeApiError as error:
        return f"Cannot list PersistentVolumes ({error}): pass --pvc NAME or --nfs-server HOST."
    ours = {"namespace": o.namespace, "name": wl.CLAIM}

    def free(pv: JSON) -> bool:
        ref = (pv.get("spec") or {}).get("claimRef")
        phase = (pv.get("status") or {}).get("phase")
        return phase == "Available" and (not ref or {k: ref.get(k) for k in ours} == ours)

    def bound(pv: JSON) -> bool:
        return (pv.get("status") or {}).get("phase") == "Bound"

    for test, how in ((free, "Available"), (bound, "Bound")):
        for pv in sorted(pvs, key=lambda p: str((p.get("metadata") or {}).get("name"))):
            export = _nfs_export(pv) if test(pv) else None
            if export is None:
                continue
            server, path = export
            name = (pv.get("metadata") or {}).get("name")
            ref = (pv.get("spec") or {}).get("claimRef") or {}
            holder = f" by claim {ref.get('namespace')}/{ref.get('name')}" if how == "Bound" else ""
            found.options = replace(o, nfs_server=server, nfs_path=path)
            found.lines.append(
                f"• Shared volume: NFS {server}:{path}, the export of PV {name} (storageClass {NFS_STORAGE_CLASS},"
                f" ReadWriteMany, {how}{holder}); the run binds its own PV and claim {wl.CLAIM} in {o.namespace}"
                f" to that export, PV {name} stays as it is; {override}"
            )
            return None
    if simulated:
        found.lines.append(
            "• Shared volume: none found; simulated nodes never mount one, so the run creates PV and claim"
            f" {wl.CLAIM} for NFS 127.0.0.1:{o.nfs_path}; {override}"
        )
        return None
    return (
        f"no shared volume: pass --pvc NAME (a ReadWriteMany claim in namespace {o.namespace}) or --nfs-server HOST"
        " [--nfs-path PATH], or apply k8s/nfs"
    )


async def discover(
    options: Options,
    kube: DiscoveryKube,
    *,
    url_given: bool = False,
    server: str | None = None,
    prober: Prober | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> tuple[Options, list[str]]:
    """The options with every value no flag gave filled in, and one line per value found (each naming its flag).

    ``url_given``: --orchestrator-url (or $AI_STORAGE_ORCHESTRATOR_URL) was set, so the orchestrator is not looked
    for (and a token is minted only when the ServiceAccount exists). ``server``: the API server's URL, for the lines.
    ``prober``: how an orchestrator address is tried (tests); by default GET /readyz over TLS verified for
    ``SERVER_NAME`` with the discovered CA. Raises ``DiscoveryError`` with one sentence per missing piece."""
    found = _Found(options, [], [])
    _path, source = resolve_kubeconfig(options.kubeconfig)
    at = f" at {server}" if server else ""
    try:
        async with asyncio.timeout(VERSION_TIMEOUT):
            version = await kube.get_path("/version")
    except (KubeApiError, TimeoutError) as error:
        if isinstance(error, KubeApiError) and error.status in (401, 403):
            why = f"refused the credentials of {source} ({error})"
        else:
            why = f"cannot be reached ({error or 'no answer within ' + format(VERSION_TIMEOUT, 'g') + 's'})"
        sentence = f"The Kubernetes API server{at} {why}: check the kubeconfig or pass --kubeconfig"
        raise DiscoveryError([f"{sentence}; nothing else was checked."]) from None
    found.lines.append(
        f"• Cluster: {server or 'the API server'}, Kubernetes {version.get('gitVersion')} (credentials of {source});"
        " override: --kubeconfig"
    )
    if options.namespace == Options().namespace:
        found.lines.append(f"• Namespace: {options.namespace} (created unless it exists); override: --namespace")
    if not url_given:
        await _orchestrator(kube, found, prober=prober, connect_timeout=connect_timeout)
    else:
        await _ca_for_given_url(kube, found)
    if options.token is None:
        await _token(kube, found, required=not url_given)
    simulated: bool | None = None
    if options.source_node is None or options.target_node is None or not (options.pvc or options.nfs_server):
        simulated, problem = await _nodes(kube, found)
        if problem and (options.source_node is None or options.target_node is None):
            found.problems.append(problem)
    if not (options.pvc or options.nfs_server):
        problem = await _volume(kube, found, simulated=simulated)
        if problem:
            found.problems.append(problem)
    if found.problems:
        raise DiscoveryError(found.problems, found.lines)
    return found.options, found.lines


# the ServiceAccount's rights -----------------------------------------------------------------------------------------
def access_objects(namespace: str, *, labels: Mapping[str, str] | None = None) -> tuple[JSON, JSON]:
    """The Role (exactly what the orchestrator's SubjectAccessReviews ask) and the RoleBinding to the comparison's
    ServiceAccount, in the comparison's namespace only."""
    metadata = {"name": ACCESS_NAME, "namespace": namespace, "labels": dict(labels or {})}
    role: JSON = {
        "apiVersion": ROLES.api_version,
        "kind": ROLES.kind,
        "metadata": dict(metadata),
        "rules": [dict(rule) for rule in ACCESS_RULES],
    }
    binding: JSON = {
        "apiVersion": ROLE_BINDINGS.api_version,
        "kind": ROLE_BINDINGS.kind,
        "metadata": dict(metadata),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCESS_NAME},
        "subjects": [{"kind": "ServiceAccount", "name": CLIENT_SERVICE_ACCOUNT, "namespace": SYSTEM_NAMESPACE}],
    }
    return role, binding


async def grant_comparison_access(
    kube: AccessKube, namespace: str, *, labels: Mapping[str, str] | None = None
) -> list[str]:
    """Apply the Role and RoleBinding (idempotent); the lines to print. ``CompareError`` when the API refuses (a
    user may only grant rights it holds itself)."""
    role, binding = access_objects(namespace, labels=labels)
    for resource, obj in ((ROLES, role), (ROLE_BINDINGS, binding)):
        try:
            await kube.apply(resource, obj, field_manager=FIELD_MANAGER)
        except KubeApiError as error:
            raise CompareError(
                f"grant ServiceAccount {CLIENT_IDENTITY} its rights in namespace {namespace}:"
                f" {resource.kind} {ACCESS_NAME}: {error}"
            ) from error
    verbs = ", ".join(ACCESS_RULES[0]["verbs"])
    return [
        f"  granted ServiceAccount {CLIENT_IDENTITY} {verbs} on pods in namespace {namespace} only"
        f" (Role and RoleBinding {ACCESS_NAME}): what the orchestrator checks before it moves a pod"
    ]


async def revoke_comparison_access(kube: AccessKube, namespace: str) -> list[str]:
    """Delete the RoleBinding and the Role (a namespace the run keeps); gone already is fine."""
    lines: list[str] = []
    for resource in (ROLE_BINDINGS, ROLES):
        try:
            await kube.delete(resource, ACCESS_NAME, namespace=namespace)
            lines.append(f"  deleted {resource.kind} {ACCESS_NAME}")
        except KubeApiError as error:
            if not error.not_found:
                lines.append(f"  could not delete {resource.kind} {ACCESS_NAME}: {error}")
    return lines
