"""`ai-storage-orchestrator serve`: run the controller and the REST API."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import ssl
import sys

from ai_storage_orchestrator import logging as logging_setup
from ai_storage_orchestrator.api.tls import check_listener, server_context
from ai_storage_orchestrator.conventions import MIGRATE_TO_ANNOTATION
from ai_storage_orchestrator.runtime import serve
from ai_storage_orchestrator.settings import AuthMode, Settings, WebhookMode


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="run the orchestrator (controller + REST API)")
    defaults = Settings()
    parser.add_argument("--kubeconfig", help="kubeconfig path (default: in-cluster service account)")
    parser.add_argument(
        "--host",
        default=defaults.host,
        help=(
            "address to bind (default %(default)s); any other than loopback needs --auth=kubernetes and HTTPS"
            " (--tls-cert-file/--tls-key-file) or --insecure-http"
        ),
    )
    parser.add_argument("--port", type=int, default=defaults.port, help="port (default %(default)s)")
    parser.add_argument(
        "--auth",
        choices=[m.value for m in AuthMode],
        default=defaults.auth.value,
        help="kubernetes: TokenReview + SubjectAccessReview; none: only allowed on loopback (default %(default)s)",
    )
    parser.add_argument(
        "--token-audience",
        default=defaults.token_audience,
        metavar="AUDIENCE",
        help=(
            "--auth=kubernetes accepts only tokens minted for this audience, e.g. `kubectl create token SA --audience"
            " %(default)s` (such a token is useless against the API server itself). An empty value accepts the API"
            " server's own tokens instead, which lets this service replay them: only for clients that cannot get"
            " another token (default %(default)s)"
        ),
    )
    tls = parser.add_argument_group("transport (HTTPS unless on loopback)")
    tls.add_argument(
        "--tls-cert-file",
        metavar="PEM",
        help="serve HTTPS with this certificate chain (reloaded when the file changes, e.g. a cert-manager Secret)",
    )
    tls.add_argument("--tls-key-file", metavar="PEM", help="the private key of --tls-cert-file")
    tls.add_argument(
        "--insecure-http",
        action="store_true",
        help=(
            "serve plain HTTP on a non-loopback --host. Only when a TLS-terminating proxy in front of this port (a"
            " sidecar in the same pod) encrypts the traffic; without TLS files any other address is refused"
        ),
    )
    webhooks = parser.add_argument_group("admission webhooks (docs/webhooks.md)")
    webhooks.add_argument(
        "--webhooks",
        choices=[m.value for m in WebhookMode],
        default=defaults.webhooks.value,
        help=(
            "serve the admission webhooks (pod CREATE, pods/eviction) over HTTPS on --webhook-port. self: on 127.0.0.1"
            " with a self-signed certificate, registering their configurations (removed on exit), for local clusters;"
            " external: on 0.0.0.0 with --webhook-tls-cert-file/--webhook-tls-key-file, configured by k8s/webhooks"
            " (default %(default)s)"
        ),
    )
    webhooks.add_argument(
        "--webhook-port", type=int, default=defaults.webhook_port, help="the webhooks' port (default %(default)s)"
    )
    webhooks.add_argument(
        "--webhook-tls-cert-file", metavar="PEM", help="--webhooks external: the serving certificate chain"
    )
    webhooks.add_argument("--webhook-tls-key-file", metavar="PEM", help="the private key of --webhook-tls-cert-file")
    webhooks.add_argument(
        "--webhook-client-ca-file",
        metavar="PEM",
        help=(
            "--webhooks external: refuse any caller without a client certificate signed by this CA -- the API"
            " server, given one through its admission configuration (docs/webhooks.md); default: no client check"
        ),
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespaces",
        type=_namespace_list,
        metavar="NS[,NS...]",
        help=(
            "namespace-scoped mode: watch and migrate pods of these namespaces only, refusing REST requests for others"
            " (403 namespace_not_managed); needs Roles in these namespaces only (k8s/namespaced). Default: all"
        ),
    )
    scope.add_argument("--namespace", help="the same as --namespaces with one namespace")
    parser.add_argument(
        "--trust-annotations",
        action="store_true",
        help=(
            f"act on {MIGRATE_TO_ANNOTATION} even when the ValidatingAdmissionPolicyBinding"
            f" {defaults.admission_policy_binding} (k8s/admission) is not installed. Without that policy anyone who may"
            " patch a pod can make the orchestrator move it or exec hooks in it: only for clusters that enforce the"
            " same rule by other means (default: such triggers are refused with admission_policy_missing)"
        ),
    )
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--max-active-migrations", type=int, default=defaults.max_active_migrations)
    parser.add_argument("--max-active-per-node", type=int, default=defaults.max_active_per_node)
    parser.add_argument("--checkpoint-retention", type=int, default=defaults.checkpoint_retention)
    parser.add_argument("--keep-failed-checkpoints", action="store_true")
    parser.add_argument(
        "--no-prewarm",
        dest="prewarm",
        action="store_false",
        help="stop the source before creating the target of a checkpoint-restart move (default: pre-warm it)",
    )
    parser.add_argument(
        "--checkpoint-concurrency",
        type=int,
        default=defaults.checkpoint_concurrency,
        help="checkpoints running at once, beside the reconcile workers (default %(default)s)",
    )
    parser.add_argument(
        "--checkpoint-concurrency-per-node",
        type=int,
        default=defaults.checkpoint_concurrency_per_node,
        help="checkpoints running at once on one source node (default %(default)s)",
    )
    parser.add_argument("--leader-election", action=argparse.BooleanOptionalAction, default=defaults.leader_election)
    parser.add_argument("--lease-name", default=defaults.lease_name)
    parser.add_argument("--lease-namespace", default=defaults.lease_namespace)
    parser.add_argument("--lease-duration", type=float, default=defaults.lease_duration_seconds)
    parser.add_argument(
        "--finished-migration-ttl",
        type=_seconds_or_never,
        default=defaults.finished_migration_ttl_seconds,
        help="seconds after which a finished PodMigration is deleted; 'never' keeps them (default %(default)s)",
    )
    parser.add_argument(
        "--identity",
        default=None,
        help="leader-election identity, unique per process (default: $POD_NAME or the host name, plus a random suffix)",
    )
    parser.add_argument("--install-crd", action="store_true", help="create the PodMigration CRD if it is missing")
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default=defaults.log_format)
    parser.add_argument("--log-level", default=defaults.log_level)
    parser.set_defaults(handler=run)


def _namespace_list(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected namespaces separated by commas, got {value!r}")
    return names


def _seconds_or_never(value: str) -> float | None:
    if value.strip().lower() == "never":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or 'never', got {value!r}") from None


def settings_from(args: argparse.Namespace) -> Settings:
    values = {
        "kubeconfig": args.kubeconfig,
        "host": args.host,
        "port": args.port,
        "auth": AuthMode(args.auth),
        "token_audience": args.token_audience.strip(),
        "tls_cert_file": args.tls_cert_file or None,
        "tls_key_file": args.tls_key_file or None,
        "insecure_http": args.insecure_http,
        "namespace": args.namespace,
        "namespaces": args.namespaces or (),
        "trust_annotations": args.trust_annotations,
        "webhooks": WebhookMode(args.webhooks),
        "webhook_port": args.webhook_port,
        "webhook_tls_cert_file": args.webhook_tls_cert_file or None,
        "webhook_tls_key_file": args.webhook_tls_key_file or None,
        "webhook_client_ca_file": args.webhook_client_ca_file or None,
        "workers": args.workers,
        "max_active_migrations": args.max_active_migrations,
        "max_active_per_node": args.max_active_per_node,
        "checkpoint_retention": args.checkpoint_retention,
        "keep_failed_checkpoints": args.keep_failed_checkpoints,
        "prewarm": args.prewarm,
        "checkpoint_concurrency": args.checkpoint_concurrency,
        "checkpoint_concurrency_per_node": args.checkpoint_concurrency_per_node,
        "leader_election": args.leader_election,
        "lease_name": args.lease_name,
        "lease_namespace": args.lease_namespace,
        "lease_duration_seconds": args.lease_duration,
        "install_crd": args.install_crd,
        "finished_migration_ttl_seconds": args.finished_migration_ttl,
        "log_format": args.log_format,
        "log_level": args.log_level,
    }
    if args.identity:
        values["identity"] = args.identity
    return Settings(**values)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        settings.validate()
        check_listener(settings)
        if settings.webhooks is WebhookMode.SELF and importlib.util.find_spec("cryptography") is None:
            raise ValueError("--webhooks self makes its certificate with the cryptography package: install it")
    except ValueError as error:
        print(f"ai-storage-orchestrator: {error}", file=sys.stderr)
        return 2
    for cert, key in (
        (settings.tls_cert_file, settings.tls_key_file),
        (settings.webhook_tls_cert_file, settings.webhook_tls_key_file),
    ):
        try:
            if cert and key:
                server_context(cert, key)
        except (ssl.SSLError, OSError) as error:
            print(
                f"ai-storage-orchestrator: cannot load the TLS certificate {cert} with key {key}: {error}",
                file=sys.stderr,
            )
            return 2
    if settings.webhook_client_ca_file:
        try:
            ssl.create_default_context(cafile=settings.webhook_client_ca_file)
        except (ssl.SSLError, OSError) as error:
            print(
                f"ai-storage-orchestrator: cannot load --webhook-client-ca-file {settings.webhook_client_ca_file}:"
                f" {error}",
                file=sys.stderr,
            )
            return 2
    logging_setup.configure(log_format=settings.log_format, level=settings.log_level)
    asyncio.run(serve(settings))
    return 0
