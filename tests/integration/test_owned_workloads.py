"""Owned pods move through their owner: against the real API server, kube-controller-manager's real Job, StatefulSet,
ReplicaSet and Deployment controllers, KWOK nodes, and an in-process orchestrator serving its admission webhooks
(`serve --webhooks self`: self-signed, on 127.0.0.1, registered for the test's namespace).

The orchestrator evicts the source; the owner creates the replacement as it always does; the mutating webhook
captures that pod and rewrites it to the target node with the completed containers left out and the restore init
container added. The harness runs no scheduler: the owners' templates name the source node, which is what a
replacement not captured would get too."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest
from kubernetes_asyncio import client, watch

from ai_storage_orchestrator.models import MigrationRequest, Phase
from ai_storage_orchestrator.runtime import Orchestrator, admission_webhooks
from ai_storage_orchestrator.settings import WebhookMode
from tests.cluster.api_clients import api_client_of
from tests.cluster.fixtures import ClusterHandle, wait_crd_established
from tests.cluster.moves import container_state, wait_phase
from tests.cluster.pods import pod_dicts, wait_for_pods
from tests.cluster.workloads import SHARED_CLAIM, certification_pod, shared_volume

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("orchestrator_overrides", [{"webhooks": WebhookMode.SELF, "webhook_port": 0}]),
]

JSON = dict[str, Any]
TRAINER, MONITOR, PREP = "tensorflow-trainer", "model-monitor", "data-processor"
COMPLETE = "sim.ai-storage.io/complete-containers"
COMPLETE_AFTER = "sim.ai-storage.io/complete-after"
DISRUPTION_IGNORED = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}


@pytest.fixture
async def webhooks(orchestrator: Orchestrator) -> AsyncIterator[Orchestrator]:
    async with admission_webhooks(orchestrator):
        yield orchestrator


def _live(pods: list[JSON], *, node: str | None = None) -> list[JSON]:
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and (node is None or p["spec"].get("nodeName") == node)
    ]


def _prep_done(pods: list[JSON], node: str) -> JSON | None:
    return next((p for p in _live(pods, node=node) if container_state(p, PREP) == "terminated"), None)


def _running(pods: list[JSON], node: str) -> JSON | None:
    return next((p for p in _live(pods, node=node) if (p.get("status") or {}).get("phase") == "Running"), None)


async def _seen(orchestrator: Orchestrator, namespace: str, pod: JSON, *, prep: bool) -> None:
    """The orchestrator's caches hold the pod as it is (prep completed) and the bound shared claim with its PV."""

    def seen() -> bool:
        cached = orchestrator.state.pod(namespace, pod["metadata"]["name"])
        if cached is None or (prep and container_state(cached, PREP) != "terminated"):
            return False
        claim = orchestrator.state.claim(namespace, SHARED_CLAIM) or {}
        volume = (claim.get("spec") or {}).get("volumeName")
        return (claim.get("status") or {}).get("phase") == "Bound" and orchestrator.state.volume(
            str(volume)
        ) is not None

    await orchestrator.state.wait_for(seen, timeout=30)


async def _shared_claim(core: client.CoreV1Api, namespace: str) -> None:
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))


def _template(node: str, *, restart_policy: str) -> JSON:
    pod = certification_pod(node=node, complete_after="0s")
    pod["spec"]["restartPolicy"] = restart_policy
    return {
        "metadata": {"labels": {"app": "train"}, "annotations": pod["metadata"]["annotations"]},
        "spec": pod["spec"],
    }


async def _move(orchestrator: Orchestrator, namespace: str, pod: str, source: str, target: str) -> JSON:
    assert orchestrator.service is not None
    request = MigrationRequest(
        pod_name=pod, pod_namespace=namespace, source_node=source, target_node=target, preserve_pv=True
    )
    created = await orchestrator.service.submit(request)
    await wait_phase(orchestrator, namespace, created["migration_id"], Phase.COMPLETED, Phase.FAILED, timeout=90)
    return orchestrator.service.get(created["migration_id"])


