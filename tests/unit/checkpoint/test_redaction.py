"""What of a hook's output may reach the orchestrator's log: credentials redacted, bounded, no control characters."""

from __future__ import annotations

import base64
import random

import pytest

from ai_storage_orchestrator.checkpoint.redaction import REDACTED, SUMMARY_LIMIT, redact, summarise

# The shape of a projected service-account token (header.payload.signature, base64url).
JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IkR4In0"
    ".eyJhdWQiOlsiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjIl0sInN1YiI6InN5c3RlbTpzZXJ2aWNlYWNjb3VudDptbDpkZWZhdWx0In0"
    ".c2lnbmF0dXJlLWJ5dGVzLXRoYXQtYXJlLWxvbmctZW5vdWdoLXRvLWJlLXJlYWw"
)
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----"
_ARBITRARY = random.Random("test_redaction")  # arbitrary bytes, alike in every process (parallel workers)
SECRET_B64 = base64.b64encode(_ARBITRARY.randbytes(48)).decode()
SECRET_HEX = _ARBITRARY.randbytes(20).hex()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"token: {JWT}\n", JWT),
        (JWT, JWT),
        (f"cat /var/run/secrets/kubernetes.io/serviceaccount/token\n{JWT}", JWT),
        (f"Authorization: Bearer {SECRET_HEX[:20]}", SECRET_HEX[:20]),
        (f"curl -H 'authorization: basic {SECRET_HEX[:16]}'", SECRET_HEX[:16]),
        (f"DB_PASSWORD=hunter2-{SECRET_HEX[:6]} exported", f"hunter2-{SECRET_HEX[:6]}"),
        (f'{{"api_key": "{SECRET_HEX[:12]}"}}', SECRET_HEX[:12]),
        (f"client-secret: '{SECRET_HEX[:10]}'", SECRET_HEX[:10]),
        (f"key {SECRET_B64} written", SECRET_B64),
        (f"sha {SECRET_HEX}", SECRET_HEX),
        (f"before\n{PEM}\nafter", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
        (f"cut off: {PEM[:60]}", "MIIEvQIBADANBgkq"),
    ],
)
def test_credentials_are_redacted(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert REDACTED in redacted


def test_ordinary_output_is_kept() -> None:
    text = "flushing optimizer state to /scratch/opt\nerror: disk quota exceeded (exit 7)"
    assert redact(text) == text


def test_control_characters_cannot_forge_log_lines() -> None:
    assert redact("ok\x1b[2J\rfake\x00line\x85") == "ok?[2J?fake?line?"
    assert redact("two\nlines\tkept") == "two\nlines\tkept"


def test_summary_is_bounded_and_keeps_the_end() -> None:
    text = "".join(f"line {i} of the hook\n" for i in range(500)) + "error: disk quota exceeded"
    summary = summarise(text, truncated=False)
    assert len(summary) <= SUMMARY_LIMIT + 1
    assert summary.startswith("…")
    assert summary.endswith("error: disk quota exceeded")


def test_a_token_cut_at_the_front_of_the_kept_tail_is_dropped() -> None:
    # The kept tail starts inside the token: what is left of it is shorter than any pattern's minimum.
    tail = JWT[-20:] + "\nhook failed"
    assert summarise(tail, truncated=True) == "…hook failed"
    assert JWT[-20:] not in summarise(tail, truncated=True)
    # Not truncated: the same text is a whole word and is kept (it is not credential-shaped).
    assert summarise("short word\nhook failed", truncated=False) == "short word\nhook failed"


def test_summary_of_nothing_is_empty() -> None:
    assert summarise("", truncated=False) == ""
    assert summarise("allonewordcutoff", truncated=True) == ""
