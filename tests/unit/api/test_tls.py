"""How the API listens: HTTPS from certificate files (reloaded when they change), plain HTTP only on loopback or
behind an explicit --insecure-http; a start that would serve plain HTTP to the network is refused."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from ai_storage_orchestrator.api.app import create_app
from ai_storage_orchestrator.api.auth import AllowAll
from ai_storage_orchestrator.api.tls import CertificateReloader, check_listener, is_loopback, reloader_for, site_for
from ai_storage_orchestrator.cli import build_parser, main
from ai_storage_orchestrator.cli.serve import settings_from
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.rest_client import client_context
from ai_storage_orchestrator.settings import AuthMode, Settings
from tests.cluster.certs import ClusterCerts, generate
from tests.unit.api.fakes import FakeService

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterCerts:
    """A CA and a serving certificate for localhost/127.0.0.1 (the test control plane's own PKI generator)."""
    return generate(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterCerts:
    return generate(tmp_path_factory.mktemp("other-pki"))


@dataclass
class Served:
    reloader: CertificateReloader
    port: int
    cert_file: Path
    key_file: Path

    def url(self, path: str = "/healthz", scheme: str = "https") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def served(pki: ClusterCerts, tmp_path: Path) -> AsyncIterator[Served]:
    """The API on 127.0.0.1 with TLS, through the same `reloader_for`/`site_for` that `serve` uses."""
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(pki.serving_cert, cert)
    shutil.copy(pki.serving_key, key)
    settings = Settings(port=0, tls_cert_file=str(cert), tls_key_file=str(key))
    reloader = reloader_for(settings)
    assert reloader is not None
    runner = web.AppRunner(create_app(service=FakeService(), metrics=Metrics(), authenticator=AllowAll()))
    await runner.setup()
    try:
        await site_for(runner, settings, reloader).start()
        port = runner.addresses[0][1]
        yield Served(reloader, port, cert, key)
    finally:
        await runner.cleanup()


async def get(url: str, context: ssl.SSLContext | bool) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, ssl=context) as response:
        return response.status


async def peer_certificate(port: int, context: ssl.SSLContext) -> tuple[x509.Certificate, str]:
    """The certificate the server presents to a new connection, and the TLS version agreed."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der), str(ssl_object.version())
    finally:
        writer.close()
        await writer.wait_closed()


def replace_file(source: Path, target: Path) -> None:
    """As a Secret volume updates: the new content appears at once, under a new inode."""
    staged = target.with_suffix(".new")
    shutil.copy(source, staged)
    os.replace(staged, target)


# the listener policy --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_plain_http_on_loopback_is_allowed(host: str) -> None:
    assert is_loopback(host)
    check_listener(Settings(host=host))
    check_listener(Settings(host=host, auth=AuthMode.KUBERNETES))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "orchestrator.example.com", ""])
def test_plain_http_on_the_network_is_refused(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ValueError, match="refusing to serve plain HTTP") as caught:
        check_listener(Settings(host=host, auth=AuthMode.KUBERNETES))
    assert "--tls-cert-file" in str(caught.value)
    assert "--insecure-http" in str(caught.value)
    check_listener(Settings(host=host, auth=AuthMode.KUBERNETES, insecure_http=True))  # a TLS-terminating sidecar
    check_listener(Settings(host=host, auth=AuthMode.KUBERNETES, tls_cert_file="c", tls_key_file="k"))


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"tls_cert_file": "c"}, "go together"),
        ({"tls_key_file": "k"}, "go together"),
        ({"tls_cert_file": "c", "tls_key_file": "k", "insecure_http": True}, "contradicts"),
    ],
)
def test_inconsistent_transport_flags_are_refused(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_listener(Settings(**values))  # type: ignore[arg-type]


def test_serve_flags_become_settings() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--host=0.0.0.0",
            "--auth=kubernetes",
            "--tls-cert-file=/tls/tls.crt",
            "--tls-key-file=/tls/tls.key",
            "--token-audience=orchestrator.example.com",
        ]
    )
    settings = settings_from(args)
    assert (settings.tls_cert_file, settings.tls_key_file) == ("/tls/tls.crt", "/tls/tls.key")
    assert (settings.insecure_http, settings.token_audience) == (False, "orchestrator.example.com")
    defaults = settings_from(build_parser().parse_args(["serve", "--insecure-http", "--token-audience="]))
    assert (defaults.tls_cert_file, defaults.insecure_http, defaults.token_audience) == (None, True, "")
    assert settings_from(build_parser().parse_args(["serve"])).token_audience == "ai-storage-orchestrator"


def test_serve_refuses_plain_http_on_all_addresses_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--auth", "kubernetes"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ai-storage-orchestrator: refusing to serve plain HTTP on 0.0.0.0")
    assert "Traceback" not in err


def test_serve_keeps_auth_none_on_loopback_only(capsys: pytest.CaptureFixture[str], pki: ClusterCerts) -> None:
    tls = [f"--tls-cert-file={pki.serving_cert}", f"--tls-key-file={pki.serving_key}"]
    assert main(["serve", "--host", "0.0.0.0", "--auth", "none", *tls]) == 2
    assert "--auth=none is only allowed when binding to loopback" in capsys.readouterr().err


@pytest.mark.parametrize("broken", ["missing", "mismatched"])
def test_serve_refuses_a_certificate_it_cannot_load(
    capsys: pytest.CaptureFixture[str], pki: ClusterCerts, other_pki: ClusterCerts, tmp_path: Path, broken: str
) -> None:
    key = tmp_path / "absent.key" if broken == "missing" else other_pki.serving_key
    argv = ["serve", "--host=0.0.0.0", "--auth=kubernetes", f"--tls-cert-file={pki.serving_cert}"]
    assert main([*argv, f"--tls-key-file={key}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ai-storage-orchestrator: cannot load the TLS certificate {pki.serving_cert}")
    assert "Traceback" not in err


# HTTPS ----------------------------------------------------------------------------------------------------------------
async def test_the_api_answers_over_tls(served: Served, pki: ClusterCerts) -> None:
    trusted = client_context(str(pki.ca_cert))
    assert await get(served.url(), trusted) == 200
    assert await get(served.url("/api/migrations"), trusted) == 200
    certificate, version = await peer_certificate(served.port, trusted)
    assert certificate == x509.load_pem_x509_certificate(pki.serving_cert.read_bytes())
    assert version in ("TLSv1.2", "TLSv1.3")
    assert served.reloader.context.minimum_version is ssl.TLSVersion.TLSv1_2


async def test_an_untrusted_or_plain_client_gets_nothing(served: Served) -> None:
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await get(served.url(), client_context())  # the system trust store does not know the test CA
    with pytest.raises(aiohttp.ClientError):
        await get(served.url(scheme="http"), True)


async def test_a_rotated_certificate_is_served_to_new_connections(
    served: Served, pki: ClusterCerts, other_pki: ClusterCerts
) -> None:
    old, new = client_context(str(pki.ca_cert)), client_context(str(other_pki.ca_cert))
    assert not served.reloader.reload_if_changed()  # nothing changed yet
    replace_file(other_pki.serving_cert, served.cert_file)
    replace_file(other_pki.serving_key, served.key_file)
    assert served.reloader.reload_if_changed()
    certificate, _ = await peer_certificate(served.port, new)
    assert certificate == x509.load_pem_x509_certificate(other_pki.serving_cert.read_bytes())
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await get(served.url(), old)
    assert await get(served.url(), new) == 200


async def test_a_broken_pair_is_not_loaded(served: Served, pki: ClusterCerts, other_pki: ClusterCerts) -> None:
    """Half a rotation (the new certificate, the old key) keeps the previous pair in service."""
    replace_file(other_pki.serving_cert, served.cert_file)
    assert not served.reloader.reload_if_changed()
    assert await get(served.url(), client_context(str(pki.ca_cert))) == 200
    served.key_file.unlink()
    assert not served.reloader.reload_if_changed()
    assert await get(served.url(), client_context(str(pki.ca_cert))) == 200
    replace_file(other_pki.serving_key, served.key_file)  # the rotation completes: now it loads
    assert served.reloader.reload_if_changed()
    assert await get(served.url(), client_context(str(other_pki.ca_cert))) == 200
