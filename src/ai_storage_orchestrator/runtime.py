"""Wires one orchestrator process: API client, watch caches, controller (behind leader election) and the REST app.

`build_app` returns the REST app with a cleanup context that starts the orchestrator when the app starts and stops
it when the app stops (SIGTERM: stop accepting, cancel the workers between steps, flush events); the running
orchestrator is `app[ORCHESTRATOR]`. Its root tasks (one watch per resource, leadership) run under a Supervisor:
one that crashes is logged, restarted with backoff, and /readyz answers 503 naming it until it runs again."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from importlib import resources
from typing import Any

import structlog
import yaml
from aiohttp import web

from ai_storage_orchestrator.admission.owned import OwnerCapture
from ai_storage_orchestrator.admission.ports import PodAdmission
from ai_storage_orchestrator.admission.registration import configuration_name, registered, webhook_configurations
from ai_storage_orchestrator.admission.server import create_webhook_app, serving
from ai_storage_orchestrator.api.app import create_app
from ai_storage_orchestrator.api.auth import AllowAll, Authenticator, KubernetesAuthenticator
from ai_storage_orchestrator.api.tls import (
    CertificateReloader,
    reloader_for,
    require_client_certificates,
    server_context,
    site_for,
)
from ai_storage_orchestrator.api.transport import runner_for
from ai_storage_orchestrator.checkpoint import PVCheckpointer
from ai_storage_orchestrator.controller.controller import MigrationController
from ai_storage_orchestrator.controller.knock import ExecKnocker
from ai_storage_orchestrator.controller.leadership import LeaderElector
from ai_storage_orchestrator.controller.quiet import ActingMigrations
from ai_storage_orchestrator.controller.service import MigrationService
from ai_storage_orchestrator.controller.triggers import AnnotationTrigger
from ai_storage_orchestrator.errors import Forbidden, NotReady
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.events import EventRecorder
from ai_storage_orchestrator.kube.exec import KubeExec
from ai_storage_orchestrator.kube.resources import CRDS, KubeApi, Resource
from ai_storage_orchestrator.kube.retrying import DEFAULT_POLICY
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import MigrationRequest, Status
from ai_storage_orchestrator.settings import AuthMode, Settings, WebhookMode
from ai_storage_orchestrator.supervision import RestartPolicy, Supervisor
from ai_storage_orchestrator.watchers.state import ClusterState

log = structlog.get_logger(__name__)
JSON = dict[str, Any]


def crd_manifest() -> dict[str, Any]:
    text = resources.files("ai_storage_orchestrator").joinpath("crds/podmigrations.yaml").read_text()
    manifest: dict[str, Any] = yaml.safe_load(text)
    return manifest


async def install_crd(api: KubeApi) -> None:
    manifest = crd_manifest()
    try:
        await api.create(CRDS, manifest)
        log.info("crd.installed", name=manifest["metadata"]["name"])
    except KubeApiError as error:
        if not error.already_exists:
            raise


class Orchestrator:
    """Everything one process runs, started and stopped as a unit."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        restarts: RestartPolicy | None = None,
        api_factory: Callable[[Any], KubeApi] | None = None,
    ) -> None:
        """`api_factory` wraps the API client (the fault campaign, tests/chaos, injects errors and latency there)."""
        self.settings = settings
        self._api_factory = api_factory or self._kube_api
        self.metrics = metrics or Metrics()
        self.state = ClusterState(on_listener_error=self._count_listener_error)
        self.supervisor = Supervisor(restarts, on_change=self.state.notify, on_restart=self._count_restart)
        self._api_client: Any = None
        self.api: KubeApi | None = None
        self.controller: MigrationController | None = None
        self.service: MigrationService | None = None
        self.elector: LeaderElector | None = None
        self.trigger: AnnotationTrigger | None = None
        self.recorder: EventRecorder | None = None

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # nothing half-started outlives a failed start
            raise

    async def _start(self) -> None:
        self._api_client = await create_api_client(self.settings.kubeconfig)
        self.api = api = self._api_factory(self._api_client)
        if self.settings.install_crd:
            await install_crd(api)
        self.recorder = EventRecorder(api, instance=self.settings.identity, hold=ActingMigrations(self.state).hold)
        execs = KubeExec(self._api_client)
        checkpointer = PVCheckpointer(
            execs,
            retention=self.settings.checkpoint_retention,
            keep_failed=self.settings.keep_failed_checkpoints,
        )
        self.controller = MigrationController(
            api=api,
            state=self.state,
            settings=self.settings,
            recorder=self.recorder,
            metrics=self.metrics,
            checkpointer=checkpointer,
            knocker=ExecKnocker(execs),
            fence=self._holds_lease,
        )
        self.service = MigrationService(
            api=api, state=self.state, metrics=self.metrics, planner=self.controller.planner
        )
        self.trigger = AnnotationTrigger(
            api=api,
            state=self.state,
            service=self.service,
            recorder=self.recorder,
            admission_binding=None if self.settings.trust_annotations else self.settings.admission_policy_binding,
        )
        namespaces = self.settings.watched_namespaces
        for reflector in self.state.reflectors(
            api,
            namespaces=namespaces,
            on_relist=lambda r: self.metrics.watch_relists.labels(resource=r).inc(),
            on_reconnect=lambda r: self.metrics.watch_reconnects.labels(resource=r).inc(),
        ):
            # One watch per resource, or per resource and namespace when several namespaces are watched.
            suffix = f"@{reflector.namespace}" if len(namespaces) > 1 and reflector.namespace else ""
            self.supervisor.spawn(f"watch-{reflector.resource.plural}{suffix}", reflector.run)
        self.supervisor.spawn("leadership", self._lead_when_elected)
        log.info("orchestrator.started", identity=self.settings.identity, namespace=",".join(namespaces) or "*")

    async def _check_admission_policy(self, trigger: AnnotationTrigger) -> None:
        """Say, when this process starts to act on triggers (a term of leadership begins), whether they will act:
        controller/triggers.py checks again at every trigger; this is the operator's early warning, never a reason not
        to lead (nor, being here and not in `start`, a wait for an unreachable API server before the app serves)."""
        if trigger.admission_binding is None:
            log.warning("trigger.annotations_trusted", why="--trust-annotations: the admission policy is not checked")
            return
        try:
            refusal = await trigger.admission_policy_refusal()
        except KubeApiError as error:
            log.warning("trigger.admission_policy_unknown", binding=trigger.admission_binding, error=str(error))
            return
        if refusal is None:
            log.info("trigger.admission_policy_found", binding=trigger.admission_binding)
        else:
            log.warning("trigger.admission_policy_missing", binding=trigger.admission_binding, message=refusal)

    def ready(self) -> tuple[bool, str]:
        """Ready when every supervised task runs and every cache is synced; otherwise the reason names what is not."""
        if self.service is None:
            return False, "the orchestrator is starting"
        checks = (self.supervisor.health(), self.service.ready())
        if all(ok for ok, _ in checks):
            return True, "; ".join(why for _, why in checks)
        return False, "; ".join(why for ok, why in checks if not ok)

    def _count_listener_error(self, kind: str) -> None:
        self.metrics.listener_errors.labels(kind=kind).inc()

    def _count_restart(self, task: str) -> None:
        self.metrics.task_restarts.labels(task=task).inc()

    async def _lead(self) -> None:
        assert self.controller is not None
        assert self.trigger is not None
        await self.state.wait_for(lambda: self.state.synced, timeout=float("inf"))
        await self._check_admission_policy(self.trigger)
        async with asyncio.TaskGroup() as group:
            group.create_task(self.controller.run(), name="migration-controller")
            group.create_task(self.trigger.run(), name="annotation-trigger")

    async def _lead_when_elected(self) -> None:
        try:
            await self._elect_then_lead()
        finally:
            self.metrics.leader.set(0)  # crashed or stopped, this task leads no more

    async def _elect_then_lead(self) -> None:
        assert self.api is not None
        if not self.settings.leader_election:
            self.metrics.leader.set(1)
            await self._lead()
            return
        self.elector = LeaderElector(
            self.api,
            name=self.settings.lease_name,
            namespace=self.settings.lease_namespace,
            identity=self.settings.identity,
            lease_duration=self.settings.lease_duration_seconds,
            renew_deadline=self.settings.lease_duration_seconds * 2 / 3,
            retry_period=max(0.5, self.settings.lease_duration_seconds / 7),
            on_change=self._leadership_changed,
        )
        await self.elector.run(self._lead)

    def _kube_api(self, api_client: Any) -> KubeApi:
        """API calls are retried (kube/retrying.py) only while the lease would still be ours: a write the fence let
        through must not be repeated past the margin between the renew deadline and the lease's expiry."""
        margin = self.settings.lease_duration_seconds / 3  # lease duration minus the renew deadline
        budget = max(0.0, min(DEFAULT_POLICY.time_budget, margin - 1.0))
        return KubeApi(api_client, retry_policy=dataclasses.replace(DEFAULT_POLICY, time_budget=budget))

    def _holds_lease(self) -> bool:
        """The fence of every migration write (controller/fencing.py)."""
        if not self.settings.leader_election:
            return True
        return self.elector is not None and self.elector.holds_lease()

    def _leadership_changed(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        self.state.notify()

    async def stop(self) -> None:
        await self.supervisor.stop()
        if self.elector is not None:
            await self.elector.release()  # the work has stopped: a standby may take over at once
        if self.recorder is not None:
            await self.recorder.flush()
        if self._api_client is not None:
            client, self._api_client = self._api_client, None
            await client.close()
        log.info("orchestrator.stopped")

    def pod_admission(self) -> PodAdmission:
        """What the admission webhooks ask (admission/ports.py); callable before `start`."""
        return OwnerCapture(self.state, migrations=lambda: self.service)

    def authenticator(self) -> Authenticator:
        """Callable before `start`: its reviews go to the API client once the orchestrator has started."""
        if self.settings.auth is AuthMode.KUBERNETES:
            return KubernetesAuthenticator(_StartedReviews(self), audience=self.settings.token_audience)
        return AllowAll()


class _StartedReviews:
    """The API client of a started orchestrator, for the authenticator that the app holds from before the start."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self._orchestrator = orchestrator

    async def create(self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None) -> JSON:
        if self._orchestrator.api is None:
            raise NotReady("the orchestrator is starting")
        return await self._orchestrator.api.create(resource, body, namespace=namespace)


NAMESPACE_NOT_MANAGED = "namespace_not_managed"


class _StartedService:
    """The REST app's MigrationServiceProtocol: the service of the orchestrator once it has started (the app is
    built, and its routes bound, before that), with the orchestrator's own readiness (caches and tasks).

    In namespace-scoped mode a request naming another namespace is refused with 403 `namespace_not_managed`, after
    the caller's authorization for that namespace and before any lookup: the same answer whether or not the pod or
    the namespace exists, and without the list of managed namespaces. Reads by id need no check: the caches hold
    the managed namespaces only, so another namespace's migration is the 404 of an unknown id."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self._orchestrator = orchestrator

    def _check_managed(self, namespace: str | None) -> None:
        managed = self._orchestrator.settings.watched_namespaces
        if managed and namespace is not None and namespace not in managed:
            raise Forbidden(
                f"namespace {namespace} is not managed by this orchestrator: it runs in namespace-scoped mode and"
                " neither watches nor migrates pods there",
                reason=NAMESPACE_NOT_MANAGED,
                details={"namespace": namespace},
            )

    def _service(self) -> MigrationService:
        if self._orchestrator.service is None:
            raise NotReady("the orchestrator is starting")
        return self._orchestrator.service

    def ready(self) -> tuple[bool, str]:
        return self._orchestrator.ready()

    def dry_run(self, request: MigrationRequest) -> JSON:
        self._check_managed(request.pod_namespace)
        return self._service().dry_run(request)

    async def submit(self, request: MigrationRequest, *, request_id: str | None = None) -> JSON:
        self._check_managed(request.pod_namespace)
        return await self._service().submit(request, request_id=request_id)

    def get(self, migration_id: str) -> JSON:
        return self._service().get(migration_id)

    def list(self, *, status: Status | None = None, namespace: str | None = None, pod: str | None = None) -> list[JSON]:
        self._check_managed(namespace)
        return self._service().list(status=status, namespace=namespace, pod=pod)

    async def cancel(self, migration_id: str) -> JSON:
        return await self._service().cancel(migration_id)


