"""`serve --webhooks off|self|external` and its port and certificate flags, as Settings and their checks."""

from __future__ import annotations

import pytest

from ai_storage_orchestrator.cli import build_parser, main
from ai_storage_orchestrator.cli.serve import settings_from
from ai_storage_orchestrator.settings import Settings, WebhookMode


def _settings(*flags: str) -> Settings:
    return settings_from(build_parser().parse_args(["serve", *flags]))


def test_webhooks_are_off_by_default() -> None:
    settings = _settings()
    assert (settings.webhooks, settings.webhook_port) == (WebhookMode.OFF, 8443)
    assert settings.webhooks == "off"
    settings.validate()


def test_the_flags_become_settings() -> None:
    settings = _settings(
        "--webhooks=external", "--webhook-port=9443", "--webhook-tls-cert-file=c.pem", "--webhook-tls-key-file=k.pem"
    )
    assert settings.webhooks is WebhookMode.EXTERNAL
    assert (settings.webhook_port, settings.webhook_tls_cert_file, settings.webhook_tls_key_file) == (
        9443,
        "c.pem",
        "k.pem",
    )
    assert settings.webhook_client_ca_file is None
    settings.validate()
    _settings("--webhooks=self", "--webhook-port=0").validate()
    checked = _settings(
        "--webhooks=external", "--webhook-tls-cert-file=c", "--webhook-tls-key-file=k", "--webhook-client-ca-file=ca"
    )
    assert checked.webhook_client_ca_file == "ca"
    checked.validate()


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--webhooks=external"], "needs --webhook-tls-cert-file"),
        (["--webhooks=external", "--webhook-tls-cert-file=c.pem"], "needs --webhook-tls-cert-file"),
        (["--webhooks=self", "--webhook-tls-cert-file=c.pem", "--webhook-tls-key-file=k"], "external only"),
        (["--webhooks=self", "--webhook-client-ca-file=ca.pem"], "external only"),
        (["--webhooks=self", "--webhook-port=8080"], "REST API's --port"),
        (["--webhook-port=70000"], "must be a TCP port"),
    ],
)
def test_contradictions_are_refused(flags: list[str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        _settings(*flags).validate()


def test_serve_refuses_a_webhook_certificate_it_cannot_load(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["serve", "--webhooks=external", "--webhook-tls-cert-file=/absent.crt", "--webhook-tls-key-file=/absent.key"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ai-storage-orchestrator: cannot load the TLS certificate /absent.crt with key /absent.key")
