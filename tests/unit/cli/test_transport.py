"""The client side of the transport: https:// URLs verified (system trust store + --ca-file), and the bearer token
sent only over HTTPS or to loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ai_storage_orchestrator.api.tls import server_context
from ai_storage_orchestrator.cli.client import CA_FILE_ENV
from ai_storage_orchestrator.rest_client import InsecureTokenTransport, RestSession, token_refusal
from tests.cluster.certs import ClusterCerts, generate
from tests.unit.cli.conftest import MIGRATION_ID, CannedApi, migration, parse, run_cli

pytestmark = pytest.mark.unit

GET = "GET /api/migrations/{id}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterCerts:
    return generate(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def tls_api(pki: ClusterCerts) -> AsyncIterator[CannedApi]:
    """The canned API of conftest.py, served over HTTPS with a certificate for 127.0.0.1 from a private CA."""
    canned = CannedApi()
    app = web.Application()
    app.router.add_route("*", "/api/migrations/{migration_id}", canned.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_context(str(pki.serving_cert), str(pki.serving_key)))
    canned.url = str(server.make_url("")).rstrip("/")
    assert canned.url.startswith("https://")
    canned.answer(GET, (200, migration("Completed", "done")))
    yield canned
    await server.close()


async def test_status_over_https_with_the_private_ca(
    tls_api: CannedApi, pki: ClusterCerts, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["status", MIGRATION_ID, "--url", tls_api.url, "--ca-file", str(pki.ca_cert), "--token", "s3cret"]
    assert await run_cli(argv) == 0
    assert MIGRATION_ID in capsys.readouterr().out
    (seen,) = tls_api.seen
    assert seen.headers["Authorization"] == "Bearer s3cret"  # HTTPS: the token may travel


async def test_an_untrusted_certificate_is_an_error_with_a_hint(
    tls_api: CannedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_cli(["status", MIGRATION_ID, "--url", tls_api.url, "--token", "s3cret"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the orchestrator at {tls_api.url}: its certificate is not trusted" in err
    assert "--ca-file" in err
    assert tls_api.seen == []


async def test_a_ca_file_that_cannot_be_used_is_a_usage_error(
    tls_api: CannedApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    for path in (tmp_path / "absent.pem", not_pem):
        assert await run_cli(["status", MIGRATION_ID, "--url", tls_api.url, "--ca-file", str(path)]) == 2
        assert f"error: cannot use --ca-file {path}" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://192.0.2.10:8080", "http://orchestrator.example.com", "HTTP://10.0.0.1"])
async def test_no_token_over_plain_http_to_another_host(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before any connection: these addresses would only time out (--timeout bounds the test if not)."""
    assert await run_cli(["status", MIGRATION_ID, "--url", url, "--token", "s3cret", "--timeout", "5"]) == 2
    err = capsys.readouterr().err
    assert "error: refusing to send the bearer token over plain HTTP to" in err
    assert "https://" in err


async def test_a_token_to_loopback_over_http_is_sent(api: CannedApi) -> None:
    api.answer(GET, (200, migration("Completed", "done")))
    assert await run_cli(["status", MIGRATION_ID, "--url", api.url, "--token", "s3cret"]) == 0
    assert api.seen[0].headers["Authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1:8080", False),
        ("http://127.9.9.9", False),
        ("http://localhost:8080", False),
        ("http://[::1]:8080", False),
        ("https://orchestrator.example.com", False),
        ("https://10.0.0.1:8443", False),
        ("http://10.0.0.1:8080", True),
        ("http://localhost.example.com", True),
        ("ws://orchestrator.example.com", True),
    ],
)
def test_token_refusal(url: str, refused: bool) -> None:
    assert (token_refusal(url) is not None) is refused


async def test_rest_session_refuses_before_sending() -> None:
    async with RestSession("http://192.0.2.10:8080", token="t", timeout=5) as session:
        with pytest.raises(InsecureTokenTransport) as caught:
            await session.send("GET", "/readyz")
    assert isinstance(caught.value, aiohttp.ClientError)  # callers that handle aiohttp's errors handle this one too
    assert caught.value.host == "192.0.2.10"


def test_ca_file_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CA_FILE_ENV, raising=False)
    assert parse(["status", MIGRATION_ID]).ca_file is None
    monkeypatch.setenv(CA_FILE_ENV, "/etc/orchestrator/ca.crt")
    assert parse(["list"]).ca_file == "/etc/orchestrator/ca.crt"
    assert parse(["cancel", MIGRATION_ID, "--ca-file", "flag.pem"]).ca_file == "flag.pem"