async def _job_status(
    batch: client.BatchV1Api, namespace: str, name: str, done: Callable[[JSON], bool], *, timeout: float = 60
) -> JSON:
    """The Job's status once `done` holds for it (read, then watched)."""
    serialize = api_client_of(batch).sanitize_for_serialization
    async with asyncio.timeout(timeout):
        listing = await batch.list_namespaced_job(namespace, field_selector=f"metadata.name={name}")
        status: JSON = (serialize(listing.items[0]) if listing.items else {}).get("status") or {}
        if done(status):
            return status
        async with watch.Watch() as stream:
            async for event in stream.stream(
                batch.list_namespaced_job,
                namespace,
                field_selector=f"metadata.name={name}",
                resource_version=listing.metadata.resource_version,
                timeout_seconds=int(timeout),
            ):
                status = serialize(event["object"]).get("status") or {}
                if done(status):
                    return status
    raise TimeoutError(f"job {namespace}/{name}: not reached within {timeout}s")


async def _create_job(batch: client.BatchV1Api, namespace: str, node: str, *, succeed_when_done: bool = False) -> None:
    """Job `train`: the certification's pod on `node`, its eviction not charged (DisruptionTarget ignored)."""
    template = _template(node, restart_policy="Never")
    if succeed_when_done:
        template["metadata"]["annotations"]["sim.ai-storage.io/succeed-when-done"] = "true"
    job = {
        "metadata": {"name": "train"},
        "spec": {"backoffLimit": 2, "podFailurePolicy": DISRUPTION_IGNORED, "template": template},
    }
    await batch.create_namespaced_job(namespace, cast(client.V1Job, job))


async def _job_pod_at_prep(
    core: client.CoreV1Api,
    batch: client.BatchV1Api,
    namespace: str,
    source: str,
    orchestrator: Orchestrator,
    *,
    succeed_when_done: bool = False,
) -> JSON:
    """The Job "train" on `source` with the shared claim, once its pod's prep completed and `orchestrator` saw it."""
    await _shared_claim(core, namespace)
    await _create_job(batch, namespace, source, succeed_when_done=succeed_when_done)
    pod = await wait_for_pods(core, namespace, lambda pods: _prep_done(pods, source))
    await _seen(orchestrator, namespace, pod, prep=True)
    return pod


