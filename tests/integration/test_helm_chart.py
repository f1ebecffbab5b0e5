"""The Helm chart on the real control plane: `helm install` into the local kube-apiserver, the Deployment becomes
Available on KWOK nodes, `helm uninstall` removes what it installed; the namespace-scoped + TLS render passes a
server-side dry-run. (Rendering and lint: tests/unit/test_helm_chart_render.py.)

The local control plane runs no kube-scheduler, so the test binds the Deployment's pods to simulated nodes itself
(the Binding subresource, as the scheduler does); KWOK then runs them -- Running and Ready, no containers -- and the
real Deployment and ReplicaSet controllers of kube-controller-manager report the Deployment Available."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes_asyncio import client, watch

from ai_storage_orchestrator.kube.resources import KubeApi
from tests.cluster.fixtures import ClusterHandle
from tests.integration.test_manifests import KINDS
from tests.unit.test_helm_chart_render import CHART, SCOPED_TLS_VALUES, helm_binary

NAME = "ai-storage-orchestrator"
SELECTOR = f"app.kubernetes.io/name={NAME}"
RELEASE = "aiso"
TIMEOUT = 60.0
Helm = Callable[..., Awaitable[str]]


@pytest.fixture
def helm(cluster: ClusterHandle, tmp_path: Path) -> Helm:
    """`await helm(*args)` runs helm against the test cluster, with its own config, cache and data directories."""
    binary = helm_binary()
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }

    async def run(*args: str | Path) -> str:
        process = await asyncio.create_subprocess_exec(
            str(binary), *map(str, args), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            async with asyncio.timeout(TIMEOUT):
                out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode == 0, f"helm {' '.join(map(str, args))} exited {process.returncode}:\n{err.decode()}"
        return out.decode()

    return run


def _tls_secret(namespace: str) -> client.V1Secret:
    """What scripts/deploy.sh or cert-manager would provide: a kubernetes.io/tls Secret for the Service's name."""
    key = ec.generate_private_key(ec.SECP256R1())
    host = f"{NAME}.{namespace}.svc"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name=f"{NAME}-tls"),
        type="kubernetes.io/tls",
        string_data={
            "tls.crt": certificate.public_bytes(serialization.Encoding.PEM).decode(),
            "tls.key": pem_key.decode(),
        },
    )


async def _bind_pods(core: client.CoreV1Api, namespace: str, nodes: Sequence[str]) -> None:
    """Stand in for kube-scheduler: bind every unscheduled pod of the Deployment, round-robin over `nodes` (the
    chart's anti-affinity prefers different nodes). Runs until cancelled."""
    bound: set[str] = set()

    async def bind(pod: Any) -> None:
        if pod.spec.node_name or pod.metadata.deletion_timestamp or pod.metadata.name in bound:
            return
        node = nodes[len(bound) % len(nodes)]
        bound.add(pod.metadata.name)
        binding = client.V1Binding(
            metadata=client.V1ObjectMeta(name=pod.metadata.name),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=node),
        )
        # The answer is a Status, which the generated client cannot read as the V1Binding it expects: not parsed.
        response: Any = await core.create_namespaced_pod_binding(
            pod.metadata.name, namespace, binding, _preload_content=False
        )
        response.release()

    listing = await core.list_namespaced_pod(namespace, label_selector=SELECTOR)
    for pod in listing.items:
        await bind(pod)
    async with watch.Watch() as stream:
        async for event in stream.stream(
            core.list_namespaced_pod,
            namespace,
            label_selector=SELECTOR,
            resource_version=listing.metadata.resource_version,
            timeout_seconds=int(TIMEOUT),
        ):
            if event["type"] in ("ADDED", "MODIFIED"):
                await bind(event["object"])


def _available(deployment: Any) -> bool:
    status = deployment.status
    conditions = (status.conditions if status else None) or []
    return (
        any(c.type == "Available" and c.status == "True" for c in conditions)
        and (status.available_replicas or 0) == deployment.spec.replicas
        and status.observed_generation == deployment.metadata.generation
    )


async def _wait_available(apps: client.AppsV1Api, namespace: str) -> Any:
    """The Deployment once it reports Available with every replica, on a watch."""
    current = await apps.read_namespaced_deployment(NAME, namespace)
    if _available(current):
        return current
    async with watch.Watch() as stream:
        async for event in stream.stream(
            apps.list_namespaced_deployment,
            namespace,
            field_selector=f"metadata.name={NAME}",
            resource_version=current.metadata.resource_version,
            timeout_seconds=int(TIMEOUT),
        ):
            if _available(event["object"]):
                return event["object"]
    raise AssertionError(f"deployment {namespace}/{NAME} not Available within {TIMEOUT}s")


