"""The certification comparison, step by step (docs: certification-test.md), printing the specification's console
lines (``spec_output``) in its order, with our own detail as indented lines between them:

1. header (Test ID, Date), preflight: the cluster, the two nodes (simulated or real), the orchestrator's /readyz;
2. set-up: namespace, shared RWX claim (created unless --pvc names one), the scripts ConfigMap;
3. deploy pod tensorflow-ai-workload on the source node; wait until Ready and data-processor Completed;
4. TEST 1, Kubernetes native source→target: the pre-migration probe (3 quick samples), delete the pod, recreate the
   same spec with nodeName=target, wait Ready (timed), measure; then wait for the re-run data-processor to complete;
5. TEST 2, the orchestrator target→source: the pre-migration probe, POST /api/migrations, poll GET until completed
   (timed), measure;
6. with --timing-pairs N: N more pairs of migrations of the same pod, native there and the orchestrator back, timed
   only (request → Ready, trainer downtime, wall; compare/timing.py), one line each;
7. summary (the caller prints it, with the TIMING block), then clean-up unless --keep.

Each migration's trainer downtime and request → Ready come from the kubelet's time stamps (compare/timing.py): the
source pod is watched while it goes, and the last status that shows its trainer terminated is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

from ai_storage_orchestrator import __version__
from ai_storage_orchestrator.compare import spec_output as spec
from ai_storage_orchestrator.compare import workload as wl
from ai_storage_orchestrator.compare.cluster import (
    SERVICE_ACCOUNTS,
    SIMULATED_REASON,
    CompareError,
    container_completed,
    container_states,
    containers_started,
    describe_pod,
    image_trouble,
    node_info,
    pick_nodes,
    pod_ready,
    pod_trouble,
    spec_container_names,
    wait_for,
)
from ai_storage_orchestrator.compare.discovery import grant_comparison_access, revoke_comparison_access
from ai_storage_orchestrator.compare.options import Options
from ai_storage_orchestrator.compare.orchestrating import OrchestratorClient
from ai_storage_orchestrator.compare.results import WINDOW_RULES, Comparison, MethodResult, Probe
from ai_storage_orchestrator.compare.sampling import PathApi, PodMeter, SamplingPlan
from ai_storage_orchestrator.compare.timing import (
    NATIVE,
    ORCHESTRATOR,
    Span,
    TimedMigration,
    TimingRun,
    TrainerWatch,
    not_measured,
    request_to_ready,
    trainer_downtime,
)
from ai_storage_orchestrator.controller.planning.quantities import format_resources, pod_requests
from ai_storage_orchestrator.conventions import COMPARE_TEST_LABEL
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.exec import KubeExec
from ai_storage_orchestrator.kube.resources import CONFIG_MAPS, NAMESPACES, NODES, PODS, PVCS, PVS, Resource

JSON = dict[str, Any]
Say = Callable[[str], None]
FIELD_MANAGER = "ai-storage-orchestrator-compare"
_SIMULATED_RECREATIONS = 2  # how many times a pod KWOK removed under its old name is created again
T = TypeVar("T")


class Scenario:
    def __init__(
        self,
        options: Options,
        *,
        kube: PathApi,
        execs: KubeExec,
        api: OrchestratorClient,
        say: Say,
        discovered: Sequence[str] = (),
    ) -> None:
        self.options = options
        self.discovered = list(discovered)  # what discovery found, printed under the header
        self.kube, self.execs, self.api, self.say = kube, execs, api, say
        self.test_id = f"AI-MIGRATION-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"
        self.labels = {COMPARE_TEST_LABEL: self.test_id}
        self.unmeasured: str | None = None
        plan = SamplingPlan(samples=options.samples, interval=options.interval, max_reads=options.reads_budget)
        self.meter = PodMeter(
            kube, execs, namespace=options.namespace, plan=plan, trim=options.trim,
            window_rule=options.window_start, say=say,
        )  # fmt: skip
        self.created: list[tuple[Resource, str, str | None]] = []  # (resource, name, namespace), in creation order
        self.namespace_created = False
        self.access_granted = False  # the minted token's Role in a namespace the run did not create
        self.pods: list[str] = []
        self.workload = options.workload
        self.claim = options.pvc or wl.CLAIM
        self.comparison = Comparison(self.test_id, time.time(), options.settings(), namespace=options.namespace)
        self.deployed: JSON = {}  # the pod as deployed, data-processor completed

    # phases ----------------------------------------------------------------------------------------------------------
    async def run(self) -> Comparison:
        """Every phase up to the summary; a CompareError ends the run and is recorded as the comparison's error."""
        c = self.comparison
        date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(c.started))
        for line in [*spec.header_lines(self.test_id, date), *self.discovered]:
            self.say(line)
        try:
            self.options.validate()
            source, target = await self._preflight()
            await self._set_up()
            containers = await self._deploy(source)
            await self._choose_source(source, containers)
            c.native = await self._native(source, target)
            self.say(f"\n  waiting for the re-run {wl.COMPLETING_CONTAINER} to complete again before TEST 2 …")
            await self._wait_pod(wl.POD_NAME, container_completed(wl.COMPLETING_CONTAINER), "re-run data-processor")
            c.orchestrator = await self._orchestrated(target, source)
            if self.options.timing_pairs > 0:
                c.timing = await self._timing(c.orchestrator.pod, here=source, there=target)
        except CompareError as error:
            c.error = str(error)
            self.say(f"error: {error}")
        c.finished = time.time()
        return c

    async def _preflight(self) -> tuple[str, str]:
        o, c = self.options, self.comparison
        self.say("\n# Preflight: cluster, nodes, orchestrator")
        version = await self._kube("read the API server version", self.kube.get_path("/version"))
        nodes, _ = await self._kube("list nodes", self.kube.list(NODES))
        infos = [node_info(n) for n in nodes]
        source, target = pick_nodes(infos, source=o.source_node, target=o.target_node)
        by_name = {n.name: n for n in infos}
        c.source_node, c.target_node = by_name[source], by_name[target]
        c.versions = {"tool": __version__, "kubernetes": version.get("gitVersion"), "python": platform.python_version()}
        self.say(f"  Kubernetes {version.get('gitVersion')}")
        self.say(f"  source node {c.source_node.describe()}")
        self.say(f"  target node {c.target_node.describe()}")
        simulated = [n for n in (c.source_node, c.target_node) if n.simulated]
        if simulated and len(simulated) == 1:
            raise CompareError("one node is simulated and the other is not: compare two nodes of the same kind")
        if simulated:
            self.unmeasured = SIMULATED_REASON
            if not o.allow_unmeasured:
                raise CompareError(
                    f"nodes {source} and {target} are simulated (KWOK): they run no containers and have no cgroups,"
                    " so CPU and memory cannot be measured (their exec would run on this machine, not in a pod)."
                    " Pass --allow-unmeasured to run the comparison anyway: migration times, containers started and"
                    " requests freed are real"
                )
        images = [wl.node_images(n) for n in nodes if node_info(n).name in (source, target)]
        self.workload, why = choose_workload(o.workload, simulated=bool(simulated), node_images=images)
        c.workload = self.workload
        ready, detail = await self.api.ready()
        if not ready:
            raise CompareError(f"the orchestrator at {o.orchestrator_url} is not ready: {detail}")
        c.versions["orchestrator"] = await self.api.version()
        self.say(f"  orchestrator {o.orchestrator_url} ready (version {c.versions['orchestrator']})")
        self.say(f"  workload {self.workload}: {why}")
        if self.unmeasured:
            self.say(f"  CPU and memory: not measured: {self.unmeasured}; everything else is measured for real")
        else:
            self.say(f"  measurement window starts at {o.window_start}: {WINDOW_RULES[o.window_start]}")
        return source, target

    async def _set_up(self) -> None:
        o = self.options
        self.say("\n• Setting up test environment...")
        self.say(f"  namespace {o.namespace}, shared volume, workload {self.workload}")
        try:
            await self.kube.get(NAMESPACES, o.namespace)
            self.say(f"  namespace {o.namespace} exists: using it (it stays)")
        except KubeApiError as error:
            if not error.not_found:
                raise CompareError(f"read namespace {o.namespace}: {error}") from error
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": o.namespace, "labels": self.labels}}
            await self._kube("create the namespace", self.kube.create(NAMESPACES, body))
            self.namespace_created = True
            self.say(f"  created namespace {o.namespace}")
        await wait_for(
            self.kube, SERVICE_ACCOUNTS, name="default", namespace=o.namespace, condition=lambda sa: sa is not None,
            timeout=60, what="the namespace's default service account",
        )  # fmt: skip
        if o.minted_for:  # the token discovery minted may act in this namespace only, and only from now on
            for line in await grant_comparison_access(self.kube, o.namespace, labels=self.labels):
                self.say(line)
            self.access_granted = not self.namespace_created
        await self._claim()
        if self.workload in wl.REAL_WORKLOADS:
            existed = await self._exists(CONFIG_MAPS, wl.SCRIPTS_CONFIG_MAP, o.namespace)
            config_map = wl.scripts_config_map(namespace=o.namespace, labels=self.labels, workload=self.workload)
            await self._kube(
                "apply the scripts ConfigMap", self.kube.apply(CONFIG_MAPS, config_map, field_manager=FIELD_MANAGER)
            )
            if not existed:
                self.created.append((CONFIG_MAPS, wl.SCRIPTS_CONFIG_MAP, o.namespace))
            self.say(f"  ConfigMap {wl.SCRIPTS_CONFIG_MAP}: the {self.workload} programs of the three containers")

    async def _claim(self) -> None:
        o = self.options
        if o.pvc or await self._exists(PVCS, self.claim, o.namespace):
            claim = await self._kube("read the claim", self.kube.get(PVCS, self.claim, namespace=o.namespace))
            modes = (claim.get("spec") or {}).get("accessModes") or []
            if "ReadWriteMany" not in modes:
                raise CompareError(f"claim {self.claim} is {', '.join(modes)}: the orchestrator needs ReadWriteMany")
            self.say(f"  using the existing claim {self.claim} ({', '.join(modes)})")
        else:
            server = o.nfs_server or ("127.0.0.1" if self.unmeasured == SIMULATED_REASON else None)
            if server is None:
                raise CompareError(
                    "name an existing ReadWriteMany claim with --pvc, or an NFS export with --nfs-server"
                )
            pv, pvc = wl.shared_volume(
                namespace=o.namespace, claim=self.claim, nfs_server=server, nfs_path=o.nfs_path, labels=self.labels
            )
            await self._kube("create the PersistentVolume", self.kube.create(PVS, pv))
            self.created.append((PVS, pv["metadata"]["name"], None))
            await self._kube("create the claim", self.kube.create(PVCS, pvc, namespace=o.namespace))
            self.created.append((PVCS, self.claim, o.namespace))
            mounted = " (simulated nodes never mount it)" if self.unmeasured else ""
            self.say(
                f"  created PV {pv['metadata']['name']} (NFS {server}:{o.nfs_path}, RWX)"
                f" and claim {self.claim}{mounted}"
            )
        await wait_for(
            self.kube, PVCS, name=self.claim, namespace=o.namespace, timeout=120, what=f"claim {self.claim} Bound",
            condition=lambda pvc: pvc is not None and (pvc.get("status") or {}).get("phase") == "Bound",
        )  # fmt: skip

    async def _deploy(self, node: str) -> list[str]:
        o = self.options
        self.say("• Deploying TensorFlow AI workload...")
        self.say(f"  pod {wl.POD_NAME} on {node}, workload {self.workload}")
        if await self._exists(PODS, wl.POD_NAME, o.namespace):
            raise CompareError(
                f"pod {wl.POD_NAME} already exists in {o.namespace}: delete it or use another --namespace"
            )
        pod = self._manifest(node)
        await self._kube("create the pod", self.kube.create(PODS, pod, namespace=o.namespace))
        self.pods.append(wl.POD_NAME)
        for container in wl.container_specs(self.workload):
            self.say(f"    {container.name:<20} {container.cpu:>6} CPU {container.memory:>7}  {container.role}")
        await self._wait_ready(wl.POD_NAME, f"pod {wl.POD_NAME} Ready on {node}")
        self.say(f"  waiting for {wl.COMPLETING_CONTAINER} to complete (its results go to the shared volume) …")
        live = await self._wait_pod(wl.POD_NAME, container_completed(wl.COMPLETING_CONTAINER), "data-processor done")
        for name, state in container_states(live).items():
            self.say(f"    {name:<20} {state}")
        self.deployed = live
        return spec_container_names(live)

    async def _native(self, source: str, target: str) -> MethodResult:
        o = self.options
        original = _node_of(self.deployed) or source
        self.say("\nTEST 1: Kubernetes Native Migration")
        self.say(f"Original Pod location: {original}")
        self.say(f"K8s Native Target: {original} → {target}")
        self.say("  the Kubernetes way: delete the pod, recreate the same spec with nodeName set to the target")
        self.say("")
        probe = await self._probe(wl.POD_NAME, original, spec_container_names(self.deployed))
        self.say("Deleting pod...")
        self.say(f"  $ kubectl delete pod -n {o.namespace} {wl.POD_NAME}")
        watch = TrainerWatch(wl.POD_NAME)
        started_wall, started = time.time(), time.monotonic()
        await self._kube("delete the pod", self.kube.delete(PODS, wl.POD_NAME, namespace=o.namespace))
        await self._wait_gone(wl.POD_NAME, watch)
        gone_wall = time.time()
        self.say(f"  [{time.monotonic() - started:6.2f}s] deleted")
        self.say(f"Recreating pod on target node: {target}")
        self.say(spec.waiting_line(wl.POD_NAME, o.timeout))
        pod, created_wall = await self._recreate(self._manifest(target), f"recreated pod Ready on {target}")
        for line in spec.ready_lines(wl.POD_NAME):
            self.say(line)
        ready = time.monotonic()
        self.say(f"  [{ready - started:6.2f}s] pod {wl.POD_NAME} Ready on {target}: every container cold-started")
        containers = spec_container_names(pod)
        self._requests(pod)
        was_completed = {n for n, state in container_states(self.deployed).items() if state.startswith("terminated")}
        self.say(f"\n# Post-migration measurement (all {len(containers)} containers restarted)")
        result = await self._result(
            "native", "K8S NATIVE", source, target, wl.POD_NAME, started_wall, ready - started, pod,
            restarted=was_completed & set(containers),
        )  # fmt: skip
        result.probe = probe
        result.downtime = trainer_downtime(watch, pod)
        result.request_to_ready = request_to_ready(started_wall, pod, seen=started_wall + ready - started)
        result.events = [("pod gone", gone_wall), ("created", created_wall)]  # this machine's clock, as seen here
        self._after("✓ K8s Migration", result)
        return result

    async def _orchestrated(self, source: str, target: str) -> MethodResult:
        o = self.options
        self.say("\nTEST 2: AI Orchestrator Migration (Optimized)")
        self.say(f"Using pod: {wl.POD_NAME}")
        self.say("\n# Pre-migration measurement")
        live = await self._kube("read the pod", self.kube.get(PODS, wl.POD_NAME, namespace=o.namespace))
        current = _node_of(live) or source
        probe = await self._probe(wl.POD_NAME, current, spec_container_names(live))
        original = _node_of(self.deployed)
        back = " (back to original for comparison)" if target == original else ""
        self.say("")
        self.say(f"AI Orchestrator Migration: {current} -> {target}{back}")
        self.say("Starting AI migration...")
        body = {
            "pod_name": wl.POD_NAME,
            "pod_namespace": o.namespace,
            "source_node": source,
            "target_node": target,
            "preserve_pv": True,
        }
        self.say(f"  $ curl -X POST {o.orchestrator_url}/api/migrations -d '{_compact(body)}'")
        watch = TrainerWatch(wl.POD_NAME)
        going = asyncio.ensure_future(self._wait_gone(wl.POD_NAME, watch))
        try:
            return await self._orchestrated_from(body, live, probe, going, watch)
        finally:
            if not going.done():
                going.cancel()
            with contextlib.suppress(asyncio.CancelledError, CompareError):
                await going

    async def _orchestrated_from(
        self, body: JSON, live: JSON, probe: Probe, going: asyncio.Future[None], watch: TrainerWatch
    ) -> MethodResult:
        o = self.options
        source, target = str(body["source_node"]), str(body["target_node"])
        started_wall, started = time.time(), time.monotonic()
        created = await self.api.create(body)
        self.say(f"  -> 202 migration_id={created.get('migration_id')}")
        status_lines = spec.MigrationStatusLines(self.say)

        def show(migration: JSON) -> None:
            elapsed = time.monotonic() - started
            status_lines.observe(str(migration.get("status")), elapsed)
            self.say(
                f"  [{elapsed:6.2f}s] {migration.get('status'):<9} {migration.get('phase')}: {migration.get('message')}"
            )

        async def heartbeat() -> None:  # the specification's ".# [3s] Migration status: running" while nothing changes
            while True:
                await asyncio.sleep(max(0.1, status_lines.due_in(time.monotonic() - started)))
                status_lines.tick(time.monotonic() - started)

        ticker = asyncio.ensure_future(heartbeat())
        try:
            final, done = await self.api.wait(created, timeout=o.timeout, on_change=show)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        new_pod = str(final.get("new_pod_name") or "")
        if new_pod:
            self.pods.append(new_pod)
        if final.get("status") != "completed" or not new_pod:
            error = final.get("error") or {}
            self.say(f"✗ Migration {final.get('status')}: {error.get('message')}")
            raise CompareError(f"migration {final.get('migration_id')} {final.get('status')}: {error.get('message')}")
        self.say("✓ Migration completed!")
        for decision in final.get("containers") or []:
            self.say(f"    {decision.get('name'):<20} {decision.get('action'):<8} {decision.get('reason')}")
        pod = await self._wait_pod(new_pod, pod_ready, f"migrated pod {new_pod} Ready")
        containers = spec_container_names(pod)
        self._requests(pod)
        left_out = len(spec_container_names(live)) - len(containers)
        if left_out > 0:
            what = "completed container" + (" excluded" if left_out == 1 else f"s excluded ({left_out})")
            self.say(f"\n# Post-migration measurement (only {len(containers)} containers - {what})")
        else:
            self.say(f"\n# Post-migration measurement (all {len(containers)} containers)")
        self.say(f"Measuring post-migration metrics for pod: {new_pod}")
        self.say("")
        result = await self._result(
            "orchestrator", "AI ORCHESTRATOR", source, target, new_pod, started_wall, done - started, pod
        )
        result.migration = final
        result.probe = probe
        result.downtime = await self._downtime_after(going, watch, pod)
        result.request_to_ready = request_to_ready(started_wall, pod, seen=started_wall + done - started)
        self._after("✓ AI Migration", result)
        return result

    # timing ----------------------------------------------------------------------------------------------------------
    async def _timing(self, pod: str, *, here: str, there: str) -> TimingRun:
        """``--timing-pairs`` pairs: the pod moved native to ``there``, then back with the orchestrator; timed only.
        A failure stops the pairs (recorded in the run), not the comparison."""
        run = TimingRun(self.options.timing_pairs)
        total, spread = 2 * run.pairs, self.options.timing_spread
        self.say(
            f"\n# Timing: {run.pairs} pairs of migrations of the same pod (native {here} → {there}, orchestrator"
            f" {there} → {here}), no CPU sampling" + (f"; each waits a random 0-{spread:g}s first" if spread else "")
        )
        draw = random.Random()
        try:
            for _ in range(run.pairs):
                for method, source, target in ((NATIVE, here, there), (ORCHESTRATOR, there, here)):
                    if spread > 0:  # a phase of the kubelet's 1 s relist drawn afresh for each move
                        await asyncio.sleep(draw.uniform(0, spread))
                    move = self._timed_native if method == NATIVE else self._timed_orchestrated
                    timed = await move(len(run.migrations) + 1, pod, source, target)
                    run.migrations.append(timed)
                    self.say(timed.line(total))
                    pod = timed.pod
        except CompareError as error:
            run.error = str(error)
            self.say(f"  timing stopped: {error}")
        return run

    async def _timed_native(self, number: int, pod: str, source: str, target: str) -> TimedMigration:
        """Delete the pod, recreate it on ``target``: the workload's manifest with the containers the pod has."""
        o = self.options
        live = await self._kube("read the pod", self.kube.get(PODS, pod, namespace=o.namespace))
        manifest = self._manifest(target)
        keep = set(spec_container_names(live))
        manifest["metadata"]["name"] = pod
        manifest["spec"]["containers"] = [c for c in manifest["spec"]["containers"] if c.get("name") in keep]
        watch = TrainerWatch(pod)
        requested, started = time.time(), time.monotonic()
        await self._kube("delete the pod", self.kube.delete(PODS, pod, namespace=o.namespace))
        await self._wait_gone(pod, watch)
        if pod not in self.pods:
            self.pods.append(pod)
        new, _ = await self._recreate(manifest, f"recreated pod {pod} Ready on {target}")
        wall = time.monotonic() - started
        ready = request_to_ready(requested, new, seen=requested + wall)
        return TimedMigration(number, NATIVE, source, target, pod, ready, trainer_downtime(watch, new), wall)

    async def _timed_orchestrated(self, number: int, pod: str, source: str, target: str) -> TimedMigration:
        o = self.options
        body = {"pod_name": pod, "pod_namespace": o.namespace, "source_node": source, "target_node": target,
                "preserve_pv": True}  # fmt: skip
        watch = TrainerWatch(pod)
        going = asyncio.ensure_future(self._wait_gone(pod, watch))
        try:
            requested, started = time.time(), time.monotonic()
            final, done = await self.api.wait(await self.api.create(body), timeout=o.timeout)
            new_pod = str(final.get("new_pod_name") or "")
            if new_pod:
                self.pods.append(new_pod)
            if final.get("status") != "completed" or not new_pod:
                error = final.get("error") or {}
                raise CompareError(
                    f"migration {final.get('migration_id')} {final.get('status')}: {error.get('message')}"
                )
            new = await self._wait_pod(new_pod, pod_ready, f"migrated pod {new_pod} Ready")
            downtime = await self._downtime_after(going, watch, new)
        finally:
            if not going.done():
                going.cancel()
            with contextlib.suppress(asyncio.CancelledError, CompareError):
                await going
        ready = request_to_ready(requested, new, seen=requested + done - started)  # completed only once Ready
        return TimedMigration(number, ORCHESTRATOR, source, target, new_pod, ready, downtime, done - started)

    async def _wait_gone(self, pod: str, watch: TrainerWatch) -> None:
        """Until the pod is gone, every state of it seen on the way fed to ``watch``."""
        await wait_for(
            self.kube, PODS, name=pod, namespace=self.options.namespace, condition=lambda obj: obj is None,
            timeout=self.options.timeout, what=f"pod {pod} deleted", describe=describe_pod, observe=watch.observe,
        )  # fmt: skip

    async def _downtime_after(self, going: asyncio.Future[None], watch: TrainerWatch, new_pod: JSON) -> Span:
        """The trainer's downtime once the watch of the source pod has seen it go (it may still be terminating when
        the orchestrator reports completed); a watch that failed is a figure not measured, with its reason."""
        try:
            await going
        except CompareError as error:
            return not_measured(f"{watch.why_not()}; {error}")
        return trainer_downtime(watch, new_pod)

    async def _result(
        self, key: str, title: str, source: str, target: str, name: str, started_wall: float, wall: float, pod: JSON,
        *, restarted: Collection[str] = (),
    ) -> MethodResult:  # fmt: skip
        containers = spec_container_names(pod)
        ready_at = started_wall + wall
        requests = pod_requests(pod.get("spec") or {})
        measurement = await self.meter.measure(
            name, node=target, started_wall=started_wall, containers=containers, restarted=restarted
        )
        live = await self._kube("read the pod", self.kube.get(PODS, name, namespace=self.options.namespace))
        restarts = sum(
            int(s.get("restartCount") or 0) for s in (live.get("status") or {}).get("containerStatuses") or []
        )
        return MethodResult(
            key=key, title=title, from_node=source, to_node=target, pod=name, started_at=started_wall,
            wall_seconds=wall, ready_at=ready_at, containers=containers, started=containers_started(live),
            restarts=restarts, requests=requests, measurement=measurement, final_node=_node_of(live),
        )  # fmt: skip

    async def _probe(self, pod: str, node: str, containers: list[str]) -> Probe:
        """The specification's pre-migration quick measurement, then its ``Pre-migration:`` line."""
        probe = await self.meter.probe(pod, node=node, containers=containers)
        self.say("")
        self.say(spec.figures_line("Pre-migration", probe.minimum_cpu_millicores, probe.memory_mib))
        return probe

    def _requests(self, pod: JSON) -> None:
        requests = pod_requests(pod.get("spec") or {})
        names = ", ".join(spec_container_names(pod))
        self.say(f"  requests of the new pod: {format_resources(requests)}; containers: {names}")

    def _after(self, timed: str, result: MethodResult) -> None:
        """``✓ K8s Migration: 8.12s``, ``Post-migration: CPU …, Memory …``, ``Final Pod location: …``."""
        m = result.measurement
        self.say("")
        self.say(f"{timed}: {result.wall_seconds:.2f}s")
        self.say(spec.figures_line("Post-migration", m.cpu_millicores, m.memory_mib))
        self.say(f"Final Pod location: {result.final_node or 'unknown'}")

    async def _choose_source(self, node: str, containers: list[str]) -> None:
        c = self.comparison
        if self.unmeasured:
            self.meter.unmeasured = self.unmeasured
            c.measurement_source_reason = f"not measured: {self.unmeasured}"
            return
        reason = await self.meter.choose_source(self.options.source, pod=wl.POD_NAME, node=node, containers=containers)
        c.measurement_source, c.measurement_source_reason = self.meter.source, reason
        self.say(f"  measurement source: {reason}")

    # clean-up --------------------------------------------------------------------------------------------------------
    async def clean_up(self) -> None:
        o, c = self.options, self.comparison
        self.say("\n• Cleaning up...")
        if o.keep:
            c.cleanup.append("kept (--keep)")
            self.say(f"  --keep: everything stays; kubectl get pods,pvc -n {o.namespace}")
            return
        try:  # also any pod the run created that it lost track of (an orchestrator that failed half-way)
            labelled, _ = await self.kube.list(
                PODS, namespace=o.namespace, label_selector=f"{COMPARE_TEST_LABEL}={self.test_id}"
            )
        except KubeApiError:
            labelled = []
        names = dict.fromkeys([*self.pods, *(str(p["metadata"]["name"]) for p in labelled)])
        targets: list[tuple[Resource, str, str | None]] = [(PODS, name, o.namespace) for name in names]
        if self.namespace_created:
            targets += [(NAMESPACES, o.namespace, None)] + [t for t in self.created if t[2] is None]
        else:
            targets += list(reversed(self.created))
        if self.access_granted:
            for line in await revoke_comparison_access(self.kube, o.namespace):
                c.cleanup.append(line.strip())
                self.say(line)
        for resource, name, namespace in targets:
            try:
                await self.kube.delete(resource, name, namespace=namespace)
                c.cleanup.append(f"deleted {resource.kind} {name}")
                self.say(f"  deleted {resource.kind} {name}")
            except KubeApiError as error:
                if not error.not_found:
                    c.cleanup.append(f"could not delete {resource.kind} {name}: {error}")
                    self.say(f"  could not delete {resource.kind} {name}: {error}")

    # helpers ---------------------------------------------------------------------------------------------------------
    def _manifest(self, node: str) -> JSON:
        o = self.options
        return wl.workload_pod(
            self.workload, node=node, namespace=o.namespace, claim=self.claim,
            complete_after=o.complete_after, labels=self.labels,
        )  # fmt: skip

    async def _wait_ready(self, name: str, what: str) -> JSON:
        """The specification's ``Waiting for Pod … to be ready (timeout: 300s)...`` and what ``kubectl wait`` says."""
        self.say(spec.waiting_line(name, self.options.timeout))
        pod = await self._wait_pod(name, pod_ready, what)
        for line in spec.ready_lines(name):
            self.say(line)
        return pod

    async def _recreate(self, manifest: JSON, what: str) -> tuple[JSON, float]:
        """Create the pod and wait until it is Ready (with this machine's clock once it was created): the native move's
        second half. KWOK tracks pods by name, so its delete of the pod just deleted can remove the one created under
        the same name; on simulated nodes the pod is then created once more (said, and its time counted), elsewhere
        a pod that vanishes ends the run."""
        name = str(manifest["metadata"]["name"])
        for attempt in range(1 + _SIMULATED_RECREATIONS):
            await self._kube("recreate the pod", self.kube.create(PODS, manifest, namespace=self.options.namespace))
            created_wall = time.time()
            pod = await wait_for(
                self.kube, PODS, name=name, namespace=self.options.namespace,
                condition=lambda obj: obj is None or pod_ready(obj), timeout=self.options.timeout, what=what,
                trouble=pod_trouble, lasting_trouble=image_trouble, describe=describe_pod,
            )  # fmt: skip
            if pod is not None:
                return pod, created_wall
            if self.unmeasured != SIMULATED_REASON or attempt == _SIMULATED_RECREATIONS:
                break
            self.say(
                f"  the simulated node removed the recreated pod {name} (KWOK tracks pods by name); creating it again"
            )
        raise CompareError(f"{what}: the pod is gone")

    async def _wait_pod(self, name: str, condition: Callable[[JSON | None], bool], what: str) -> JSON:
        pod = await wait_for(
            self.kube, PODS, name=name, namespace=self.options.namespace, condition=condition,
            timeout=self.options.timeout, what=what, trouble=pod_trouble, lasting_trouble=image_trouble,
            describe=describe_pod,
        )  # fmt: skip
        if pod is None:
            raise CompareError(f"{what}: the pod is gone")
        return pod

    async def _exists(self, resource: Resource, name: str, namespace: str | None) -> bool:
        try:
            await self.kube.get(resource, name, namespace=namespace)
        except KubeApiError as error:
            if error.not_found:
                return False
            raise CompareError(f"read {resource.kind} {name}: {error}") from error
        return True

    async def _kube(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except KubeApiError as error:
            raise CompareError(f"{what}: {error}") from error


def choose_workload(requested: str, *, simulated: bool, node_images: Sequence[frozenset[str]] = ()) -> tuple[str, str]:
    """The workload variant for --workload on nodes of this kind, and why: ``auto`` is ``simulated`` on simulated
    nodes and on real ones the first of the certification's image and its local stand-ins that both nodes already
    have (``workload_for_images``); a variant that cannot run on them is an error."""
    if requested == "auto":
        workload, reason = (
            ("simulated", "the nodes are simulated") if simulated else wl.workload_for_images(node_images)
        )
        reason = f"{reason} (--workload overrides)"
    else:
        workload, reason = requested, "--workload"
    if workload not in wl.WORKLOADS:
        raise CompareError(f"--workload must be auto or one of {', '.join(wl.WORKLOADS)}, not {workload!r}")
    if workload == "simulated" and not simulated:
        raise CompareError(
            "--workload simulated needs simulated (KWOK) nodes;"
            " on real ones use --workload tensorflow, numpy or tensorflow-local"
        )
    if workload in wl.REAL_WORKLOADS and simulated:
        raise CompareError(f"--workload {workload} needs real nodes (simulated ones run no containers)")
    return workload, reason


def _node_of(pod: JSON) -> str | None:
    node = (pod.get("spec") or {}).get("nodeName")
    return str(node) if node else None


def _compact(body: JSON) -> str:
    return json.dumps(body, separators=(",", ":"))
