"""`compare`'s discovery against the real API server: the orchestrator's Service, EndpointSlice and CA ConfigMap, the
comparison's ServiceAccount and the KWOK nodes are found; the minted token passes a TokenReview for the orchestrator's
audience; the Role granted in the comparison's namespace allows exactly what the orchestrator checks, there only.

The "orchestrator" is a TLS server on 127.0.0.1 whose certificate names only ai-storage-orchestrator.kube-system.svc
(no IP): reaching it by address proves the client verifies the service name, not the address it dials."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes_asyncio import client

from ai_storage_orchestrator.compare import discovery as d
from ai_storage_orchestrator.compare.cluster import CompareError
from ai_storage_orchestrator.compare.options import Options
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import CONFIG_MAPS, PVCS, SUBJECT_ACCESS_REVIEWS, TOKEN_REVIEWS, KubeApi
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.impersonation import poll_until, service_account_user

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

JSON = dict[str, Any]
SA_USER = service_account_user("kube-system", "ai-migration-compare")
POD_ADDRESS, NOT_READY_ADDRESS = "10.244.0.7", "10.244.0.8"


@dataclass(frozen=True)
class Pki:
    ca_pem: str
    cert: Path
    key: Path


def _pki(directory: Path) -> Pki:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ai-storage-orchestrator CA (test)")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, d.SERVER_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d.SERVER_NAME)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Pki(ca.public_bytes(serialization.Encoding.PEM).decode(), cert_path, key_path)


@contextlib.asynccontextmanager
async def _fake_orchestrator(pki: Pki) -> AsyncIterator[int]:
    """An HTTPS server on 127.0.0.1 answering /readyz and /api/openapi.json; yields its port."""

    async def readyz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready", "message": "test"})

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response({"info": {"version": "test"}})

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/openapi.json", openapi)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.cert), str(pki.key))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.SockSite(runner, sock, ssl_context=context).start()
        yield port
    finally:
        await runner.cleanup()
        sock.close()


def _deployment(port: int, ca_pem: str) -> list[tuple[Any, JSON]]:
    labels = {"app.kubernetes.io/name": "ai-storage-orchestrator"}
    return [
        (
            d.SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "ai-storage-orchestrator", "namespace": "kube-system", "labels": labels},
                "spec": {"ports": [{"name": "https", "port": 8080, "targetPort": "https"}]},  # no selector
            },
        ),
        (
            d.ENDPOINT_SLICES,
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "ai-storage-orchestrator-test",
                    "namespace": "kube-system",
                    "labels": {"kubernetes.io/service-name": "ai-storage-orchestrator", **labels},
                },
                "addressType": "IPv4",
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                "endpoints": [  # the API server refuses loopback addresses here: see _prober
                    {"addresses": [NOT_READY_ADDRESS], "conditions": {"ready": False}},  # never tried
                    {"addresses": [POD_ADDRESS], "conditions": {"ready": True}},
                ],
            },
        ),
        (
            CONFIG_MAPS,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "ai-storage-orchestrator-ca", "namespace": "kube-system", "labels": labels},
                "data": {"ca.crt": ca_pem},
            },
        ),
        (
            d.SERVICE_ACCOUNTS,
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "ai-migration-compare", "namespace": "kube-system", "labels": labels},
                "automountServiceAccountToken": False,
            },
        ),
    ]


@contextlib.asynccontextmanager
async def _created(kube: KubeApi, objects: list[tuple[Any, JSON]]) -> AsyncIterator[None]:
    made: list[tuple[Any, str, str | None]] = []
    try:
        for resource, obj in objects:
            namespace = obj["metadata"].get("namespace")
            await kube.create(resource, obj, namespace=namespace)
            made.append((resource, obj["metadata"]["name"], namespace))
        yield
    finally:
        for resource, name, namespace in reversed(made):
            with contextlib.suppress(KubeApiError):
                await kube.delete(resource, name, namespace=namespace)


@contextlib.asynccontextmanager
async def _prober(ca_pem: str, asked: list[str]) -> AsyncIterator[d.Prober]:
    """discovery's own HTTPS prober (TLS verified for the service name with this CA), except that this machine stands
    in for the pod at POD_ADDRESS: its requests go to 127.0.0.1. The cluster IP is tried for real and leads nowhere."""
    timeout = aiohttp.ClientTimeout(total=5, sock_connect=1)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        real = d.https_prober(d.ssl_context(ca_file=None, ca_data=ca_pem), connect_timeout=1)(session)

        async def probe(url: str) -> d.ProbeAnswer:
            asked.append(url)
            return await real(url.replace(f"//{POD_ADDRESS}:", "//127.0.0.1:"))

        yield probe


async def _may(kube: KubeApi, verb: str, namespace: str) -> bool:
    review = await kube.create(
        SUBJECT_ACCESS_REVIEWS,
        {
            "apiVersion": SUBJECT_ACCESS_REVIEWS.api_version,
            "kind": SUBJECT_ACCESS_REVIEWS.kind,
            "spec": {
                "user": SA_USER,
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
                "resourceAttributes": {"verb": verb, "group": "", "resource": "pods", "namespace": namespace},
            },
        },
    )
    return (review.get("status") or {}).get("allowed") is True


async def test_discovery_finds_the_deployed_pieces_and_mints_a_token_the_api_server_accepts(
    cluster: ClusterHandle, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    kube = d.DiscoveryApi(api)
    pki = _pki(tmp_path)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "training-data", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    asked: list[str] = []
    async with (
        _fake_orchestrator(pki) as port,
        _created(kube, [*_deployment(port, pki.ca_pem), (PVCS, claim)]),
        _prober(pki.ca_pem, asked) as prober,
    ):
        options, lines = await d.discover(
            Options(namespace=namespace, kubeconfig=str(cluster.kubeconfig)),
            kube,
            server=str(api.configuration.host),
            prober=prober,
        )

        service = await kube.get(d.SERVICES, "ai-storage-orchestrator", namespace="kube-system")
        assert asked == [f"https://{service['spec']['clusterIP']}:8080", f"https://{POD_ADDRESS}:{port}"]
        assert options.orchestrator_url == f"https://{POD_ADDRESS}:{port}"
        assert (options.server_name, options.ca_data) == ("ai-storage-orchestrator.kube-system.svc", pki.ca_pem)
        assert options.minted_for == "kube-system/ai-migration-compare"
        assert options.pvc == "training-data"
        assert options.source_node in cluster.node_names
        assert options.target_node in cluster.node_names
        assert options.source_node != options.target_node
        assert [line.split(":")[0] for line in lines] == [
            "• Cluster",
            "• Orchestrator",
            "• Token",
            "• Source node",
            "• Target node",
            "• Shared volume",
        ]
        assert lines[1].startswith(
            f"• Orchestrator: https://{POD_ADDRESS}:{port} (Service kube-system/ai-storage-orchestrator, ready endpoint"
        )

        # The token is for the orchestrator's audience, and only for it.
        assert options.token
        review = await kube.create(
            TOKEN_REVIEWS,
            {
                "apiVersion": TOKEN_REVIEWS.api_version,
                "kind": TOKEN_REVIEWS.kind,
                "spec": {"token": options.token, "audiences": ["ai-storage-orchestrator"]},
            },
        )
        status = review["status"]
        assert status.get("authenticated") is True, status
        assert status["user"]["username"] == SA_USER
        assert "ai-storage-orchestrator" in status["audiences"]
        foreign = await kube.create(
            TOKEN_REVIEWS,
            {"apiVersion": TOKEN_REVIEWS.api_version, "kind": TOKEN_REVIEWS.kind, "spec": {"token": options.token}},
        )
        assert foreign["status"].get("authenticated") is not True  # worthless against the API server itself

        # The client dials an address and verifies the service name (the certificate has no IP) with the CA found.
        here = replace(options, orchestrator_url=f"https://127.0.0.1:{port}")
        async with d.orchestrator_client(here) as orchestrator:
            assert await orchestrator.ready() == (True, '{"status": "ready", "message": "test"}')
        async with d.orchestrator_client(replace(here, server_name="other.example")) as wrong_name:
            with pytest.raises(CompareError, match="cannot reach the orchestrator"):
                await wrong_name.ready()

        # The rights: what the orchestrator checks, in the comparison's namespace only; gone after the revoke.
        assert not await _may(kube, "create", namespace)
        granted = await d.grant_comparison_access(kube, namespace)
        assert granted[0].startswith("  granted ServiceAccount kube-system/ai-migration-compare get, create, delete")

        async def allowed() -> bool:
            return all([await _may(kube, verb, namespace) for verb in ("get", "create", "delete")])

        await poll_until(allowed, timeout=10, what="the granted Role in force")
        assert not await _may(kube, "list", namespace)
        assert not await _may(kube, "create", "default")
        assert await d.grant_comparison_access(kube, namespace) == granted  # applying again is harmless
        assert await d.revoke_comparison_access(kube, namespace) == [
            "  deleted RoleBinding ai-migration-compare",
            "  deleted Role ai-migration-compare",
        ]

        async def revoked() -> bool:
            return not await _may(kube, "create", namespace)

        await poll_until(revoked, timeout=10, what="the revoked Role out of force")


async def test_nothing_deployed_is_one_sentence_per_missing_piece(
    cluster: ClusterHandle, api: client.ApiClient, namespace: str
) -> None:
    with pytest.raises(d.DiscoveryError) as raised:
        await d.discover(Options(namespace=namespace), d.DiscoveryApi(api), connect_timeout=1.0)
    assert [p.split(":")[0] for p in raised.value.problems] == [
        "No orchestrator Service kube-system/ai-storage-orchestrator",
        "No CA for the orchestrator's certificate",
        "No ServiceAccount kube-system/ai-migration-compare to mint the orchestrator's token for",
    ]  # the KWOK nodes are there, and simulated nodes need no shared volume


async def test_the_bare_script_with_nothing_deployed_names_every_missing_piece(cluster: ClusterHandle) -> None:
    """What the auditor sees typing `./scripts/ai_migration_compare.sh` before build.sh and deploy.sh."""
    environment = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "AISO_CLI": f"{sys.executable} -m ai_storage_orchestrator.cli",
    }
    environment.pop("AI_STORAGE_ORCHESTRATOR_URL", None)
    process = await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "ai_migration_compare.sh"), env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    errors = stderr.decode()
    assert process.returncode == 2, (stdout.decode(), errors)
    assert "Traceback" not in errors + stdout.decode()
    problems = [line.strip() for line in errors.splitlines() if line.strip().startswith("✗")]
    assert [p.split(":")[0] for p in problems] == [
        "✗ No orchestrator Service kube-system/ai-storage-orchestrator",
        "✗ No CA for the orchestrator's certificate",
        "✗ No ServiceAccount kube-system/ai-migration-compare to mint the orchestrator's token for",
    ]
    assert all(p.endswith(".") or "pass --" in p for p in problems)