async def _exists(call: Any) -> bool:
    try:
        await call
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


async def test_the_chart_installs_and_its_deployment_becomes_available(
    cluster: ClusterHandle, api: client.ApiClient, core: client.CoreV1Api, namespace: str, helm: Helm
) -> None:
    if cluster.local is None:
        pytest.skip("needs the local control plane's KWOK nodes: the image ai-storage-orchestrator:0.1.0 is not pulled")
    apps, rbac = client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
    admission = client.AdmissionregistrationV1Api(api)
    await core.create_namespaced_secret(namespace, _tls_secret(namespace))

    # The chart's default values, in the test's namespace (the leader-election Role and --lease-namespace follow it).
    installed = await helm("install", RELEASE, CHART, "--namespace", namespace)
    try:
        # NOTES.txt, as helm prints it.
        assert f"ai-storage-orchestrator 0.1.0 is installed in namespace {namespace}." in installed
        assert "--audience ai-storage-orchestrator" in installed
        binder = asyncio.create_task(_bind_pods(core, namespace, cluster.node_names[:2]))
        try:
            async with asyncio.timeout(TIMEOUT):
                deployment = await _wait_available(apps, namespace)
        except TimeoutError:
            status = (await apps.read_namespaced_deployment(NAME, namespace)).status
            pods = (await core.list_namespaced_pod(namespace, label_selector=SELECTOR)).items
            placed = {p.metadata.name: (p.spec.node_name, p.status.phase) for p in pods}
            raise AssertionError(f"not Available within {TIMEOUT}s: {status}, pods {placed}") from None
        finally:
            binder.cancel()
            await asyncio.gather(binder, return_exceptions=True)
        assert deployment.status.ready_replicas == 2
        [container] = deployment.spec.template.spec.containers
        assert container.image == "ai-storage-orchestrator:0.1.0"
        assert f"--lease-namespace={namespace}" in container.args
        pods = (await core.list_namespaced_pod(namespace, label_selector=SELECTOR)).items
        assert sorted(p.spec.node_name for p in pods) == sorted(cluster.node_names[:2])
        assert all(p.spec.service_account_name == NAME for p in pods)

        # What the release installed beside the Deployment, as the API server has it.
        binding = await rbac.read_cluster_role_binding(NAME)
        assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", NAME, namespace)]
        lease_role = await rbac.read_namespaced_role(f"{NAME}-leader-election", namespace)
        assert lease_role.rules[1].resource_names == [NAME]
        policy_binding = await admission.read_validating_admission_policy_binding(f"{NAME}-annotations")
        assert policy_binding.spec.validation_actions == ["Deny"]
        crd = await client.ApiextensionsV1Api(api).read_custom_resource_definition("podmigrations.ai-storage.io")
        assert crd.spec.group == "ai-storage.io"
        listed = await helm("list", "--namespace", namespace, "--output", "yaml")
        [release] = yaml.safe_load(listed)
        assert (release["name"], release["status"], release["app_version"]) == (RELEASE, "deployed", "0.1.0")
    finally:
        await helm("uninstall", RELEASE, "--namespace", namespace)

    # Cluster-wide objects go with the release (the CRD stays, as Helm keeps crds/: the PodMigrations survive).
    assert not await _exists(rbac.read_cluster_role(NAME))
    assert not await _exists(rbac.read_cluster_role_binding(NAME))
    assert not await _exists(admission.read_validating_admission_policy(f"{NAME}-annotations"))
    assert not await _exists(admission.read_validating_admission_policy_binding(f"{NAME}-annotations"))


async def test_the_namespace_scoped_tls_render_passes_a_server_side_dry_run(
    api: client.ApiClient, namespace: str, helm: Helm, tmp_path: Path
) -> None:
    values = {**SCOPED_TLS_VALUES, "namespaceScope": {"namespaces": [namespace]}}
    values_path = tmp_path / "values.yaml"
    values_path.write_text(yaml.safe_dump(values))
    rendered = await helm(
        "template", RELEASE, CHART, "--namespace", namespace, "--include-crds", "--values", values_path
    )
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert {o["kind"] for o in objects} >= {
        "Deployment",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "CustomResourceDefinition",
    }
    kube = KubeApi(api)
    for obj in objects:
        applied = await kube.apply(KINDS[obj["kind"]], obj, field_manager="helm-chart-test", dry_run=True)
        assert applied["metadata"]["name"] == obj["metadata"]["name"]