async def test_a_job_pod_moves_with_its_running_containers_and_the_job_completes_uncharged(
    cluster: ClusterHandle, core: client.CoreV1Api, api: client.ApiClient, namespace: str, webhooks: Orchestrator
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    batch = client.BatchV1Api(api)
    pod = await _job_pod_at_prep(core, batch, namespace, source, webhooks, succeed_when_done=True)

    migration = await _move(webhooks, namespace, pod["metadata"]["name"], source, target)

    assert migration["status"] == "completed", migration
    assert {c["name"]: c["action"] for c in migration["containers"]} == {
        TRAINER: "migrate",
        PREP: "skip",
        MONITOR: "migrate",
    }
    moved = await wait_for_pods(core, namespace, lambda pods: _running(pods, target))
    assert moved["metadata"]["name"] == migration["new_pod_name"]
    assert [c["name"] for c in moved["spec"]["containers"]] == [TRAINER, MONITOR]
    assert moved["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert moved["metadata"]["labels"]["ai-storage.io/migration-id"] == migration["migration_id"]
    assert not _live(pod_dicts(core, await core.list_namespaced_pod(namespace)), node=source)

    # The trainer (and the monitor) end with exit code 0: the Job succeeds, never charged for the move.
    finished = {COMPLETE: f"{TRAINER},{MONITOR}", COMPLETE_AFTER: "0s"}
    await core.patch_namespaced_pod(moved["metadata"]["name"], namespace, {"metadata": {"annotations": finished}})

    status = await _job_status(batch, namespace, "train", lambda status: bool(status.get("succeeded")))
    assert status["succeeded"] == 1
    assert not status.get("failed"), status


async def test_a_statefulset_pod_keeps_its_name_ordinal_and_claim(
    cluster: ClusterHandle, core: client.CoreV1Api, api: client.ApiClient, namespace: str, webhooks: Orchestrator
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    apps = client.AppsV1Api(api)
    await _shared_claim(core, namespace)
    template = _template(source, restart_policy="Always")
    template["metadata"]["annotations"][COMPLETE] = ""  # nothing completes in an Always pod
    sts = {
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 1,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "train"}},
            "template": template,
        },
    }
    await apps.create_namespaced_stateful_set(namespace, cast(client.V1StatefulSet, sts))
    before = await wait_for_pods(core, namespace, lambda pods: _running(pods, source))
    assert before["metadata"]["name"] == "db-0"
    await _seen(webhooks, namespace, before, prep=False)

    migration = await _move(webhooks, namespace, "db-0", source, target)

    assert migration["status"] == "completed", migration
    after = await wait_for_pods(core, namespace, lambda pods: _running(pods, target))
    assert after["metadata"]["name"] == "db-0"
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "0"
    claims = [v["persistentVolumeClaim"]["claimName"] for v in after["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [SHARED_CLAIM]


class ReadyCount:
    """The fewest Ready, not terminating pods of the namespace seen at any event while it watches."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.core, self.namespace = core, namespace
        self.fewest: int | None = None
        self._ready: dict[str, bool] = {}

    async def watch(self, started: asyncio.Event) -> None:
        listing = await self.core.list_namespaced_pod(self.namespace)
        for pod in pod_dicts(self.core, listing):
            self._note(pod)
        started.set()
        async with watch.Watch() as stream:
            async for event in stream.stream(
                self.core.list_namespaced_pod, self.namespace, resource_version=listing.metadata.resource_version
            ):
                pod = api_client_of(self.core).sanitize_for_serialization(event["object"])
                if event["type"] == "DELETED":
                    self._ready.pop(pod["metadata"]["name"], None)
                    self._count()
                else:
                    self._note(pod)

    def _note(self, pod: JSON) -> None:
        conditions = (pod.get("status") or {}).get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        self._ready[pod["metadata"]["name"]] = ready and not pod["metadata"].get("deletionTimestamp")
        self._count()

    def _count(self) -> None:
        now = sum(self._ready.values())
        self.fewest = now if self.fewest is None else min(self.fewest, now)


async def test_a_deployment_pod_moves_with_zero_downtime_through_surge(
    cluster: ClusterHandle, core: client.CoreV1Api, api: client.ApiClient, namespace: str, webhooks: Orchestrator
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    apps = client.AppsV1Api(api)
    await _shared_claim(core, namespace)
    template = _template(source, restart_policy="Always")
    template["metadata"]["annotations"][COMPLETE] = ""
    for container in template["spec"]["containers"]:  # stateless: nothing written to persistent storage
        container.pop("volumeMounts", None)
    template["spec"].pop("volumes", None)
    deployment = {
        "metadata": {"name": "serve"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "train"}}, "template": template},
    }
    await apps.create_namespaced_deployment(namespace, cast(client.V1Deployment, deployment))
    before = await wait_for_pods(core, namespace, lambda pods: _running(pods, source))
    await orchestrator_sees(webhooks, namespace, before)
    ready = ReadyCount(core, namespace)
    started = asyncio.Event()
    watching = asyncio.create_task(ready.watch(started))
    try:
        await started.wait()
        migration = await _move(webhooks, namespace, before["metadata"]["name"], source, target)
        after = await wait_for_pods(core, namespace, lambda pods: live[0] if len(live := _live(pods)) == 1 else None)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching

    assert migration["status"] == "completed", migration
    assert migration["ordering"] == "make-before-break"
    assert after["spec"]["nodeName"] == target
    assert after["metadata"]["name"] == migration["new_pod_name"]
    assert ready.fewest == 1, "never without a Ready pod"
    scale = (await apps.read_namespaced_deployment("serve", namespace)).spec.replicas
    assert scale == 1, "the Deployment's count is back"
    replica_set = after["metadata"]["ownerReferences"][0]["name"]
    status = (await apps.read_namespaced_replica_set_status(replica_set, namespace)).status
    assert (status.replicas, status.ready_replicas) == (1, 1)


async def orchestrator_sees(orchestrator: Orchestrator, namespace: str, pod: JSON) -> None:
    await orchestrator.state.wait_for(
        lambda: orchestrator.state.pod(namespace, pod["metadata"]["name"]) is not None, timeout=30
    )


TRAINERS = {"group": "test.ai-storage.io", "version": "v1", "plural": "trainers", "kind": "Trainer"}


@pytest.fixture
async def trainer_kind(api: client.ApiClient) -> None:
    """A custom kind the orchestrator has never heard of."""
    extensions = client.ApiextensionsV1Api(api)
    crd: dict[str, Any] = {
        "metadata": {"name": f"{TRAINERS['plural']}.{TRAINERS['group']}"},
        "spec": {
            "group": TRAINERS["group"],
            "scope": "Namespaced",
            "names": {"plural": TRAINERS["plural"], "singular": "trainer", "kind": TRAINERS["kind"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    try:
        await extensions.create_custom_resource_definition(cast(client.V1CustomResourceDefinition, crd))
    except client.ApiException as error:
        if error.status != 409:  # already there: created by an earlier test of this session
            raise
    await wait_crd_established(api, crd["metadata"]["name"])


async def _tiny_operator(core: client.CoreV1Api, namespace: str, owner: JSON, template: JSON) -> None:
    """The operator of `owner`: whenever it has no live pod, it creates one from `template` (owned, controller)."""
    reference = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }

    def mine(pods: list[JSON]) -> list[JSON]:
        return [
            p
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(o.get("uid") == reference["uid"] for o in p["metadata"].get("ownerReferences") or [])
        ]

    while True:
        listing = await core.list_namespaced_pod(namespace)
        if not mine(pod_dicts(core, listing)):
            pod = {
                "metadata": {**template["metadata"], "generateName": "trainer-", "ownerReferences": [reference]},
                "spec": template["spec"],
            }
            await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
            continue
        async with watch.Watch() as stream:
            async for _ in stream.stream(
                core.list_namespaced_pod, namespace, resource_version=listing.metadata.resource_version
            ):
                break


async def test_a_pod_of_an_unknown_custom_kind_moves_too(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    api: client.ApiClient,
    namespace: str,
    trainer_kind: None,
    webhooks: Orchestrator,
) -> None:
    source, target = cluster.node_names[0], cluster.node_names[1]
    await _shared_claim(core, namespace)
    custom = client.CustomObjectsApi(api)
    owner = await custom.create_namespaced_custom_object(
        TRAINERS["group"],
        "v1",
        namespace,
        TRAINERS["plural"],
        {"apiVersion": f"{TRAINERS['group']}/v1", "kind": TRAINERS["kind"], "metadata": {"name": "resnet"}},
    )
    operator = asyncio.create_task(_tiny_operator(core, namespace, owner, _template(source, restart_policy="Never")))
    try:
        before = await wait_for_pods(core, namespace, lambda pods: _prep_done(pods, source))
        await _seen(webhooks, namespace, before, prep=True)

        migration = await _move(webhooks, namespace, before["metadata"]["name"], source, target)

        assert migration["status"] == "completed", migration
        after = await wait_for_pods(core, namespace, lambda pods: _running(pods, target))
        assert after["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
        assert [c["name"] for c in after["spec"]["containers"]] == [TRAINER, MONITOR]
        assert len(_live(pod_dicts(core, await core.list_namespaced_pod(namespace)))) == 1
    finally:
        operator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await operator


async def test_without_the_webhook_the_owner_pod_runs_where_kubernetes_puts_it_and_the_move_fails_at_once(
    cluster: ClusterHandle, core: client.CoreV1Api, api: client.ApiClient, namespace: str, orchestrator: Orchestrator
) -> None:
    """The orchestrator believes it captures (`--webhooks external`, say) but no configuration calls it."""
    source, target = cluster.node_names[0], cluster.node_names[1]
    batch = client.BatchV1Api(api)
    pod = await _job_pod_at_prep(core, batch, namespace, source, orchestrator)

    migration = await _move(orchestrator, namespace, pod["metadata"]["name"], source, target)

    assert migration["status"] == "failed", migration
    assert migration["error"]["reason"] == "replacement_not_captured", migration
    replacement = await wait_for_pods(core, namespace, lambda pods: _running(pods, source))
    assert replacement["metadata"]["name"] != pod["metadata"]["name"]
    assert [c["name"] for c in replacement["spec"]["containers"]] == [TRAINER, PREP, MONITOR], "as Kubernetes would"
