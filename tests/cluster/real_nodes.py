"""Real worker nodes on this machine for the `make e2e` tier: each node is a kubelet with its own containerd, joined to
the local control plane (tests/cluster/local_cluster.py, started with ``real_nodes=True``).

Every node has its own containerd root, state and sockets, kubelet ``--root-dir``, cgroup root (cgroupfs driver; the
machine has a hybrid cgroup v1 layout), CNI bridge and subnet, and a private mount namespace shared by its containerd
and kubelet, so /var/log/pods and every mount the node makes (volumes, overlay root filesystems, network namespaces)
stay the node's own and vanish with it.

Addresses: the API server's node proxy (``/api/v1/nodes/<node>/proxy/stats/summary``) refuses loopback addresses
("address not allowed"), and a kubelet refuses a loopback ``--node-ip``. So the tier adds a host-only interface,
``aiso-nodes`` (a bridge with no ports: this kernel has no dummy interfaces), with one /32 address per node in
10.231.0.0/24; each kubelet binds only its own address. Packets to a local address never leave the machine. The
API server reaches each kubelet there with its kubelet client certificate and verifies the kubelet's serving
certificate.

Shared storage: the kernel here has no NFS client. The PersistentVolume stays an ``nfs`` volume (the orchestrator
sees exactly what a real cluster has); each kubelet's ``--experimental-mounter-path`` points at ``nfs-mounter.sh``,
which bind-mounts the exported path from a directory both nodes see (``<workdir>/exports``). That directory is the
stand-in for the NFS server; every other mount goes to the real mount(8).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from tests.cluster import certs
from tests.cluster.cgroups_v1 import cgroup_hierarchies, leftover_cgroups, make_cgroup, remove_cgroup
from tests.cluster.host_state import HostSnapshot
from tests.cluster.local_cluster import ClusterError, LocalCluster, cache_dir, write_kubeconfig
from tests.cluster.processes import ManagedProcess, free_port

CNI_PLUGINS = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
NFS_MOUNTER = Path(__file__).with_name("nfs-mounter.sh")
NODE_PREFIX = "aiso-node-"
ADDRESS_PREFIX = "10.231.0."
HOST_INTERFACE = "aiso-nodes"
NFS_SERVER_STAND_IN = "127.0.0.1"  # what `nfs` PVs name as server; nfs-mounter.sh serves every export locally
LOCK_FILE = Path("/run/ai-storage-orchestrator-e2e.lock")
LOG_MOUNT_POINTS = (Path("/var/log/pods"), Path("/var/log/containers"))
CGROUP_PREFIX = "aiso-e2e-node-"
BRIDGE_PREFIX = "aiso-br"
SANDBOX_IMAGE = "aiso.local/pause:3.10"
KUBELET_PORT = 10250
NODE_LABEL = "ai-storage.io/e2e-node"


def node_binaries() -> Path:
    return cache_dir("tools/nodes/build.sh", override="AISO_NODE_BIN")


def remove_link(name: str) -> None:
    if Path(f"/sys/class/net/{name}").exists():
        subprocess.run(["ip", "link", "delete", name], check=False, capture_output=True)


def _add_host_interface(addresses: list[str]) -> None:
    remove_link(HOST_INTERFACE)
    commands = [["ip", "link", "add", HOST_INTERFACE, "type", "bridge"]]
    commands += [["ip", "address", "add", f"{address}/32", "dev", HOST_INTERFACE] for address in addresses]
    commands.append(["ip", "link", "set", HOST_INTERFACE, "up"])
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(command)}: {done.stderr.strip()}")


def _enter_cgroup_script(name: str) -> str:
    """Shell that moves itself into cgroup `name` in every hierarchy before it execs: what it starts inherits it."""
    return "".join(f'echo $$ > "{h / name}/cgroup.procs"; ' for h in cgroup_hierarchies())


# Experiments only (never CI, never a published figure unless it says so): kubelet feature gates for the real-node
# tier, e.g. AISO_KUBELET_FEATURE_GATES=EventedPLEG=true (issue #17: the kubelet sees a container's exit at once).
KUBELET_GATES_ENV = "AISO_KUBELET_FEATURE_GATES"


def kubelet_feature_gates(spec: str) -> dict[str, bool]:
    """``A=true,B=false`` as the kubelet's featureGates; an entry that is not NAME=true|false is an error."""
    gates: dict[str, bool] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        name, _, value = entry.partition("=")
        if not name or value.lower() not in ("true", "false"):
            raise ClusterError(f"{KUBELET_GATES_ENV}: {entry!r} is not NAME=true|false")
        gates[name] = value.lower() == "true"
    return gates


