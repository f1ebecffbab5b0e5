"""A plain `kubectl drain` migrates opted-in pods: against the real API server, kube-controller-manager and KWOK nodes,
with an in-process orchestrator serving its admission webhooks (`serve --webhooks self`: self-signed, on 127.0.0.1,
registered for the test's namespace only).

The eviction webhook refuses the eviction of an opted-in pod with 429 and starts its migration; kubectl drain retries
every 5 s until the orchestrator, having moved the pod, has evicted the source itself. With the configurations
registered but the webhook server gone (failurePolicy Ignore), the same drain simply evicts.

kubectl drain takes the whole node; `--pod-selector` limits it to this test's pods, so that pods other tests left on
the shared nodes are not touched (a drain ignores the pods its selector leaves out)."""

from __future__ import annotations

import shutil
from contextlib import AsyncExitStack
from typing import Any, cast

import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.admission import selfsigned
from ai_storage_orchestrator.admission.registration import configuration_name, registered, webhook_configurations
from ai_storage_orchestrator.admission.server import create_webhook_app, serving
from ai_storage_orchestrator.api.tls import server_context
from ai_storage_orchestrator.conventions import MIGRATE_ON_EVICT_ANNOTATION
from ai_storage_orchestrator.models import Phase
from ai_storage_orchestrator.runtime import Orchestrator, admission_webhooks
from ai_storage_orchestrator.settings import WebhookMode
from tests.cluster.fixtures import ClusterHandle
from tests.cluster.impersonation import poll_until
from tests.cluster.moves import container_state, wait_phase
from tests.cluster.pods import wait_pods
from tests.cluster.processes import run_command
from tests.cluster.workloads import SHARED_CLAIM, certification_pod, shared_volume

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("orchestrator_overrides", [{"webhooks": WebhookMode.SELF, "webhook_port": 0}]),
]

JSON = dict[str, Any]
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
PODS = ("cert-a", "cert-b")
SELECTOR = "eviction-test"
DRAIN_DEADLINE = 150.0
WAIT = 30.0


def _live(pods: list[JSON]) -> list[JSON]:
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp") and (p.get("status") or {}).get("phase") == "Running"
    ]


async def _deploy(core: client.CoreV1Api, orchestrator: Orchestrator, namespace: str, source: str) -> None:
    """Two opted-in certification pods on `source`, their data-processor finished, as the orchestrator sees them."""
    pv, pvc = shared_volume(namespace)
    await core.create_persistent_volume(cast(client.V1PersistentVolume, pv))
    await core.create_namespaced_persistent_volume_claim(namespace, cast(client.V1PersistentVolumeClaim, pvc))
    for name in PODS:
        pod = certification_pod(
            node=source, name=name, annotations={MIGRATE_ON_EVICT_ANNOTATION: "true"}, complete_after="0s"
        )
        pod["metadata"].setdefault("labels", {})[SELECTOR] = namespace
        await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))

    def seen() -> bool:
        claim = orchestrator.state.claim(namespace, SHARED_CLAIM) or {}
        volume = (claim.get("spec") or {}).get("volumeName")
        if (claim.get("status") or {}).get("phase") != "Bound" or orchestrator.state.volume(str(volume)) is None:
            return False
        return all(
            container_state(orchestrator.state.pod(namespace, name), "data-processor") == "terminated" for name in PODS
        )

    await orchestrator.state.wait_for(seen, timeout=WAIT)


