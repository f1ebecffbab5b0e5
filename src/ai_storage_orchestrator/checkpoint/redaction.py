"""What may be said about a hook's output: its size, and a short redacted summary for the orchestrator's log only;
and what of any other command's error output may reach a message.

A quiesce hook runs in the workload's container, so its output is the workload's: it can hold anything that container
can read -- its service-account token, a mounted Secret, a private key. The output is therefore never written where
others read it: not into the PodMigration (status or error message), not into Events, not into the checkpoint
manifest on the shared volume. What is kept is ``output_bytes`` (how much it wrote) there, and -- when a hook fails,
so that an operator can see why -- at most ``SUMMARY_LIMIT`` characters of the end of its output in the
orchestrator's own log, after ``redact`` replaced whatever looks like a credential:

* PEM blocks (``-----BEGIN …-----`` to ``-----END …-----``, or to the end if cut);
* JSON Web Tokens (``eyJ…`` followed by a dot: every Kubernetes service-account token);
* the value after ``Bearer``/``Basic``;
* the value of ``key=value`` / ``key: value`` pairs whose key names a password, secret, token, credential or API key;
* any run of 32 or more base64/base64url/hex characters (a secret key, a token of another format).

The checkpoint's own commands (``tar``, ``sh`` scripts, ``sha256sum``, ``rm``) run in the same container, so their
error output is the container's too -- a file's contents, a path holding a token, whatever the shell or a wrapper
prints. It is kept in error messages (an operator needs "Permission denied"), which reach the PodMigration's status,
Events and the REST view: ``redact_output`` passes it through the same ``redact`` first, at every place a message is
built from it (``transport.CommandResult.describe``, ``copying``, ``archive``, ``saving``). One difference: an
absolute path there is redacted component by component (the tools name the file they failed on), so a secret of
another format that starts with ``/`` and holds more slashes can escape the long-run rule in pieces.

Redaction is best effort and errs on the side of hiding (a long file name may be hidden too); control characters are
replaced so that the summary cannot forge log lines on a console.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"
SUMMARY_LIMIT = 256  # characters of a failed hook's output (its end) that reach the log

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*-----.*?(?:-----END [A-Z0-9 ]*-----|\Z)", re.DOTALL)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s\"',;]+")
_SECRET_PAIR = re.compile(
    r"(?i)([\w.-]*(?:password|passwd|secret|token|api[_-]?key|credential|private[_-]?key)[\w.-]*[\"']?)"
    r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;]+)"
)
_LONG_RUN = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


# An absolute path in a tool's message: "/" at the start or after a space, quote, bracket, ":", "=", "," or ".".
_ABSOLUTE_PATH = re.compile(r"""(?<![^\s'"`(<\[:=,.])/[^\s'"`)>\],;:]*""")


def redact(text: str, *, paths: bool = False) -> str:
    """``text`` with everything that looks like a credential replaced by ``[REDACTED]``, control characters by ``?``.

    ``paths``: an absolute path loses only its components that are long runs, not the whole path (a run of 32
    characters may hold ``/``, so a long path would go whole): the tools' messages name the files they failed on,
    which the operator needs."""
    text = _PEM.sub(REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _SECRET_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _long_runs_beside_paths(text) if paths else _long_runs(text)
    return _CONTROL.sub("?", text)


# A Kubernetes name (lowercase words joined by "-": a pod, a container, a migration's target) is not a secret, however
# long: the messages that name the pod an exec failed in must keep it. Tokens mix cases or carry "+/_=".
_KUBERNETES_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)+")


def _long_runs(text: str) -> str:
    return _LONG_RUN.sub(lambda m: m.group(0) if _KUBERNETES_NAME.fullmatch(m.group(0)) else REDACTED, text)


def _long_runs_beside_paths(text: str) -> str:
    parts: list[str] = []
    done = 0
    for path in _ABSOLUTE_PATH.finditer(text):
        parts.append(_long_runs(text[done : path.start()]))
        parts.append("/".join(_long_runs(component) for component in path.group(0).split("/")))
        done = path.end()
    parts.append(_long_runs(text[done:]))
    return "".join(parts)


def redact_output(text: str, *, truncated: bool = False) -> str:
    """A command's captured output (``text``, its end when ``truncated``) as it may appear in an error message:
    redacted, stripped. A word cut at the front of a truncated tail is dropped first, like ``summarise`` does, so a
    token cut short cannot slip under the patterns' minimum lengths."""
    if truncated:
        text = _drop_first_word(text)
    return redact(text, paths=True).strip()


def summarise(tail: str, *, truncated: bool, limit: int = SUMMARY_LIMIT) -> str:
    """The end of a hook's output, redacted, at most ``limit`` characters (plus a leading ``…`` when cut).

    ``tail`` is what was kept of the output (its end); ``truncated`` says the output was longer. A cut word at the
    front is dropped before redacting, so that a token cut short cannot slip under the patterns' minimum lengths."""
    cut = truncated
    if cut:
        tail = _drop_first_word(tail)
    text = redact(tail).strip()
    if len(text) > limit:
        text, cut = _drop_first_word(text[-limit:]).lstrip(), True
    return f"…{text}" if cut and text else text


def _drop_first_word(text: str) -> str:
    """``text`` from its first whitespace on (nothing when it has none: it is all one cut word)."""
    found = re.search(r"\s", text)
    return text[found.start() :] if found else ""