@dataclass
class RealNode:
    index: int
    workdir: Path
    binaries: Path
    name: str = field(init=False)
    processes: list[ManagedProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = f"{NODE_PREFIX}{self.index}"
        self.address = f"{ADDRESS_PREFIX}{self.index}"
        self.dir = self.workdir / f"node-{self.index}"
        self.socket = self.dir / "containerd" / "containerd.sock"
        self.cgroup_root = f"{CGROUP_PREFIX}{self.index}"
        self.runtime_cgroup = f"{self.cgroup_root}-runtime"
        self.bridge = f"{BRIDGE_PREFIX}{self.index}"
        self.subnet = f"10.244.{self.index}.0/24"

    # --- configuration files -----------------------------------------------------------------------------------
    def _containerd_config(self) -> str:
        base = self.dir / "containerd"
        return f"""version = 3
root = "{base / "root"}"
state = "{base / "state"}"

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins.'io.containerd.cri.v1.runtime']
  # The process lacks CAP_SYS_RESOURCE: containers may only raise their OOM score adjustment.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["{CNI_PLUGINS}"]
  conf_dir = "{self.dir / "cni" / "net.d"}"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = false

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "{SANDBOX_IMAGE}"
"""

    def _cni_config(self) -> str:
        return json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": f"aiso-e2e-{self.index}",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": self.bridge,
                        "isGateway": True,
                        "ipMasq": False,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": self.subnet}]],
                            "dataDir": str(self.dir / "cni" / "ipam"),
                        },
                    }
                ],
            },
            indent=2,
        )

    def _kubelet_config(self, ca: Path, serving: certs.NodeCerts) -> str:
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.address,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": self.address,
            "healthzPort": 10248,
            "tlsCertFile": str(serving.serving_cert),
            "tlsPrivateKeyFile": str(serving.serving_key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(ca)},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_root}",
            "failCgroupV1": False,  # the host's layout is cgroup v1 (hybrid); Kubernetes ≥ 1.35 refuses it otherwise
            "failSwapOn": False,
            "resolvConf": "/etc/resolv.conf",
            "maxPods": 16,
            "serializeImagePulls": False,
            "nodeStatusUpdateFrequency": "4s",
            "nodeStatusReportFrequency": "10s",
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "volumePluginDir": str(self.dir / "kubelet" / "volume-plugins"),
            "localStorageCapacityIsolation": True,
        }
        gates = kubelet_feature_gates(os.environ.get(KUBELET_GATES_ENV, ""))
        if gates:
            config["featureGates"] = gates
        return yaml.safe_dump(config)

    # --- life cycle ---------------------------------------------------------------------------------------------
    def _process(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(f"{name}-{self.index}", argv, self.workdir)
        process.start()
        self.processes.append(process)
        return process

    def start(self, cluster: LocalCluster, *, exports: Path, images: list[Path], timeout: float) -> None:
        for sub in ("containerd", "cni/net.d", "cni/ipam", "kubelet/root", "kubelet/volume-plugins", "logs/pods",
                    "logs/containers"):  # fmt: skip
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "containerd" / "config.toml").write_text(self._containerd_config())
        (self.dir / "cni" / "net.d" / "10-bridge.conflist").write_text(self._cni_config())
        identity = certs.issue_node(cluster.pki, self.dir / "pki", name=self.name, address=self.address)
        (self.dir / "kubelet" / "config.yaml").write_text(self._kubelet_config(cluster.pki.ca_cert, identity))
        write_kubeconfig(
            self.dir / "kubelet" / "kubeconfig",
            server=cluster.server,
            ca=cluster.pki.ca_cert,
            cert=identity.client_cert,
            key=identity.client_key,
            user=self.name,
        )
        make_cgroup(self.cgroup_root)
        make_cgroup(self.runtime_cgroup)
        path = f"{self.binaries}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        # The node's own mount namespace: /var/log/pods and /var/log/containers are fixed paths in the kubelet, so
        # each node gets its own behind them (one kubelet's log GC would otherwise delete the other's logs).
        mounts = " ".join(
            f'mkdir -p {target} && mount --bind "{self.dir / "logs" / source}" {target} &&'
            for source, target in zip(("pods", "containers"), LOG_MOUNT_POINTS, strict=True)
        )
        containerd = self._process(
            "containerd",
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
             f"{_enter_cgroup_script(self.runtime_cgroup)} {mounts} PATH={path} exec containerd "
             f"--config {self.dir / 'containerd' / 'config.toml'}"],
        )  # fmt: skip
        self._wait(lambda: self.socket.is_socket(), containerd, timeout, "containerd socket")
        for image in images:
            self.ctr(["images", "import", "--snapshotter", "overlayfs", str(image)])
        kubelet_flags = [
            f"--config={self.dir / 'kubelet' / 'config.yaml'}",
            f"--kubeconfig={self.dir / 'kubelet' / 'kubeconfig'}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.address}",
            f"--root-dir={self.dir / 'kubelet' / 'root'}",
            f"--cert-dir={self.dir / 'kubelet' / 'pki'}",
            f"--node-labels={NODE_LABEL}=true",
            f"--experimental-mounter-path={NFS_MOUNTER}",
            "--v=1",
        ]
        self._process(
            "kubelet",
            ["nsenter", f"--target={containerd.pid}", "--mount", "--", "env", f"PATH={path}",
             f"AISO_NFS_EXPORTS={exports}", "sh", "-c",
             f'{_enter_cgroup_script(self.runtime_cgroup)} exec kubelet "$@"', "kubelet", *kubelet_flags],
        )  # fmt: skip

    @property
    def ctr_command(self) -> list[str]:
        """`ctr` against this node's containerd."""
        return [str(self.binaries / "ctr"), f"--address={self.socket}"]

    def ctr(self, args: list[str]) -> str:
        """`ctr` against this node's containerd, in the namespace the kubelet uses."""
        result = subprocess.run(
            [*self.ctr_command, "--namespace=k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"ctr {' '.join(args)} on node {self.name}: {result.stderr.strip()}")
        return result.stdout

    def _wait(self, ready: Callable[[], bool], process: ManagedProcess, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not process.running():
                raise ClusterError(f"{process.name} exited before its {what} appeared:\n{process.log_tail()}")
            time.sleep(0.1)  # start-up probe of a child process: there is no event to wait on
        raise ClusterError(f"no {what} on node {self.name} within {timeout}s:\n{process.log_tail()}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        for name in (self.cgroup_root, self.runtime_cgroup):
            remove_cgroup(name)
        remove_link(self.bridge)


@dataclass
class RealNodeTier:
    """Two (or more) real nodes on this machine; `start()` waits until the API server lists them Ready."""

    cluster: LocalCluster
    workdir: Path
    images: list[Path]
    count: int = 2
    startup_timeout: float = 120.0
    nodes: list[RealNode] = field(default_factory=list)
    host: HostSnapshot | None = None
    lock_handle: TextIO | None = field(default=None, repr=False)
    created_dirs: list[Path] = field(default_factory=list)
    scheduler: ManagedProcess | None = None

    @property
    def exports(self) -> Path:
        """The directory both nodes see behind ``nfs`` volumes of server 127.0.0.1 (export path = relative path)."""
        return self.workdir / "exports"

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def import_image(self, archive: Path) -> None:
        """An OCI archive (scripts/build.sh's dist/ai-storage-orchestrator-<version>.oci.tar) into every running node's
        containerd, namespace k8s.io, under the name the archive gives it: what `scripts/build.sh --containerd-address
        <node>/containerd/containerd.sock`, once per node, does."""
        for node in self.nodes:
            node.ctr(["images", "import", "--snapshotter", "overlayfs", str(archive)])

    def start(self) -> None:
        if os.geteuid() != 0:
            raise ClusterError("real nodes need root (kubelet, containerd, mounts, cgroups)")
        self._lock()
        # Leftovers of a tier that was killed before it could stop.
        for stale in leftover_cgroups(CGROUP_PREFIX):
            remove_cgroup(stale)
        for index in range(1, self.count + 1):
            remove_link(f"{BRIDGE_PREFIX}{index}")
        binaries = node_binaries()
        self.host = HostSnapshot()
        self.exports.mkdir(parents=True, exist_ok=True)
        # Mount points of the nodes' own log directories (see RealNode.start): created on the host if missing.
        self.created_dirs = [p for p in LOG_MOUNT_POINTS if not p.exists()]
        try:
            _add_host_interface([f"{ADDRESS_PREFIX}{index}" for index in range(1, self.count + 1)])
            self._start_scheduler(binaries)
            for index in range(1, self.count + 1):
                node = RealNode(index, self.workdir, binaries)
                self.nodes.append(node)
                node.start(self.cluster, exports=self.exports, images=self.images, timeout=self.startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _start_scheduler(self, binaries: Path) -> None:
        """Pods without a nodeName (a Deployment's: the orchestrator's own, in the certification) need a scheduler."""
        argv = [
            str(binaries / "kube-scheduler"), f"--kubeconfig={self.cluster.kubeconfig}",
            f"--authentication-kubeconfig={self.cluster.kubeconfig}",
            f"--authorization-kubeconfig={self.cluster.kubeconfig}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
        ]  # fmt: skip
        self.scheduler = ManagedProcess("kube-scheduler", argv, self.workdir)
        self.scheduler.start()

    def _lock(self) -> None:
        """One tier per machine: names, addresses and cgroups are fixed, and start-up removes leftovers."""
        handle = LOCK_FILE.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            message = f"another real-node tier is running on this machine (pid {holder}, {LOCK_FILE})"
            raise ClusterError(message) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.lock_handle = handle

    def leftovers(self) -> list[str]:
        """What a stopped tier must not leave behind: cgroups, interfaces, mounts, processes of its binaries."""
        found = [f"cgroup {name}" for name in leftover_cgroups(CGROUP_PREFIX)]
        found += [f"interface {p.name}" for p in Path("/sys/class/net").iterdir() if p.name.startswith("aiso-")]
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        found += [f"mount {line.split()[4]}" for line in mounts if str(self.workdir) in line]
        found += self.host.differences() if self.host is not None else []
        binaries = str(node_binaries())
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if entry.name.isdigit() and os.readlink(entry / "exe").startswith(binaries):
                    found.append(f"process {entry.name} ({os.readlink(entry / 'exe')})")
        return found

    def stop(self) -> None:
        errors = []
        for node in reversed(self.nodes):
            try:
                node.stop()
            except ClusterError as error:
                errors.append(str(error))
        self.nodes.clear()
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        remove_link(HOST_INTERFACE)
        for directory in self.created_dirs:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty
        if self.host is not None:
            errors.extend(self.host.restore())
        if self.lock_handle is not None:
            self.lock_handle.close()  # releases the lock
            self.lock_handle = None
        if errors:
            raise ClusterError("; ".join(errors))


def export_dir(exports: Path, nfs_path: str) -> Path:
    """Where the stand-in NFS server keeps export `nfs_path` (``/exports/training-data`` → exports/exports/…)."""
    return exports / nfs_path.lstrip("/")
