"""How the REST API listens: HTTPS from certificate files, or plain HTTP only where that is safe.

Callers send bearer tokens (Kubernetes credentials) and read pod names, nodes and checkpoint locations, so the API
speaks TLS (1.2 or newer) whenever it is reachable from another machine:

* ``--tls-cert-file F --tls-key-file K``: HTTPS with that PEM certificate chain and key. The files are watched
  (``CertificateReloader``): a rotated certificate -- a renewed cert-manager Secret, mounted as a volume -- is served
  to new connections without a restart; a broken pair is logged and the current one stays.
* no TLS files: plain HTTP, allowed only on a loopback address (``--host 127.0.0.1``, the default: local use,
  ``kubectl port-forward``, tests). Anything else is refused at start-up, because tokens would cross the network in
  clear text ...
* ... unless ``--insecure-http`` says that TLS is terminated in front of this port: a TLS-terminating sidecar in the
  same pod (an Envoy/nginx/service-mesh proxy that owns the certificate) that forwards to this port over the pod's
  own network namespace. Only then is plain HTTP on a non-loopback address correct, and the flag makes the choice
  visible in the manifest. (Behind such a proxy every caller's address is the proxy's, so the per-address limit on
  failed authentications of ``api/auth.py`` is shared by all callers.)

``--auth=none`` stays loopback-only whatever the transport (``Settings.validate``)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from aiohttp import web

from ai_storage_orchestrator.settings import LOOPBACK_HOSTS, Settings

RELOAD_INTERVAL_SECONDS = 30.0

log = structlog.get_logger(__name__)


def is_loopback(host: str) -> bool:
    """`localhost` or an address of 127.0.0.0/8 or ::1 (brackets allowed); a name other than localhost is not."""
    host = host.strip().strip("[]")
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listener(settings: Settings) -> None:
    """ValueError with the reason when `settings` would serve the API insecurely (checked before anything starts)."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if bool(cert) != bool(key):
        raise ValueError("--tls-cert-file and --tls-key-file go together: give both (HTTPS) or neither")
    if cert and settings.insecure_http:
        raise ValueError("--insecure-http contradicts --tls-cert-file/--tls-key-file: choose HTTPS or plain HTTP")
    if not cert and not settings.insecure_http and not is_loopback(settings.host):
        raise ValueError(
            f"refusing to serve plain HTTP on {settings.host}: bearer tokens and migration data would cross the"
            " network unencrypted. Give --tls-cert-file and --tls-key-file to serve HTTPS, bind a loopback address"
            " (--host 127.0.0.1), or pass --insecure-http if a TLS-terminating proxy in front of this port (a sidecar"
            " in the same pod) already encrypts the traffic"
        )


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 or newer, Python's default ciphers, no renegotiation, the given cert chain.
    ``ssl.SSLError``/``OSError`` when the files cannot be read or do not match."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(cert_file, key_file)
    return context


def require_client_certificates(context: ssl.SSLContext, ca_file: str) -> None:
    """Make `context` refuse every handshake without a client certificate that the CA in `ca_file` signed."""
    context.load_verify_locations(cafile=ca_file)
    context.verify_mode = ssl.CERT_REQUIRED


@dataclass(frozen=True, slots=True)
class _Stamp:
    cert: tuple[int, int, int]
    key: tuple[int, int, int]


def _stamp(path: str) -> tuple[int, int, int]:
    # stat follows symlinks: a Secret volume swaps its `..data` link, which changes the inode seen here.
    info = os.stat(path)
    return info.st_ino, info.st_size, info.st_mtime_ns


class CertificateReloader:
    """Holds the serving context and loads the files into it again when they change.

    A new pair is first loaded into a scratch context: a half-written or mismatched pair is refused (and logged)
    without touching the live context, which keeps serving the previous certificate. Connections already open keep
    theirs; every new handshake gets the new one."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._stamp = self._current_stamp()
        self.context = server_context(cert_file, key_file)

    def _current_stamp(self) -> _Stamp:
        return _Stamp(_stamp(self.cert_file), _stamp(self.key_file))

    def reload_if_changed(self) -> bool:
        """True when a changed pair was loaded; False when nothing changed or the new pair is unusable."""
        try:
            stamp = self._current_stamp()
        except OSError as error:
            log.warning("tls.reload_failed", cert_file=self.cert_file, error=str(error))
            return False
        if stamp == self._stamp:
            return False
        try:
            server_context(self.cert_file, self.key_file)  # the whole pair must load before the live context changes
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as error:
            log.warning("tls.reload_failed", cert_file=self.cert_file, error=str(error))
            return False
        self._stamp = stamp
        log.info("tls.reloaded", cert_file=self.cert_file)
        return True

    async def watch(self, interval: float = RELOAD_INTERVAL_SECONDS) -> None:
        """Check the files every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()

    @contextlib.asynccontextmanager
    async def watching(self, *, name: str) -> AsyncIterator[None]:
        """Reload the pair whenever its files change while the block runs (a task named `name`)."""
        task = asyncio.create_task(self.watch(), name=name)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def reloader_for(settings: Settings) -> CertificateReloader | None:
    """The serving certificate of `settings` (loaded now, so a bad pair fails before anything starts), or None for
    plain HTTP."""
    check_listener(settings)
    if settings.tls_cert_file and settings.tls_key_file:
        return CertificateReloader(settings.tls_cert_file, settings.tls_key_file)
    return None


def site_for(runner: web.BaseRunner, settings: Settings, reloader: CertificateReloader | None) -> web.TCPSite:
    """The listening site of `settings`: HTTPS with `reloader`'s context, else plain HTTP."""
    return web.TCPSite(
        runner, settings.host, settings.port, ssl_context=reloader.context if reloader is not None else None
    )