async def _dry_run_eviction(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    """The refusal's message of a dry-run eviction of the pod, None when it was allowed."""
    body: JSON = {"metadata": {"name": name, "namespace": namespace}}
    try:
        await core.create_namespaced_pod_eviction(name, namespace, cast(client.V1Eviction, body), dry_run="All")
    except client.ApiException as error:
        refusal = error
    else:
        return None
    assert refusal.status == 429, refusal
    return str(refusal.body)


async def _webhook_in_force(core: client.CoreV1Api, namespace: str) -> None:
    """The API server calls the eviction webhook (its configuration cache fills asynchronously)."""

    async def refused() -> bool:
        return await _dry_run_eviction(core, namespace, PODS[0]) is not None

    await poll_until(refused, timeout=WAIT, what="the eviction webhook in force")


async def _drain(cluster: ClusterHandle, namespace: str, node: str) -> tuple[int, str, str]:
    argv = [KUBECTL, "drain", node, "--force", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s"]
    selector = f"--pod-selector={SELECTOR}={namespace}"
    return await run_command([*argv, selector, "--kubeconfig", str(cluster.kubeconfig)], timeout=DRAIN_DEADLINE)


async def test_kubectl_drain_migrates_opted_in_pods(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator
) -> None:
    source = cluster.node_names[0]
    assert orchestrator.service is not None
    await _deploy(core, orchestrator, namespace, source)
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in await wait_pods(core, namespace, bool)}
    try:
        async with admission_webhooks(orchestrator):
            await _webhook_in_force(core, namespace)
            # A dry-run eviction says what a real one would do, and starts nothing (sideEffects: NoneOnDryRun).
            message = await _dry_run_eviction(core, namespace, PODS[1])
            assert message is not None
            assert f"pod {namespace}/{PODS[1]} would be migrated to node" in message
            assert orchestrator.service.list(namespace=namespace) == []

            code, out, err = await _drain(cluster, namespace, source)
            assert code == 0, (out, err)
            assert "is being migrated by migration" in err, err  # the 429s kubectl drain retried
            assert f"node/{source} drained" in out, out

            migrations = orchestrator.service.list(namespace=namespace)
            assert sorted(m["pod_name"] for m in migrations) == sorted(PODS), migrations
            for migration in migrations:
                done = await wait_phase(orchestrator, namespace, migration["migration_id"], Phase.COMPLETED)
                assert done["spec"]["triggeredBy"] == "eviction"
                assert done["spec"]["targetNode"] != source
                assert "targetChoice" in done["spec"]

        def moved(pods: list[JSON]) -> bool:
            running = _live(pods)
            return len(running) == len(PODS) and all(p["spec"]["nodeName"] != source for p in running)

        after = await wait_pods(core, namespace, moved)
        assert not [p for p in after if p["spec"].get("nodeName") == source], after
        assert not {p["metadata"]["uid"] for p in after} & set(before.values())
        for name in PODS:
            [copy] = [p for p in _live(after) if p["metadata"]["name"].startswith(f"{name}-migrated-")]
            # Nothing lost: both running containers moved; the finished data-processor's results are on the claim.
            assert [c["name"] for c in copy["spec"]["containers"]] == ["tensorflow-trainer", "model-monitor"]
            assert all(container_state(copy, c) == "running" for c in ("tensorflow-trainer", "model-monitor"))
            claims = [
                v["persistentVolumeClaim"]["claimName"] for v in copy["spec"]["volumes"] if "persistentVolumeClaim" in v
            ]
            assert SHARED_CLAIM in claims
    finally:
        await core.patch_node(source, {"spec": {"unschedulable": False}})


async def test_kubectl_drain_evicts_when_the_webhook_does_not_answer(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, orchestrator: Orchestrator
) -> None:
    source = cluster.node_names[1]
    assert orchestrator.service is not None
    assert orchestrator.api is not None
    await _deploy(core, orchestrator, namespace, source)
    pair = selfsigned.issue("127.0.0.1")
    with selfsigned.written(pair) as files:
        context = server_context(files.cert_file, files.key_file)
    try:
        async with AsyncExitStack() as server:
            app = create_webhook_app(orchestrator.pod_admission())
            port = await server.enter_async_context(serving(app, host="127.0.0.1", port=0, ssl_context=context))
            mutating, validating = webhook_configurations(
                name=configuration_name(orchestrator.settings.identity),
                base_url=f"https://127.0.0.1:{port}",
                ca_bundle=pair.ca_pem,
                namespaces=(namespace,),
            )
            async with registered(orchestrator.api, mutating=mutating, validating=validating):
                await _webhook_in_force(core, namespace)
                await server.aclose()  # the orchestrator's webhooks stop answering; their configurations stay

                code, out, err = await _drain(cluster, namespace, source)
                assert code == 0, (out, err)
                assert "is being migrated" not in err, err

                pods = await wait_pods(core, namespace, lambda ps: not ps)
                assert pods == []  # evicted, and nothing recreated them: bare pods
                assert orchestrator.service.list(namespace=namespace) == []
    finally:
        await core.patch_node(source, {"spec": {"unschedulable": False}})
