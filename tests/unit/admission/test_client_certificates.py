"""--webhook-client-ca-file: the webhooks' HTTPS server on 127.0.0.1 answers only callers whose client certificate
the given CA signed (the API server's); without one, or with one of another CA, the handshake fails."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ai_storage_orchestrator.admission import selfsigned
from ai_storage_orchestrator.admission.ports import ALLOW_EVICTION, JSON, EvictionVerdict
from ai_storage_orchestrator.admission.server import create_webhook_app, serving
from ai_storage_orchestrator.api.tls import require_client_certificates, server_context

pytestmark = pytest.mark.unit


class Admits:
    def mutate_pod_create(self, pod: JSON, namespace: str) -> list[JSON]:
        return []

    async def review_eviction(self, namespace: str, name: str, *, dry_run: bool) -> EvictionVerdict:
        return ALLOW_EVICTION


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    encoding, private = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, private, serialization.NoEncryption())


def client_pair(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """(its CA's certificate, a client certificate that CA signed, its key) as files."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])

    def builder(subject: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
        )

    ca = (
        builder(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    client = (
        builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]), key.public_key())
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / f"{name}-ca.crt", directory / f"{name}.crt", directory / f"{name}.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(client.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem(key))
    return paths


@pytest.fixture
def server_pair() -> Iterator[tuple[selfsigned.SelfSigned, selfsigned.PairFiles]]:
    pair = selfsigned.issue("127.0.0.1")
    with selfsigned.written(pair) as files:
        yield pair, files


async def test_only_callers_with_a_certificate_of_the_client_ca_are_answered(
    tmp_path: Path, server_pair: tuple[selfsigned.SelfSigned, selfsigned.PairFiles]
) -> None:
    pair, files = server_pair
    api_server_ca, api_server_cert, api_server_key = client_pair(tmp_path, "api-server")
    _, stranger_cert, stranger_key = client_pair(tmp_path, "stranger")
    context = server_context(files.cert_file, files.key_file)
    require_client_certificates(context, str(api_server_ca))

    def client_context(cert: Path | None, key: Path | None) -> ssl.SSLContext:
        trusting = ssl.create_default_context(cadata=pair.ca_pem.decode())
        if cert is not None and key is not None:
            trusting.load_cert_chain(cert, key)
        return trusting

    async with serving(create_webhook_app(Admits()), host="127.0.0.1", port=0, ssl_context=context) as port:
        url = f"https://127.0.0.1:{port}/healthz"
        async with aiohttp.ClientSession() as session:
            async with session.get(url, ssl=client_context(api_server_cert, api_server_key)) as answer:
                assert answer.status == 200
            for cert, key in ((None, None), (stranger_cert, stranger_key)):
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(url, ssl=client_context(cert, key)) as refused:
                        await refused.read()
