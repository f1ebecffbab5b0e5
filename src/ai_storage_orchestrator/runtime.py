"""Wires one orchestrator process: API client, watch caches, controller (behind leader election) and the REST app.

The controller and watchers live in the aiohttp app's cleanup context, so they start with the server and stop
cleanly with it (SIGTERM: stop accepting, cancel the workers between steps, flush events)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import structlog
import yaml
from aiohttp import web

from ai_storage_orchestrator.api.app import create_app
from ai_storage_orchestrator.api.auth import AllowAll, Authenticator, KubernetesAuthenticator
from ai_storage_orchestrator.checkpoint import PVCheckpointer
from ai_storage_orchestrator.controller.controller import MigrationController
from ai_storage_orchestrator.controller.leadership import LeaderElector
from ai_storage_orchestrator.controller.service import MigrationService
from ai_storage_orchestrator.controller.triggers import AnnotationTrigger
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.events import EventRecorder
from ai_storage_orchestrator.kube.exec import KubeExec
from ai_storage_orchestrator.kube.resources import CRDS, KubeApi
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.settings import AuthMode, Settings
from ai_storage_orchestrator.watchers.state import ClusterState

log = structlog.get_logger(__name__)


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

    def __init__(self, settings: Settings, *, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.state = ClusterState()
        self._tasks: list[asyncio.Task[None]] = []
        self._api_client: Any = None
        self.api: KubeApi | None = None
        self.controller: MigrationController | None = None
        self.service: MigrationService | None = None
        self.elector: LeaderElector | None = None
        self.trigger: AnnotationTrigger | None = None
        self.recorder: EventRecorder | None = None

    async def start(self) -> None:
        self._api_client = await create_api_client(self.settings.kubeconfig)
        self.api = api = KubeApi(self._api_client)
        if self.settings.install_crd:
            await install_crd(api)
        self.recorder = EventRecorder(api, instance=self.settings.identity)
        checkpointer = PVCheckpointer(
            KubeExec(self._api_client),
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
        )
        self.service = MigrationService(
            api=api, state=self.state, metrics=self.metrics, planner=self.controller.planner
        )
        self.trigger = AnnotationTrigger(api=api, state=self.state, service=self.service, recorder=self.recorder)
        namespaces = (self.settings.namespace,) if self.settings.namespace else ()
        for reflector in self.state.reflectors(
            api,
            namespaces=namespaces,
            on_relist=lambda r: self.metrics.watch_relists.labels(resource=r).inc(),
            on_reconnect=lambda r: self.metrics.watch_reconnects.labels(resource=r).inc(),
        ):
            self._spawn(reflector.run(), f"watch-{reflector.resource.plural}")
        self._spawn(self._lead_when_elected(), "leadership")
        log.info("orchestrator.started", identity=self.settings.identity, namespace=self.settings.namespace or "*")

    def _spawn(self, work: Any, name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work, name=name))

    async def _lead(self) -> None:
        assert self.controller is not None
        assert self.trigger is not None
        await self.state.wait_for(lambda: self.state.synced, timeout=float("inf"))
        async with asyncio.TaskGroup() as group:
            group.create_task(self.controller.run(), name="migration-controller")
            group.create_task(self.trigger.run(), name="annotation-trigger")

    async def _lead_when_elected(self) -> None:
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

    def _leadership_changed(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        self.state.notify()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.recorder is not None:
            await self.recorder.flush()
        if self._api_client is not None:
            await self._api_client.close()
        log.info("orchestrator.stopped")

    def authenticator(self) -> Authenticator:
        if self.settings.auth is AuthMode.KUBERNETES:
            assert self.api is not None
            return KubernetesAuthenticator(self.api)
        return AllowAll()


async def build_app(settings: Settings) -> tuple[web.Application, Orchestrator]:
    """The REST app with the orchestrator started; `Orchestrator.stop` runs on the app's cleanup."""
    orchestrator = Orchestrator(settings)
    await orchestrator.start()
    assert orchestrator.service is not None
    app = create_app(
        service=orchestrator.service,
        metrics=orchestrator.metrics,
        authenticator=orchestrator.authenticator(),
        max_body_bytes=settings.max_body_bytes,
    )

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        yield
        await orchestrator.stop()

    app.cleanup_ctx.append(lifecycle)
    return app, orchestrator


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    settings.validate()
    app, _orchestrator = await build_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, shutdown_timeout=10)
    await site.start()
    log.info("http.listening", host=settings.host, port=settings.port, auth=settings.auth.value)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("orchestrator.stopping")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        await runner.cleanup()
