"""The real-node tier's generated configuration and its NFS stand-in mounter (no nodes started here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.cluster import certs
from tests.cluster.cgroups_v1 import CGROUP_V1, cgroup_hierarchies, leftover_cgroups, make_cgroup, remove_cgroup
from tests.cluster.host_state import normalize
from tests.cluster.local_cluster import ClusterError
from tests.cluster.real_nodes import (
    KUBELET_GATES_ENV,
    NFS_MOUNTER,
    SANDBOX_IMAGE,
    RealNode,
    export_dir,
    kubelet_feature_gates,
)

pytestmark = pytest.mark.unit


def _node(tmp_path: Path, index: int = 2) -> RealNode:
    return RealNode(index, tmp_path, tmp_path / "bin")


def test_each_node_has_its_own_name_cgroup_bridge_and_subnet(tmp_path: Path) -> None:
    one, two = _node(tmp_path, 1), _node(tmp_path, 2)
    assert (one.name, two.name) == ("aiso-node-1", "aiso-node-2")
    assert (one.address, two.address) == ("10.231.0.1", "10.231.0.2")
    for attribute in ("address", "dir", "socket", "cgroup_root", "runtime_cgroup", "bridge", "subnet"):
        assert getattr(one, attribute) != getattr(two, attribute), attribute


def test_containerd_config_keeps_everything_under_the_node_directory(tmp_path: Path) -> None:
    node = _node(tmp_path)
    config = tomllib.loads(node._containerd_config())
    assert config["version"] == 3
    for path in (config["root"], config["state"], config["grpc"]["address"], config["ttrpc"]["address"]):
        assert path.startswith(str(node.dir))
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    assert runtime["netns_mounts_under_state_dir"] is True
    assert runtime["cni"]["conf_dir"].startswith(str(node.dir))
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == SANDBOX_IMAGE
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["stream_server_address"] == "127.0.0.1"


def test_cni_config_is_a_bridge_with_the_nodes_subnet(tmp_path: Path) -> None:
    node = _node(tmp_path)
    (plugin,) = json.loads(node._cni_config())["plugins"]
    assert plugin["type"] == "bridge"
    assert plugin["bridge"] == node.bridge
    assert plugin["ipMasq"] is False  # no iptables rules on the host
    assert plugin["ipam"]["ranges"] == [[{"subnet": "10.244.2.0/24"}]]
    assert plugin["ipam"]["dataDir"].startswith(str(node.dir))


def test_kubelet_config_serves_only_on_the_nodes_address_with_webhook_auth(tmp_path: Path) -> None:
    node = _node(tmp_path)
    serving = certs.NodeCerts(tmp_path / "c", tmp_path / "k", tmp_path / "s.crt", tmp_path / "s.key")
    config = yaml.safe_load(node._kubelet_config(tmp_path / "ca.crt", serving))
    assert config["address"] == config["healthzBindAddress"] == "10.231.0.2"
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authorization"]["mode"] == "Webhook"
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupRoot"] == f"/{node.cgroup_root}"
    assert config["failCgroupV1"] is False
    assert config["containerRuntimeEndpoint"] == f"unix://{node.socket}"
    assert "featureGates" not in config, "the kubelet's defaults unless an experiment asks"


def test_an_experiment_may_set_kubelet_feature_gates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KUBELET_GATES_ENV, "EventedPLEG=true, Other=False")
    serving = certs.NodeCerts(tmp_path / "c", tmp_path / "k", tmp_path / "s.crt", tmp_path / "s.key")
    config = yaml.safe_load(_node(tmp_path)._kubelet_config(tmp_path / "ca.crt", serving))
    assert config["featureGates"] == {"EventedPLEG": True, "Other": False}
    with pytest.raises(ClusterError, match="'EventedPLEG' is not NAME=true"):
        kubelet_feature_gates("EventedPLEG")


def test_node_certificates_carry_the_node_identity_and_address(tmp_path: Path) -> None:
    from cryptography import x509

    cluster = certs.generate(tmp_path / "pki")
    node = certs.issue_node(cluster, tmp_path / "node", name="aiso-node-1", address="10.231.0.1")
    client = x509.load_pem_x509_certificate(node.client_cert.read_bytes())
    assert client.subject.rfc4514_string() == "O=system:nodes,CN=system:node:aiso-node-1"
    serving = x509.load_pem_x509_certificate(node.serving_cert.read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.231.0.1"]


@pytest.fixture
def fake_mount(tmp_path: Path) -> Path:
    """A mount(8) on PATH that only records its arguments."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    script = bin_dir / "mount"
    script.write_text('#!/bin/sh\necho "$@"\n')
    script.chmod(0o755)
    return bin_dir


