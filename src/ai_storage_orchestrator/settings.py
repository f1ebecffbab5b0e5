"""Run-time settings of the orchestrator (from CLI flags; every one has a safe default)."""

from __future__ import annotations

import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from enum import StrEnum


class AuthMode(StrEnum):
    NONE = "none"
    KUBERNETES = "kubernetes"


class WebhookMode(StrEnum):
    """How the admission webhooks are served (admission/, docs/webhooks.md)."""

    OFF = "off"
    # HTTPS on 127.0.0.1 with a self-signed certificate; the process registers the configurations (local clusters).
    SELF = "self"
    # HTTPS on 0.0.0.0 with --webhook-tls-cert-file/--webhook-tls-key-file; the configurations come from k8s/webhooks.
    EXTERNAL = "external"


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# The ValidatingAdmissionPolicyBinding (and its policy) shipped in k8s/admission/annotation-policy.yaml.
ADMISSION_POLICY_BINDING = "ai-storage-orchestrator-annotations"
_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # an RFC 1123 label


def default_identity() -> str:
    """The leader-election identity when --identity is not given: the pod's name (POD_NAME, from the downward API) or
    the host name, plus a random suffix, as client-go's controllers do. Host name and pid alone are not unique: two
    replicas with hostNetwork on one machine share the host name, and a container's pid is its namespace's, often 1."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True)
class Settings:
    kubeconfig: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    auth: AuthMode = AuthMode.NONE
    namespace: str | None = None  # watch one namespace (--namespace, the old spelling of one --namespaces)
    # Namespace-scoped mode (--namespaces a,b): pods, claims and PodMigrations are watched, and migrations accepted, in
    # these namespaces only; nodes and volumes are still read cluster-wide. Empty (and no `namespace`): all.
    namespaces: tuple[str, ...] = ()
    workers: int = 4
    max_active_migrations: int = 20
    max_active_per_node: int = 5
    checkpoint_retention: int = 3
    # Checkpoints run beside the reconcile workers (controller/checkpointing.py): at most this many at once …
    checkpoint_concurrency: int = 8
    # … and this many on one source node.
    checkpoint_concurrency_per_node: int = 2
    keep_failed_checkpoints: bool = False
    # A checkpoint-restart move starts its target, held by a gate, before the source stops (controller/planning/
    # gate.py); off (--no-prewarm): the source stops first and the target is created after, as before.
    prewarm: bool = True
    leader_election: bool = True
    lease_name: str = "ai-storage-orchestrator"
    lease_namespace: str = "kube-system"
    lease_duration_seconds: float = 15.0
    identity: str = field(default_factory=lambda: default_identity())
    install_crd: bool = False
    # Finished PodMigrations (each holds a whole pod spec) are deleted this long after they ended, like a Job's
    # ttlSecondsAfterFinished; None keeps them forever.
    finished_migration_ttl_seconds: float | None = 24 * 3600.0
    max_body_bytes: int = 64 * 1024
    # HTTPS for the REST API (api/tls.py): a PEM certificate chain and its key, reloaded when the files change.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # Plain HTTP on a non-loopback address, for a TLS-terminating proxy in front of the port (api/tls.py says why).
    insecure_http: bool = False
    # The audience TokenReviews ask for (api/auth.py); "" accepts the API server's own audiences instead.
    token_audience: str = "ai-storage-orchestrator"
    # Annotation triggers act only while the ValidatingAdmissionPolicyBinding of k8s/admission, which decides who may
    # write the annotations, is installed (controller/triggers.py): looked up by this name, the shipped one ...
    admission_policy_binding: str = ADMISSION_POLICY_BINDING
    # ... unless this is set (--trust-annotations): for clusters that enforce the same rule by other means.
    trust_annotations: bool = False
    # The admission webhooks (admission/): off, self or external (WebhookMode), on their own HTTPS port.
    webhooks: WebhookMode = WebhookMode.OFF
    webhook_port: int = 8443
    webhook_tls_cert_file: str | None = None
    webhook_tls_key_file: str | None = None
    # --webhooks external: callers must present a client certificate this CA signed (the API server's, docs/webhooks.md)
    webhook_client_ca_file: str | None = None
    log_format: str = "auto"  # json | console | auto (console on a TTY)
    log_level: str = "info"
    # Crash-testing aid, set only through the AISO_FAULT_POINT environment variable: "before:<Phase>" stops a
    # migration's worker before that phase's step, "after:<Phase>" after the step acted but before the next phase
    # is recorded. Tests SIGKILL the process there and check that a restarted orchestrator finishes correctly.
    # "freeze:<point>" stops the whole process there with SIGSTOP; it goes on when continued (leader fencing tests).
    fault_point: str | None = field(default_factory=lambda: os.environ.get("AISO_FAULT_POINT") or None)

    @property
    def captures_owned_pods(self) -> bool:
        """Owned pods can move: this process serves the webhook that captures their owners' replacement pods."""
        return self.webhooks is not WebhookMode.OFF

    @property
    def watched_namespaces(self) -> tuple[str, ...]:
        """The namespaces the orchestrator is limited to; () for all."""
        if self.namespaces:
            return self.namespaces
        return (self.namespace,) if self.namespace else ()

    def validate(self) -> None:
        if self.namespace and self.namespaces:
            raise ValueError("--namespace is one namespace of --namespaces: give one of them")
        for name in self.watched_namespaces:
            if not _NAMESPACE_NAME.fullmatch(name):
                raise ValueError(f"not a namespace name: {name!r}")
        if len(set(self.watched_namespaces)) != len(self.watched_namespaces):
            raise ValueError(f"a namespace is named twice: {','.join(self.watched_namespaces)}")
        if self.auth is AuthMode.NONE and self.host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"--auth=none is only allowed when binding to loopback; refusing to serve {self.host} without "
                "authentication (use --auth=kubernetes)"
            )
        caps = (
            self.workers,
            self.max_active_migrations,
            self.max_active_per_node,
            self.checkpoint_concurrency,
            self.checkpoint_concurrency_per_node,
        )
        if min(caps) < 1:
            raise ValueError("workers and concurrency caps must be at least 1")
        if self.finished_migration_ttl_seconds is not None and self.finished_migration_ttl_seconds < 0:
            raise ValueError("--finished-migration-ttl must be 0 or more seconds (omit it to keep the default)")
        self._validate_webhooks()

    def _validate_webhooks(self) -> None:
        if not 0 <= self.webhook_port <= 65535:
            raise ValueError(f"--webhook-port must be a TCP port (0: any free one), got {self.webhook_port}")
        if self.webhooks is not WebhookMode.OFF and self.webhook_port and self.webhook_port == self.port:
            raise ValueError(f"--webhook-port {self.webhook_port} is the REST API's --port: give the webhooks another")
        files = (self.webhook_tls_cert_file, self.webhook_tls_key_file)
        if self.webhooks is WebhookMode.EXTERNAL and not all(files):
            raise ValueError("--webhooks external needs --webhook-tls-cert-file and --webhook-tls-key-file")
        if self.webhooks is not WebhookMode.EXTERNAL and any(files):
            raise ValueError("--webhook-tls-cert-file/--webhook-tls-key-file are for --webhooks external only")
        if self.webhooks is not WebhookMode.EXTERNAL and self.webhook_client_ca_file:
            raise ValueError("--webhook-client-ca-file is for --webhooks external only")
