"""The stage the migration and API benchmarks play on: an orchestrator child process, one namespace with the
certification workload's shared volume, and watches (pods, PodMigrations) in the bench process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, PODS, PVS, KubeApi
from bench.availability import container_state, serves
from bench.cluster import create_namespace, create_pod, create_shared_volume, delete_pod, kube_api, poll_until
from bench.observer import Observer
from bench.orchestrator import OrchestratorChild
from tests.cluster.workloads import certification_pod

JSON = dict[str, Any]
NAMESPACE = "bench-migrate"
RUN_LABEL = "bench.ai-storage.io/run"
COMPLETE_AFTER = "500ms"  # when the simulated data-processor finishes (exit 0) after its pod starts
STEP_TIMEOUT = 30.0  # seconds for any awaited event of a run


@dataclass
class Stage:
    api: KubeApi
    http: aiohttp.ClientSession
    orchestrator: OrchestratorChild
    namespace: str
    source: str
    target: str
    pods: Observer
    migrations: Observer
    startup_seconds: float

    @property
    def migrations_url(self) -> str:
        return f"{self.orchestrator.url}/api/migrations"

    def request_body(self, pod: str, *, strategy: str = "auto", dry_run: bool = False) -> JSON:
        return {
            "pod_name": pod,
            "pod_namespace": self.namespace,
            "source_node": self.source,
            "target_node": self.target,
            "preserve_pv": True,
            "strategy": strategy,
            "timeout_seconds": 300,
            "dry_run": dry_run,
        }

    def certification(self, name: str, *, run: str, node: str) -> JSON:
        manifest = certification_pod(node=node, name=name, complete_after=COMPLETE_AFTER)
        manifest["metadata"]["labels"][RUN_LABEL] = run
        return manifest

    async def prepare(self, name: str, *, run: str) -> JSON:
        """The certification pod on the source node, serving, with data-processor completed."""
        created = await create_pod(self.api, self.certification(name, run=run, node=self.source), self.namespace)
        uid = created["metadata"]["uid"]

        def prepared() -> bool:
            pod = self.pods.objects.get(name)
            return (
                pod is not None
                and pod["metadata"].get("uid") == uid
                and serves(pod)
                and container_state(pod, "data-processor") == "terminated"
            )

        await self.pods.wait_for(prepared, timeout=STEP_TIMEOUT)
        return self.pods.objects[name]

    async def orchestrator_sees_completed(self, name: str) -> None:
        """Dry runs until the orchestrator's cache, too, has data-processor completed (its plan skips it)."""
        body = self.request_body(name, dry_run=True)

        async def skips() -> bool:
            async with self.http.post(self.migrations_url, json=body) as response:
                if response.status != 200:
                    return False
                plan = await response.json()
            return any(c["name"] == "data-processor" and c["action"] == "skip" for c in plan["containers"])

        if not await poll_until(skips, timeout=30, interval=0.02):
            raise TimeoutError(f"the orchestrator never saw data-processor of {name} completed")

    async def clean(self, run: str) -> None:
        """Delete every pod of the run and wait until the watch has seen them go."""
        names = [n for n, p in self.pods.objects.items() if (p["metadata"].get("labels") or {}).get(RUN_LABEL) == run]
        for name in names:
            await delete_pod(self.api, name, self.namespace)
        await self.pods.wait_for(lambda: not any(n in self.pods.objects for n in names), timeout=STEP_TIMEOUT)


@asynccontextmanager
async def open_stage(
    *,
    kubeconfig: Path,
    nodes: list[str],
    workdir: Path,
    name: str,
    profile_to: Path | None = None,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[Stage]:
    orchestrator = OrchestratorChild(
        workdir, kubeconfig=kubeconfig, name=name, profile_to=profile_to, extra_args=extra_args
    )
    orchestrator.start()
    try:
        startup = await orchestrator.wait_ready()
        async with kube_api(kubeconfig) as api, aiohttp.ClientSession() as http:
            await create_namespace(api, NAMESPACE)
            if not any(n == f"{NAMESPACE}-training-data" for n in await _volume_names(api)):
                await create_shared_volume(api, NAMESPACE)
            pods = Observer(api, PODS, NAMESPACE)
            migrations = Observer(api, POD_MIGRATIONS, NAMESPACE)
            await pods.start()
            await migrations.start()
            try:
                yield Stage(api, http, orchestrator, NAMESPACE, nodes[0], nodes[1], pods, migrations, startup)
            finally:
                await pods.stop()
                await migrations.stop()
    finally:
        orchestrator.stop()


async def _volume_names(api: KubeApi) -> list[str]:
    items, _ = await api.list(PVS)
    return [str(item["metadata"]["name"]) for item in items]