def _mounter(args: list[str], *, fake_bin: Path, exports: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "AISO_NFS_EXPORTS": str(exports)}
    return subprocess.run([str(NFS_MOUNTER), *args], env=env, capture_output=True, text=True, check=False, timeout=10)


def test_mounter_binds_the_export_directory_for_nfs(tmp_path: Path, fake_mount: Path) -> None:
    exports = tmp_path / "exports"
    export_dir(exports, "/exports/training-data").mkdir(parents=True)
    done = _mounter(
        ["mount", "-t", "nfs", "-o", "vers=4", "127.0.0.1:/exports/training-data", "/mnt/target"],
        fake_bin=fake_mount,
        exports=exports,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["--bind", str(exports / "exports/training-data"), "/mnt/target"]


def test_mounter_refuses_an_export_that_does_not_exist(tmp_path: Path, fake_mount: Path) -> None:
    done = _mounter(["mount", "-t", "nfs", "127.0.0.1:/nowhere", "/mnt/t"], fake_bin=fake_mount, exports=tmp_path)
    assert done.returncode == 32
    assert "127.0.0.1:/nowhere does not exist" in done.stderr


def test_mounter_passes_other_file_systems_to_mount_unchanged(tmp_path: Path, fake_mount: Path) -> None:
    args = ["-t", "tmpfs", "-o", "size=1m", "tmpfs", "/mnt/t"]
    done = _mounter(["mount", *args], fake_bin=fake_mount, exports=tmp_path)
    assert done.returncode == 0
    assert done.stdout.split() == args


@pytest.mark.skipif(
    os.geteuid() != 0 or not (CGROUP_V1 / "memory").is_dir(), reason="needs root and a cgroup v1 layout"
)
def test_remove_cgroup_kills_what_runs_inside_and_removes_it_everywhere() -> None:
    name = f"aiso-unit-{os.getpid()}"
    make_cgroup(name)
    try:
        assert name in leftover_cgroups("aiso-unit-")
        enter = "".join(f'echo $$ > "{h / name}/cgroup.procs"; ' for h in cgroup_hierarchies())
        # The child leaves its parent's process group, as containerd's shims do; only the cgroup holds it.
        child = subprocess.Popen(["sh", "-c", f"{enter} exec sleep 300"], start_new_session=True)
        deadline = time.monotonic() + 10
        while str(child.pid) not in (CGROUP_V1 / "memory" / name / "cgroup.procs").read_text().split():
            assert time.monotonic() < deadline, "the child never entered the cgroup"
            time.sleep(0.01)  # the shell writes its pid before it execs
    finally:
        remove_cgroup(name)
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert name not in leftover_cgroups("aiso-unit-")
    assert not any((h / name).exists() for h in cgroup_hierarchies())


SAVED_WITH_KUBELET_CHAINS = """# Generated by iptables-save v1.8.9 (nf_tables) on Sun Nov 29 11:45:18 2026
*mangle
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [12:720]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*filter
:INPUT ACCEPT [5:300]
:OUTPUT ACCEPT [0:0]
-A INPUT -j KUBE-FIREWALL
COMMIT
*nat
:PREROUTING ACCEPT [7:1]
:OUTPUT ACCEPT [0:0]
COMMIT
"""


def test_iptables_snapshots_ignore_counters_comments_and_empty_tables() -> None:
    assert normalize(SAVED_WITH_KUBELET_CHAINS) == "\n".join(
        [
            "*mangle",
            ":PREROUTING ACCEPT",
            ":OUTPUT ACCEPT",
            ":KUBE-KUBELET-CANARY -",
            "COMMIT",
            "*filter",
            ":INPUT ACCEPT",
            ":OUTPUT ACCEPT",
            "-A INPUT -j KUBE-FIREWALL",
            "COMMIT",
        ]
    )
    emptied = "*filter\n:INPUT ACCEPT [9:9]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"
    assert normalize(emptied) == normalize("") == ""
    assert normalize("*filter\n:FORWARD DROP [0:0]\nCOMMIT\n") != ""  # a changed policy is something
