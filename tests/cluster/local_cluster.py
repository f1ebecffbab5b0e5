"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager and KWOK simulated
nodes, built from source by tools/k8s/build.sh. Shared by the pytest fixtures, `make demo` and
scripts/local-cluster.sh. With AISO_KUBECONFIG set, an existing cluster is used instead (like envtest's
USE_EXISTING_CLUSTER) and nothing is started."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.cluster import certs
from tests.cluster.processes import ManagedProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGES_FILE = Path(__file__).with_name("kwok-stages.yaml")
SIMULATED_NODE_LABEL = {"type": "kwok"}


class ClusterError(RuntimeError):
    pass


def cache_dir(script: str, *, override: str | None = None) -> Path:
    """The cache directory a tools/ script prints with `--print` (nothing is built), unless env `override` names it."""
    configured = os.environ.get(override) if override else None
    if configured:
        return Path(configured)
    printed = subprocess.run([str(REPO_ROOT / script), "--print"], check=True, capture_output=True, text=True)
    return Path(printed.stdout.strip())


def binaries_dir() -> Path:
    return cache_dir("tools/k8s/build.sh", override="AISO_K8S_BIN")


def write_kubeconfig(path: Path, *, server: str, ca: Path, cert: Path, key: Path, user: str = "admin") -> None:
    """A kubeconfig that authenticates with a client certificate of the cluster CA."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))


@dataclass
class LocalCluster:
    """Start with `start()`, stop with `stop()`; `kubeconfig` is the admin kubeconfig."""

    workdir: Path
    node_names: list[str] = field(default_factory=lambda: ["sim-node-0", "sim-node-1", "sim-node-2"])
    detach: bool = False
    # Real kubelets join (tests/cluster/real_nodes.py): the Node authorizer and NodeRestriction for their
    # system:node identities, and the API server verifies their serving certificates.
    real_nodes: bool = False
    startup_timeout: float = 90.0
    processes: list[ManagedProcess] = field(default_factory=list)
    kubeconfig: Path = field(init=False)
    server: str = field(init=False, default="")
    etcd_url: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.bin = binaries_dir()

    def _process(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.workdir, detach=self.detach)
        process.start()
        self.processes.append(process)
        return process

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        paths = certs.generate(self.workdir / "pki")
        etcd_client, etcd_peer, api_port, kwok_port = free_port(), free_port(), free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{etcd_client}"
        etcd = self._process(
            "etcd",
            [
                str(self.bin / "etcd"),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait_http(etcd, f"{self.etcd_url}/health")
        self.server = f"https://127.0.0.1:{api_port}"
        apiserver = self._process(
            "kube-apiserver",
            [
                str(self.bin / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={paths.serving_cert}",
                f"--tls-private-key-file={paths.serving_key}",
                f"--client-ca-file={paths.ca_cert}",
                f"--service-account-key-file={paths.sa_public}",
                f"--service-account-signing-key-file={paths.sa_private}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/16",
                *self._authorization_args(paths),
                "--allow-privileged=true",
                "--profiling=false",
                "--endpoint-reconciler-type=none",
                # No watch cache for ConfigMaps: watches from a compacted resourceVersion then reach etcd and get
                # 410 Gone, which the watch tests need (the cache would serve them from its own window).
                "--watch-cache-sizes=configmaps#0",
                f"--kubelet-client-certificate={paths.admin_cert}",
                f"--kubelet-client-key={paths.admin_key}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
            ],
        )
        write_kubeconfig(
            self.kubeconfig, server=self.server, ca=paths.ca_cert, cert=paths.admin_cert, key=paths.admin_key
        )
        self._paths = paths
        self.wait_apiserver_ready(apiserver)
        self._process(
            "kube-controller-manager",
            [
                str(self.bin / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={paths.sa_private}",
                f"--root-ca-file={paths.ca_cert}",
                "--use-service-account-credentials=false",
                # No pod CIDRs to allocate; the node lifecycle controller stays (it lifts the not-ready taint).
                "--controllers=*,-node-ipam-controller",
                "--node-monitor-period=1s",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
            ],
        )
        self._process(
            "kwok",
            [
                str(self.bin / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={STAGES_FILE}",
                f"--config={STAGES_FILE.with_name('kwok-exec.yaml')}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-label-selector=type=kwok",
                "--node-ip=127.0.0.1",
                f"--node-port={kwok_port}",
                f"--server-address=127.0.0.1:{kwok_port}",
                f"--tls-cert-file={paths.serving_cert}",
                f"--tls-private-key-file={paths.serving_key}",
                "--node-lease-duration-seconds=40",
            ],
        )
        asyncio.run(self._create_nodes())
        self._assert_running()

    def _authorization_args(self, paths: certs.ClusterCerts) -> list[str]:
        if not self.real_nodes:
            return ["--authorization-mode=RBAC"]
        return [
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-certificate-authority={paths.ca_cert}",
        ]

    @property
    def pki(self) -> certs.ClusterCerts:
        return self._paths

    def _assert_running(self) -> None:
        for process in self.processes:
            if not process.running():
                raise ClusterError(f"{process.name} exited during start-up:\n{process.log_tail()}")

    async def _create_nodes(self) -> None:
        from tests.cluster.nodes import create_simulated_nodes

        await create_simulated_nodes(self.kubeconfig, self.node_names, timeout=self.startup_timeout)

    def wait_apiserver_ready(self, apiserver: ManagedProcess) -> None:
        self._wait_http(apiserver, f"{self.server}/readyz", paths=self._paths)

    def _wait_http(self, process: ManagedProcess, url: str, *, paths: certs.ClusterCerts | None = None) -> None:
        context = None
        if paths is not None:
            context = ssl.create_default_context(cafile=str(paths.ca_cert))
            context.load_cert_chain(str(paths.admin_cert), str(paths.admin_key))
        deadline = time.monotonic() + self.startup_timeout
        last_error = ""
        while time.monotonic() < deadline:
            if not process.running():
                raise ClusterError(f"{process.name} exited during start-up:\n{process.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as error:
                last_error = str(error)
            time.sleep(0.2)  # start-up probe of a child process: there is no event to wait on
        raise ClusterError(f"{process.name} not ready at {url} within {self.startup_timeout}s: {last_error}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def state(self) -> dict[str, object]:
        return {
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "etcd": self.etcd_url,
            "nodes": self.node_names,
            "pids": {p.name: p.pid for p in self.processes},
        }

    def write_state(self) -> Path:
        path = self.workdir / "cluster.json"
        path.write_text(json.dumps(self.state(), indent=2))
        return path
