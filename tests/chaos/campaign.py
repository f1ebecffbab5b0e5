"""The campaign: two replicas of the orchestrator (leader election on a short lease, each behind its own fault-
injecting link to the API server) move one small workload pod per scenario, and a hook at every phase boundary
strikes the scenario's fault right before that phase's step runs. An observer with its own, fault-free watch then
waits until the scenario settles and checks the invariant of controller/invariant.py from outside:

* exactly one copy of the pod is alive (not zero: lost; not two: a duplicate trainer);
* the copy is the one the record names: the target after Completed, the pod on its source node after Failed or
  Cancelled (or after the record was deleted, which cancels);
* nothing is stuck: the record reaches a terminal phase and loses its finalizer, no pod stays Terminating;
* a pre-warmed target's gate never opens while the source may still run: when the observer first sees the hand-off
  annotation on a target, the source is gone, or terminating with no container running (its watch delivers the
  source's changes before the target's, in resourceVersion order).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ai_storage_orchestrator.controller.context import MigrationContext
from ai_storage_orchestrator.controller.invariant import containers_stopped
from ai_storage_orchestrator.controller.phases import PHASES
from ai_storage_orchestrator.controller.reconciler import Result
from ai_storage_orchestrator.controller.records import migration_resource, new_migration_id, phase_of
from ai_storage_orchestrator.conventions import HANDOFF_ANNOTATION, MIGRATION_FINALIZER, MIGRATION_ID_LABEL
from ai_storage_orchestrator.errors import OrchestratorError
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import NAMESPACES, NODES, POD_MIGRATIONS, PODS, PVCS, PVS, KubeApi, Resource
from ai_storage_orchestrator.models import MigrationRequest, Phase
from ai_storage_orchestrator.runtime import Orchestrator, install_crd
from ai_storage_orchestrator.settings import Settings
from ai_storage_orchestrator.watchers.state import ClusterState
from tests.chaos.faults import FaultyKubeApi, NetworkFaults
from tests.chaos.scenarios import Fault, Scenario
from tests.cluster.nodes import create_simulated_nodes
from tests.cluster.workloads import certification_pod, shared_volume

JSON = dict[str, Any]
HOLD_TERMINATION = "sim.ai-storage.io/hold-termination"  # tests/cluster/kwok-stages.yaml
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
MIGRATION_TIMEOUT = 30  # seconds: a target that cannot become Ready is rolled back within a scenario's budget
SETTLE_TIMEOUT = 120.0
HEAL_AFTER = {Fault.API_ERRORS: 4.0, Fault.SOURCE_NODE_NOT_READY: 4.0}


@dataclass
class Outcome:
    scenario: Scenario
    fired: bool
    result: str  # the record's final phase (and error reason), "deleted after <phase>" when it was deleted
    verdict: str  # ok | pod-lost | two-copies | wrong-copy | stuck | gate-early
    detail: str
    seconds: float


@dataclass
class Replica:
    orchestrator: Orchestrator
    faults: NetworkFaults
    identity: str


@dataclass
class _Run:
    scenario: Scenario
    fired: bool = False
    precancelled: bool = False
    source_node: str = ""
    pod_name: str = ""
    gate_early: str = ""  # what the observer saw when a target's gate opened while the source could still run


def _terminating(obj: JSON) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _data_processor_done(pod: JSON | None) -> bool:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return any(s["name"] == "data-processor" and "terminated" in (s.get("state") or {}) for s in statuses)


def _small(pod: JSON) -> JSON:
    """The certification pod with tiny requests, so many scenarios fit on simulated nodes at once."""
    for container in pod["spec"]["containers"]:
        container["resources"] = {"requests": {"cpu": "10m", "memory": "16Mi"}}
    return pod


@dataclass
class Campaign:
    kubeconfig: Path
    namespace: str
    seed: int
    parallel: int = 8
    lease_seconds: float = 2.0
    say: Callable[[str], None] = print
    replicas: list[Replica] = field(default_factory=list)
    runs: dict[str, _Run] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.observer = ClusterState()
        self._tasks: list[asyncio.Task[Any]] = []
        self._spawned = 0
        self._crashes: asyncio.Queue[Replica] = asyncio.Queue()
        self._saved_phases = dict(PHASES)
        self.last_seen: dict[str, JSON] = {}  # every record's last version, kept after it is deleted
        self.observer.migrations.add_listener(self._remember)
        self.observer.pods.add_listener(self._grace_period)
        self.observer.pods.add_listener(self._gate_opened)
        # Each slot runs one scenario at a time on its own two nodes, so a node fault stays within its scenario.
        self.node_pairs = [(f"{self.namespace}-{i}-a", f"{self.namespace}-{i}-b") for i in range(self.parallel)]
        self._slots: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._stopping: set[str] = set()
        self.admin: KubeApi | None = None
        self._admin_client: Any = None

    def _grace_period(self, _type: str, _old: JSON | None, new: JSON | None) -> None:
        """A kubelet takes a while to stop a pod: a terminating workload pod stays for 0.2-1.5 s (seeded)."""
        annotations = ((new or {}).get("metadata") or {}).get("annotations") or {}
        if new is None or not _terminating(new) or HOLD_TERMINATION not in annotations:
            return
        name = new["metadata"]["name"]
        if name in self._stopping:
            return
        self._stopping.add(name)
        self._later(self.rng.uniform(0.2, 1.5), lambda: self._release(name))

    async def _release(self, name: str) -> None:
        assert self.admin is not None
        patch = {"metadata": {"annotations": {HOLD_TERMINATION: None}}}
        with contextlib.suppress(KubeApiError):
            await self.admin.merge_patch(PODS, name, patch, namespace=self.namespace)
        self._stopping.discard(name)

    def _gate_opened(self, _type: str, old: JSON | None, new: JSON | None) -> None:
        """The moment a target's hand-off annotation appears, the source must be gone or have no container running."""
        if new is None or HANDOFF_ANNOTATION not in (new["metadata"].get("annotations") or {}):
            return
        if old is not None and HANDOFF_ANNOTATION in (old["metadata"].get("annotations") or {}):
            return
        run = self.runs.get((new["metadata"].get("labels") or {}).get(MIGRATION_ID_LABEL) or "")
        if run is None:
            return
        source = self.observer.pod(self.namespace, run.pod_name)
        if source is not None and not containers_stopped(source):
            state = "terminating" if _terminating(source) else "not terminating"
            run.gate_early = f"gate of {new['metadata']['name']} opened while source {run.pod_name} was {state}"

    def _remember(self, _type: str, old: JSON | None, new: JSON | None) -> None:
        record = new or old
        if record is not None:
            self.last_seen[record["metadata"]["name"]] = record

    # Set-up and tear-down ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._admin_client = await create_api_client(str(self.kubeconfig))
        self.admin = admin = KubeApi(self._admin_client)
        await install_crd(admin)
        with contextlib.suppress(KubeApiError):
            await admin.create(NAMESPACES, {"metadata": {"name": self.namespace}})
        pv, pvc = shared_volume(self.namespace, claim="chaos-data")
        for resource, body in ((PVS, pv), (PVCS, pvc)):
            with contextlib.suppress(KubeApiError):
                await admin.create(resource, body, namespace=self.namespace)
        for reflector in self.observer.reflectors(admin, namespaces=(self.namespace,)):
            self._tasks.append(asyncio.get_running_loop().create_task(reflector.run()))
        await self.observer.wait_for(lambda: self.observer.synced, timeout=60)
        await create_simulated_nodes(self.kubeconfig, [node for pair in self.node_pairs for node in pair])
        for pair in self.node_pairs:
            self._slots.put_nowait(pair)
        await self._wait_service_account()
        for step_phase, step in self._saved_phases.items():
            PHASES[step_phase] = self._hooked(step_phase, step)
        for _ in range(2):
            await self._spawn_replica()
        self._tasks.append(asyncio.get_running_loop().create_task(self._medic()))

    async def _wait_service_account(self) -> None:
        assert self.admin is not None
        deadline = time.monotonic() + 60
        while True:  # kube-controller-manager creates it; no watch on ServiceAccounts here
            try:
                await self.admin.get(SERVICE_ACCOUNTS, "default", namespace=self.namespace)
                return
            except KubeApiError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        PHASES.clear()
        PHASES.update(self._saved_phases)
        for replica in self.replicas:
            await replica.orchestrator.stop()
        self.replicas.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.admin is not None:
            for node in (node for pair in self.node_pairs for node in pair):
                with contextlib.suppress(KubeApiError):
                    await self.admin.delete(NODES, node)
        if self._admin_client is not None:
            await self._admin_client.close()

    async def _spawn_replica(self) -> Replica:
        self._spawned += 1
        identity = f"chaos-{self._spawned}"
        faults = NetworkFaults(random.Random(self.rng.random()))
        settings = Settings(
            kubeconfig=str(self.kubeconfig),
            namespace=self.namespace,
            leader_election=True,
            lease_name="chaos-leader",
            lease_namespace=self.namespace,
            lease_duration_seconds=self.lease_seconds,
            identity=identity,
            max_active_migrations=200,
            max_active_per_node=200,
        )
        orchestrator = Orchestrator(settings, api_factory=lambda api_client: FaultyKubeApi(api_client, faults))
        await orchestrator.start()
        replica = Replica(orchestrator, faults, identity)
        self.replicas.append(replica)
        return replica

    async def _medic(self) -> None:
        """Carry out crash requests: the replica dies mid-step (its tasks are cancelled where they stand, no
        hand-over of the lease) and a fresh one joins, as a restarted pod would."""
        while True:
            replica = await self._crashes.get()
            if replica in self.replicas:
                self.replicas.remove(replica)
                await replica.orchestrator.stop()
                await self._spawn_replica()

    def _replica_of(self, ctx: MigrationContext) -> Replica | None:
        return next((r for r in self.replicas if r.orchestrator.controller is ctx.controller), None)

    # The hook at every phase boundary ---------------------------------------------------------------------------
    def _hooked(
        self, phase: Phase, step: Callable[[MigrationContext], Awaitable[Result]]
    ) -> Callable[[MigrationContext], Awaitable[Result]]:
        async def hooked(ctx: MigrationContext) -> Result:
            early = await self._at_boundary(ctx, phase, "before")
            if early is not None:
                return early
            result = await step(ctx)
            await self._at_boundary(ctx, phase, "after")
            return result

        return hooked

    async def _at_boundary(self, ctx: MigrationContext, phase: Phase, when: str) -> Result | None:
        run = self.runs.get(ctx.name)
        replica = self._replica_of(ctx)
        if run is None or replica is None:
            return None
        scenario = run.scenario
        reach_rollback = scenario.phase is Phase.ROLLING_BACK and phase is Phase.WAITING_FOR_TARGET
        if reach_rollback and when == "before" and not run.precancelled:
            run.precancelled = True  # to reach RollingBack at all, cancel while waiting for the target
            return await self._cancel(ctx, replica)
        if phase is not scenario.phase or when != scenario.when or run.fired:
            return None
        if ctx.phase.is_terminal:
            return None  # the step ended the migration: a fault now hits a bare pod, not a migration
        run.fired = True
        early = await self._strike(scenario.fault, ctx, replica)
        return early if when == "before" else None

    async def _strike(self, fault: Fault, ctx: MigrationContext, replica: Replica) -> Result | None:
        admin = self.admin
        assert admin is not None
        target = ctx.status.get("targetPod")
        if fault is Fault.CANCEL:
            return await self._cancel(ctx, replica)
        if fault is Fault.DELETE_MIGRATION:
            with contextlib.suppress(KubeApiError):
                await admin.delete(POD_MIGRATIONS, ctx.name, namespace=ctx.namespace)
            await self._seen(replica, lambda: self._record_gone_or_going(replica, ctx))
            return Result.again()
        if fault in (Fault.DELETE_TARGET, Fault.EVICT_TARGET) and target:
            with contextlib.suppress(KubeApiError):
                if fault is Fault.DELETE_TARGET:
                    await admin.delete(PODS, target, namespace=ctx.namespace)
                else:
                    await admin.evict(target, namespace=ctx.namespace)
            await self._seen(replica, lambda: self._target_gone_or_going(replica, ctx.namespace, target))
            return None
        if fault is Fault.SOURCE_NODE_NOT_READY:
            await self._set_node_ready(ctx.spec["sourceNode"], ready=False)
            self._later(HEAL_AFTER[fault], lambda: self._set_node_ready(ctx.spec["sourceNode"], ready=True))
            return None
        if fault is Fault.CRASH:
            await self._crashes.put(replica)
            await asyncio.Event().wait()  # dies here: the medic stops this replica, which cancels this step
        if fault is Fault.LEADER_SWITCH:
            replica.faults.partitioned = True  # its lease runs out, the other replica takes over
            self._later(self.lease_seconds * 3, lambda: self._heal(replica))
            return None
        if fault is Fault.API_ERRORS:
            replica.faults.error_rate, replica.faults.max_latency = 0.3, 0.2
            self._later(HEAL_AFTER[fault], lambda: self._heal(replica))
            return None
        return None

    async def _cancel(self, ctx: MigrationContext, replica: Replica) -> Result | None:
        service = replica.orchestrator.service
        assert service is not None
        try:
            await service.cancel(ctx.name, namespace=ctx.namespace)
        except OrchestratorError:
            return None  # refused (finishing, or the link is faulty): the step goes on
        await self._seen(
            replica, lambda: bool((self._record_in(replica, ctx) or {}).get("spec", {}).get("cancelRequested"))
        )
        return Result.again()

    def _record_gone_or_going(self, replica: Replica, ctx: MigrationContext) -> bool:
        record = self._record_in(replica, ctx)
        return record is None or _terminating(record)

    def _record_in(self, replica: Replica, ctx: MigrationContext) -> JSON | None:
        return replica.orchestrator.state.migration(ctx.namespace, ctx.name)

    def _target_gone_or_going(self, replica: Replica, namespace: str, name: str) -> bool:
        pod = replica.orchestrator.state.pod(namespace, name)
        return pod is None or _terminating(pod)

    async def _seen(self, replica: Replica, check: Callable[[], bool]) -> None:
        """Let the replica's cache catch up with what the fault did (bounded: a partitioned cache never does)."""
        with contextlib.suppress(TimeoutError):
            await replica.orchestrator.state.wait_for(check, timeout=10)

    async def _heal(self, replica: Replica) -> None:
        replica.faults.calm()

    async def _set_node_ready(self, node: str, *, ready: bool) -> None:
        assert self.admin is not None
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        condition = {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "ChaosNotReady",
            "message": "chaos campaign",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        with contextlib.suppress(KubeApiError):
            await self.admin.merge_patch(NODES, node, {"status": {"conditions": [condition]}}, subresource="status")

    def _later(self, delay: float, work: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)  # a fault lasts this long, by design
            await work()

        self._tasks.append(asyncio.get_running_loop().create_task(run()))

    # Scenarios --------------------------------------------------------------------------------------------------
    async def run_all(self, scenarios: list[Scenario]) -> list[Outcome]:
        outcomes: list[Outcome] = []

        async def one(scenario: Scenario) -> None:
            pair = await self._slots.get()
            try:
                outcome = await self.run_one(scenario, *pair)
            finally:
                await self._healthy(pair)
                self._slots.put_nowait(pair)
            outcomes.append(outcome)
            mark = "ok " if outcome.verdict == "ok" else "BAD"
            fired = "fired" if outcome.fired else "not reached"
            self.say(
                f"  {mark} {scenario.label:<68} {fired:<11} → {outcome.result:<40} {outcome.seconds:5.1f}s"
                + (f"  {outcome.verdict}: {outcome.detail}" if outcome.verdict != "ok" else "")
            )

        async with asyncio.TaskGroup() as group:
            for scenario in scenarios:
                group.create_task(one(scenario))
        return sorted(outcomes, key=lambda o: o.scenario.number)

    async def _healthy(self, pair: tuple[str, str]) -> None:
        """Both nodes Ready again and untainted by the lifecycle controller, before the next scenario uses them."""

        def healthy(name: str) -> bool:
            node = self.observer.node(name) or {}
            conditions = (node.get("status") or {}).get("conditions") or []
            taints = (node.get("spec") or {}).get("taints") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            return ready and not any(str(t.get("key", "")).startswith("node.kubernetes.io/") for t in taints)

        with contextlib.suppress(TimeoutError):
            await self.observer.wait_for(lambda: all(healthy(n) for n in pair), timeout=120)

    async def run_one(self, scenario: Scenario, source: str, target: str) -> Outcome:
        admin = self.admin
        assert admin is not None
        started = time.monotonic()
        name = f"w{scenario.number}"
        pod = _small(
            certification_pod(
                node=source,
                name=name,
                claim="chaos-data",
                complete_after="0s",
                annotations={HOLD_TERMINATION: "grace period"},
            )
        )
        await admin.create(PODS, pod, namespace=self.namespace)
        # Moved once its data-processor has completed, as the certification test does: that container is left
        # out of the target, so the target can become Ready.
        await self.observer.wait_for(lambda: _data_processor_done(self.observer.pod(self.namespace, name)), timeout=60)
        migration_id = new_migration_id()
        run = _Run(scenario, source_node=source, pod_name=name)
        self.runs[migration_id] = run
        request = MigrationRequest(
            pod_name=name,
            pod_namespace=self.namespace,
            source_node=source,
            target_node=target,
            strategy=scenario.strategy,
            timeout_seconds=MIGRATION_TIMEOUT,
            triggered_by="chaos",
        )
        await admin.create(POD_MIGRATIONS, migration_resource(request, migration_id), namespace=self.namespace)
        await self.observer.wait_for(lambda: self.observer.migration(self.namespace, migration_id), timeout=30)
        try:
            await self.observer.wait_for(lambda: self._settled(name, migration_id), timeout=SETTLE_TIMEOUT)
            settled = True
        except TimeoutError:
            settled = False
        result, verdict, detail = self._judge(name, migration_id, source, target, settled=settled)
        await self._clean(name, migration_id)
        return Outcome(scenario, run.fired, result, verdict, detail, time.monotonic() - started)

    def _copies(self, name: str, migration_id: str) -> list[JSON]:
        return [
            p
            for p in self.observer.pods
            if p["metadata"]["namespace"] == self.namespace
            and (
                p["metadata"]["name"] == name
                or (p["metadata"].get("labels") or {}).get(MIGRATION_ID_LABEL) == migration_id
            )
        ]

    def _settled(self, name: str, migration_id: str) -> bool:
        record = self.observer.migration(self.namespace, migration_id)
        if record is not None and (
            not phase_of(record).is_terminal or MIGRATION_FINALIZER in (record["metadata"].get("finalizers") or [])
        ):
            return False
        return not any(_terminating(p) for p in self._copies(name, migration_id))

    def _judge(self, name: str, migration_id: str, source: str, target: str, *, settled: bool) -> tuple[str, str, str]:
        record = self.observer.migration(self.namespace, migration_id)
        last = self.last_seen.get(migration_id)
        result = phase_of(last).value if last is not None else "never seen"
        if record is None:
            result = f"deleted after {result}"
        error = ((last or {}).get("status") or {}).get("error") or {}
        if error.get("reason"):
            result = f"{result} ({error['reason']})"
        run = self.runs.get(migration_id)
        if run is not None and run.gate_early:
            return result, "gate-early", run.gate_early
        copies = self._copies(name, migration_id)
        alive = [p for p in copies if not _terminating(p)]
        where = ", ".join(f"{p['metadata']['name']}@{p['spec'].get('nodeName')}" for p in alive) or "none"
        if not alive:
            return result, "pod-lost", f"no copy alive (record: {result})"
        if len(alive) > 1:
            return result, "two-copies", where
        if not settled:
            return result, "stuck", f"not settled after {SETTLE_TIMEOUT:.0f}s ({result}; pods {where})"
        if record is None and (last is None or not phase_of(last).is_terminal):
            return result, "stuck", "the record vanished before its migration ended (finalizer bypassed)"
        copy_ = alive[0]
        is_target = (copy_["metadata"].get("labels") or {}).get(MIGRATION_ID_LABEL) == migration_id
        node = copy_["spec"].get("nodeName")
        if last is not None and phase_of(last) is Phase.COMPLETED:
            if not (is_target and node == target):
                return result, "wrong-copy", f"Completed but the live copy is {where}"
        elif is_target or node != source:
            return result, "wrong-copy", f"{result} but the live copy is {where}"
        return result, "ok", where

    async def _clean(self, name: str, migration_id: str) -> None:
        admin = self.admin
        assert admin is not None
        for pod in copy.deepcopy(self._copies(name, migration_id)):
            with contextlib.suppress(KubeApiError):
                await admin.delete(PODS, pod["metadata"]["name"], namespace=self.namespace, grace_period_seconds=0)
        with contextlib.suppress(KubeApiError):
            await admin.delete(POD_MIGRATIONS, migration_id, namespace=self.namespace)
        self.runs.pop(migration_id, None)
        self.last_seen.pop(migration_id, None)