ORCHESTRATOR = web.AppKey("orchestrator", Orchestrator)


def build_app(orchestrator: Orchestrator) -> web.Application:
    """The REST app of `orchestrator`; nothing runs yet. Its cleanup context starts the orchestrator when the app
    starts (`AppRunner.setup`) and stops it when the app is cleaned up (`AppRunner.cleanup`)."""
    app = create_app(
        service=_StartedService(orchestrator),
        metrics=orchestrator.metrics,
        authenticator=orchestrator.authenticator(),
        max_body_bytes=orchestrator.settings.max_body_bytes,
    )

    async def run_orchestrator(app: web.Application) -> AsyncIterator[None]:
        await orchestrator.start()
        app[ORCHESTRATOR] = orchestrator
        try:
            yield
        finally:
            await orchestrator.stop()

    app.cleanup_ctx.append(run_orchestrator)
    return app


SELF_WEBHOOK_ADDRESS = "127.0.0.1"


@contextlib.asynccontextmanager
async def admission_webhooks(orchestrator: Orchestrator) -> AsyncIterator[None]:
    """The admission webhooks of `orchestrator` (admission/), served on their own HTTPS port while the block runs:
    nothing with `--webhooks off`; `external`: on 0.0.0.0 with the given certificate (reloaded when it changes), the
    configurations applied from k8s/webhooks; `self`: on 127.0.0.1 with a self-signed certificate, the configurations
    created here and deleted when the block ends. Call it once the orchestrator has started (`self` needs its API)."""
    settings = orchestrator.settings
    if settings.webhooks is WebhookMode.OFF:
        yield
        return
    app = create_webhook_app(orchestrator.pod_admission())
    if settings.webhooks is WebhookMode.EXTERNAL:
        reloader = CertificateReloader(settings.webhook_tls_cert_file or "", settings.webhook_tls_key_file or "")
        if settings.webhook_client_ca_file:
            require_client_certificates(reloader.context, settings.webhook_client_ca_file)
        async with (
            serving(app, host="0.0.0.0", port=settings.webhook_port, ssl_context=reloader.context),
            reloader.watching(name="webhook-tls-reloader"),
        ):
            yield
        return
    from ai_storage_orchestrator.admission import selfsigned  # cryptography: not in the image, `self` is for local use

    assert orchestrator.api is not None, "the orchestrator has started"
    pair = selfsigned.issue(SELF_WEBHOOK_ADDRESS)
    with selfsigned.written(pair) as files:
        context = server_context(files.cert_file, files.key_file)
    async with serving(app, host=SELF_WEBHOOK_ADDRESS, port=settings.webhook_port, ssl_context=context) as port:
        mutating, validating = webhook_configurations(
            name=configuration_name(settings.identity),
            base_url=f"https://{SELF_WEBHOOK_ADDRESS}:{port}",
            ca_bundle=pair.ca_pem,
            namespaces=settings.watched_namespaces,
        )
        async with registered(orchestrator.api, mutating=mutating, validating=validating):
            yield


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT. HTTPS when `settings` has a certificate (reloaded when its files change), plain
    HTTP only where api/tls.py allows it; both are checked before the orchestrator starts."""
    settings.validate()
    reloader = reloader_for(settings)  # refuses an insecure listener, loads the certificate
    if settings.auth is AuthMode.KUBERNETES and not settings.token_audience:
        log.warning("auth.no_token_audience", why="tokens for the API server itself are accepted (--token-audience=)")
    orchestrator = Orchestrator(settings)
    runner = runner_for(build_app(orchestrator), access_log=None, handle_signals=False, shutdown_timeout=10)
    await runner.setup()  # starts the orchestrator
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    serving_parts = contextlib.AsyncExitStack()  # left in reverse: certificate watch, webhooks, then the runner
    try:
        await serving_parts.enter_async_context(admission_webhooks(orchestrator))
        site = site_for(runner, settings, reloader)
        await site.start()
        if reloader is not None:
            await serving_parts.enter_async_context(reloader.watching(name="tls-reloader"))
        log.info(
            "http.listening",
            host=settings.host,
            port=settings.port,
            auth=settings.auth.value,
            scheme="https" if reloader is not None else "http",
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("orchestrator.stopping")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        await serving_parts.aclose()  # webhook configurations deleted (self), then the webhooks' server stopped
        await runner.cleanup()  # stops the orchestrator
