"""Two replicas: one leads (acts on migrations), the other stands by, serves reads and accepts requests; when the
leader dies the standby takes over within the lease duration."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import LEASES
from ai_storage_orchestrator.models import MigrationRequest, Phase
from ai_storage_orchestrator.runtime import Orchestrator
from ai_storage_orchestrator.settings import Settings
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.moves import deploy_certification_pod
from tests.cluster.orchestrator_process import OrchestratorProcess
from tests.cluster.workloads import CERTIFICATION_POD

LEASE_SECONDS = 3.0


def _replica(cluster: ClusterHandle, namespace: str, identity: str) -> Orchestrator:
    settings = Settings(
        kubeconfig=str(cluster.kubeconfig),
        namespace=namespace,
        leader_election=True,
        lease_name="orchestrator-leader",
        lease_namespace=namespace,
        lease_duration_seconds=LEASE_SECONDS,
        identity=identity,
    )
    return Orchestrator(settings)


def _leading(replica: Orchestrator) -> bool:
    return replica.elector is not None and replica.elector.is_leader


async def _first_leader(replicas: list[Orchestrator], timeout: float) -> Orchestrator:
    """Wait for whichever replica leads first (each replica's waiters are woken by its own leadership changes)."""
    waits = {
        asyncio.get_running_loop().create_task(r.state.wait_for(functools.partial(_leading, r), timeout=timeout)): r
        for r in replicas
    }
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    winner = next(iter(done))
    winner.result()
    return waits[winner]


async def _completed(replica: Orchestrator, namespace: str, migration_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        migration = replica.state.migration(namespace, migration_id) or {}
        phase = (migration.get("status") or {}).get("phase")
        return migration if phase in (Phase.COMPLETED.value, Phase.FAILED.value) else None

    return await replica.state.wait_for(ended, timeout=30)


async def test_one_leader_and_takeover(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, crd_installed: None
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await deploy_certification_pod(core, namespace, source)

    first, second = _replica(cluster, namespace, "replica-a"), _replica(cluster, namespace, "replica-b")
    await first.start()
    await second.start()
    stopped: list[Orchestrator] = []
    try:
        leader = await _first_leader([first, second], timeout=15)
        standby = second if leader is first else first
        assert not _leading(standby)

        await standby.state.wait_for(
            lambda: (
                standby.state.synced
                and any(
                    "terminated" in s["state"]
                    for s in ((standby.state.pod(namespace, CERTIFICATION_POD) or {}).get("status") or {}).get(
                        "containerStatuses", []
                    )
                )
            ),
            timeout=30,
        )
        assert standby.service is not None
        request = MigrationRequest(
            pod_name=CERTIFICATION_POD, pod_namespace=namespace, source_node=source, target_node=target
        )
        accepted = await standby.service.submit(request)  # the standby records it; the leader carries it out
        done = await _completed(standby, namespace, accepted["migration_id"])
        assert done["status"]["phase"] == "Completed"
        assert not _leading(standby)

        await leader.stop()  # dies without handing the lease over
        stopped.append(leader)
        lost_at = time.monotonic()
        await standby.state.wait_for(lambda: _leading(standby), timeout=LEASE_SECONDS * 4)
        takeover = time.monotonic() - lost_at
        print(f"standby took over {takeover:.2f}s after the leader stopped (lease {LEASE_SECONDS}s)")
        assert takeover <= LEASE_SECONDS * 2

        moved = done["status"]["targetPod"]
        back = MigrationRequest(pod_name=moved, pod_namespace=namespace, source_node=target, target_node=source)
        again = await standby.service.submit(back)
        finished = await _completed(standby, namespace, again["migration_id"])
        assert finished["status"]["phase"] == "Completed", finished["status"]
        assert finished["status"]["targetPod"].count("-migrated-") == 1, "re-migrating must not stack suffixes"
    finally:
        for replica in (first, second):
            if replica not in stopped:
                await replica.stop()


async def _steal_lease(replica: Orchestrator, namespace: str, until: asyncio.Event) -> None:
    """Another holder renews the lease on the API server, as a replica the first cannot reach would."""
    assert replica.api is not None
    while not until.is_set():
        try:
            lease = await replica.api.get(LEASES, "orchestrator-leader", namespace=namespace)
            lease["spec"].update(holderIdentity="thief", renewTime=lease["spec"]["renewTime"])
            await replica.api.replace(LEASES, lease)
        except KubeApiError:
            pass  # lost a race with the replica's own renewal: try again at once
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until.wait(), timeout=0.2)


async def test_a_replica_that_loses_and_regains_the_lease_moves_migrations_again(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, crd_installed: None
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await deploy_certification_pod(core, namespace, source)
    replica = _replica(cluster, namespace, "replica-a")
    await replica.start()
    try:
        await replica.state.wait_for(lambda: _leading(replica), timeout=15)
        stop_stealing = asyncio.Event()
        thief = asyncio.get_running_loop().create_task(_steal_lease(replica, namespace, stop_stealing))
        try:
            await replica.state.wait_for(lambda: not _leading(replica), timeout=LEASE_SECONDS * 4)
        finally:
            stop_stealing.set()
            await thief
        await replica.state.wait_for(lambda: _leading(replica), timeout=LEASE_SECONDS * 4)

        assert replica.service is not None
        request = MigrationRequest(
            pod_name=CERTIFICATION_POD, pod_namespace=namespace, source_node=source, target_node=target
        )
        accepted = await replica.service.submit(request)
        done = await _completed(replica, namespace, accepted["migration_id"])
        assert done["status"]["phase"] == "Completed", done["status"]
        assert replica.controller is not None
        assert replica.controller.reactor.terms == 2, "one term, lost, then a second"
    finally:
        await replica.stop()


async def test_a_frozen_leader_does_not_act_after_its_lease_could_be_taken(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, crd_installed: None, tmp_path: Path
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await deploy_certification_pod(core, namespace, source)
    election = [
        "--lease-name=orchestrator-leader",
        f"--lease-namespace={namespace}",
        f"--lease-duration={LEASE_SECONDS}",
        "--identity=frozen",
    ]
    frozen = OrchestratorProcess(
        tmp_path,
        kubeconfig=cluster.kubeconfig,
        namespace=namespace,
        env={"AISO_FAULT_POINT": "freeze:after:WaitingForTarget"},  # about to record Ready
        election=election,
    )
    await frozen.start()
    standby: Orchestrator | None = None
    try:
        await frozen.wait_for_log_event("leader.changed")
        body = {
            "pod_name": CERTIFICATION_POD,
            "pod_namespace": namespace,
            "source_node": source,
            "target_node": target,
            "strategy": "make-before-break",
        }
        async with aiohttp.ClientSession() as http, http.post(f"{frozen.url}/api/migrations", json=body) as response:
            assert response.status == 202, await response.text()
            migration_id = (await response.json())["migration_id"]
        await frozen.wait_for_log_event("fault.freezing", timeout=60)

        standby = _replica(cluster, namespace, "standby")
        await standby.start()
        done = await _completed(standby, namespace, migration_id)  # it took over and finished the move
        assert done["status"]["phase"] == "Completed", done["status"]

        frozen.resume()
        fenced = await frozen.wait_for_log_event("leader.fenced")
        events = frozen.log_events()
        thawed = next(i for i, e in enumerate(events) if e.get("event") == "fault.thawed")
        acted = [e for e in events[thawed:] if e.get("event") == "migration.phase_changed"]
        assert acted == [], f"the frozen leader acted after it woke: {acted}"
        assert "PodMigration" in fenced["action"] or "Pod" in fenced["action"]
        pods = (await core.list_namespaced_pod(namespace)).items
        assert [p.metadata.name for p in pods if p.metadata.deletion_timestamp is None] == [done["status"]["targetPod"]]
    finally:
        frozen.stop()
        if standby is not None:
            await standby.stop()
