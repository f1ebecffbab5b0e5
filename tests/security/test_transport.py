"""A network attacker between the caller and the API: plain HTTP where tokens would cross the network is refused at
start-up, a client that does not trust the certificate (or speaks plain HTTP, or old TLS) gets nothing, and the CLI
never sends a token over plain HTTP off loopback, nor follows a redirect with it."""

from __future__ import annotations

import ssl

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ai_storage_orchestrator.cli import main
from ai_storage_orchestrator.rest_client import InsecureTokenTransport, RestSession, client_context
from tests.cluster.certs import ClusterCerts
from tests.unit.api.test_tls import Served, other_pki, pki, served

__all__ = ["other_pki", "pki", "served"]


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "10.0.0.5", "localhost.attacker.example", "127.0.0.1.nip.io", "0177.0.0.1", "::ffff:10.0.0.1"],
)
def test_plain_http_off_loopback_is_refused_at_start(capsys: pytest.CaptureFixture[str], host: str) -> None:
    assert main(["serve", "--host", host, "--auth", "kubernetes"]) == 2
    err = capsys.readouterr().err
    assert f"refusing to serve plain HTTP on {host}" in err
    assert "Traceback" not in err


def test_auth_none_off_loopback_is_refused_even_with_tls(capsys: pytest.CaptureFixture[str], pki: ClusterCerts) -> None:
    tls = [f"--tls-cert-file={pki.serving_cert}", f"--tls-key-file={pki.serving_key}"]
    assert main(["serve", "--host", "0.0.0.0", "--auth", "none", *tls]) == 2
    assert "--auth=none is only allowed when binding to loopback" in capsys.readouterr().err


async def test_a_client_without_the_ca_is_refused(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(served.url(), ssl=client_context())


async def test_a_client_of_another_ca_is_refused(served: Served, other_pki: ClusterCerts) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(served.url(), ssl=client_context(str(other_pki.ca_cert)))


async def test_plain_http_to_the_tls_port_gets_no_answer(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            await http.get(served.url(scheme="http"))


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_a_client_limited_to_tls_1_1_is_refused(served: Served, pki: ClusterCerts) -> None:
    old = client_context(str(pki.ca_cert))
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            await http.get(served.url(), ssl=old)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5:8080",
        "http://orchestrator.example.com",
        "http://localhost.attacker.example:8080",
        "http://127.0.0.1.nip.io:8080",
        "http://[::ffff:a00:5]:8080",
        "HTTP://192.0.2.1:8080",
    ],
)
async def test_the_cli_never_sends_a_token_over_plain_http_off_loopback(url: str) -> None:
    """Refused before any connection: these addresses are unroutable or unknown, so an attempt would hang or fail
    with another error."""
    async with RestSession(url, token="secret-token", timeout=5) as session:
        with pytest.raises(InsecureTokenTransport):
            await session.send("GET", "/api/migrations")


def test_the_cli_command_says_why_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--url", "http://10.0.0.5:8080", "--token", "secret-token"]) != 0
    err = capsys.readouterr().err
    assert "refusing to send the bearer token over plain HTTP to 10.0.0.5" in err
    assert "secret-token" not in err


async def test_a_redirect_does_not_carry_the_token_away() -> None:
    """A loopback server (a port-forward gone wrong) answers 307 to another host: the answer is returned as it is,
    nothing follows it with the token."""
    seen: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        seen.append(request.path)
        raise web.HTTPTemporaryRedirect("http://192.0.2.1:8080/steal")

    app = web.Application()
    app.router.add_get("/{tail:.*}", redirect)
    async with TestServer(app, host="127.0.0.1") as server:
        url = f"http://127.0.0.1:{server.port}"
        async with RestSession(url, token="secret-token", timeout=5) as session:
            status, _text, headers = await session.send("GET", "/api/migrations")
    assert (status, headers["Location"], seen) == (307, "http://192.0.2.1:8080/steal", ["/api/migrations"])
