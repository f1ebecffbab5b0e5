"""The certification procedure as the auditor types it, on the real-node tier (`make e2e`).

On the control-plane node of the specification, from the repository: `./scripts/build.sh`, `./scripts/deploy.sh`,
`./scripts/ai_migration_compare.sh` — the last with no arguments. Here the same three scripts run, unchanged, in a
shell whose kubectl and kubeconfig point at the tier; what a real cluster has and the tier does not is provided
beforehand, as a cluster administrator would have it, and said here:

* the image: build.sh writes an OCI archive (no container engine on this machine); it is imported into both nodes'
  containerd, as `kind load` or a registry would deliver it;
* the pod network: the tier has no kube-proxy and its API server listens on 127.0.0.1 only, so the orchestrator's
  pods use the node's network (hostNetwork, listening on the node's host-only address) and reach the API server on
  127.0.0.1 — an overlay of k8s/ written into the work directory, applied with `deploy.sh --kustomize`;
  Service cluster IPs are made unreachable on this machine (an `unreachable` route), so a client that tries one fails
  at once instead of sending it off the machine;
* the shared storage: an `nfs` PersistentVolume of storage class `nfs` (k8s/nfs with the tier's stand-in server),
  Available for the comparison's claim.

Everything the scripts print goes to the console and to `console.log` in the output directory."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from ai_storage_orchestrator.compare.measuring import iso_time
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import KubeApi, Resource
from tests.cluster import runtime_timing
from tests.cluster.demo import say
from tests.cluster.local_cluster import LocalCluster
from tests.cluster.real_nodes import NFS_SERVER_STAND_IN, RealNodeTier, node_binaries
from tests.cluster.task_events import TaskEvent, TaskEventRecorder

ROOT = Path(__file__).resolve().parents[2]
SERVICE_NETWORK = "10.96.0.0/16"  # --service-cluster-ip-range of tests/cluster/local_cluster.py
NFS_PATH = "/exports/training-data"
PERSISTENT_VOLUMES = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)


def version() -> str:
    for line in (ROOT / "setup.cfg").read_text().splitlines():
        if line.startswith("version = "):
            return line.split("=", 1)[1].strip()
    raise RuntimeError("no version in setup.cfg")


def kubectl_dir() -> Path:
    """Where tools/nodes/build.sh put kubectl."""
    directory = node_binaries()
    if not (directory / "kubectl").is_file():
        raise RuntimeError(f"no kubectl in {directory}: run tools/nodes/build.sh")
    return directory


def auditor_env(cluster: LocalCluster) -> dict[str, str]:
    """The auditor's shell: kubectl and the orchestrator's CLI on PATH, the tier's kubeconfig."""
    path = [str(kubectl_dir()), str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]
    return {**os.environ, "PATH": os.pathsep.join(path), "KUBECONFIG": str(cluster.kubeconfig)}


def tier_overlay(directory: Path, api_port: int) -> Path:
    """k8s/ with the orchestrator on the nodes' network (see the module's docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    patch = [
        {"op": "add", "path": "/spec/template/spec/hostNetwork", "value": True},
        {"op": "add", "path": "/spec/template/spec/dnsPolicy", "value": "ClusterFirstWithHostNet"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/args/1", "value": "--host=$(HOST_IP)"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/imagePullPolicy", "value": "Never"},
        *(
            {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": variable}
            for variable in (
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                {"name": "KUBERNETES_SERVICE_PORT", "value": str(api_port)},
            )
        ),
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "k8s", directory)],
        "patches": [{"target": {"kind": "Deployment", "name": "ai-storage-orchestrator"}, "patch": json.dumps(patch)}],
    }
    (directory / "kustomization.yaml").write_text(json.dumps(kustomization, indent=2) + "\n")
    return directory


def nfs_volume() -> dict[str, Any]:
    """k8s/nfs's PersistentVolume with the tier's stand-in server: what the cluster's administrator provides."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "training-data-nfs"},
        "spec": {
            "capacity": {"storage": "50Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "nfs",
            "nfs": {"server": NFS_SERVER_STAND_IN, "path": NFS_PATH},
        },
    }


class UnreachableServiceNetwork:
    """An `unreachable` route for the Service network while the tier runs (see the module's docstring)."""

    def __enter__(self) -> UnreachableServiceNetwork:
        subprocess.run(["ip", "route", "replace", "unreachable", SERVICE_NETWORK], check=True)
        return self

    def __exit__(self, *_: object) -> None:
        subprocess.run(["ip", "route", "del", "unreachable", SERVICE_NETWORK], check=False, capture_output=True)

    @staticmethod
    def left() -> bool:
        routes = subprocess.run(["ip", "route", "show", SERVICE_NETWORK], capture_output=True, text=True, check=False)
        return "unreachable" in routes.stdout


async def typed(command: str, *, env: Mapping[str, str], console: TextIO) -> int:
    """`command` as typed at the auditor's prompt in the repository: printed, run, its output to both places."""
    prompt = f"[root@aiso-tier ai-storage-orchestrator]# {command}"
    say(prompt)
    console.write(prompt + "\n")
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", command, cwd=ROOT, env=dict(env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode(errors="replace")
        sys.stdout.write(line)
        sys.stdout.flush()
        console.write(line)
        console.flush()
    code = await process.wait()
    say()
    console.write("\n")
    return code


async def provide_shared_volume(cluster: LocalCluster) -> None:
    api = await create_api_client(str(cluster.kubeconfig))
    try:
        try:
            await KubeApi(api).create(PERSISTENT_VOLUMES, nfs_volume())
        except KubeApiError as error:
            if not error.already_exists:
                raise
    finally:
        await api.close()


def _prepare(cluster: LocalCluster, workdir: Path, output: Path) -> tuple[dict[str, str], str]:
    """The auditor's environment and the deploy command with the tier's overlay."""
    output.mkdir(parents=True, exist_ok=True)
    overlay = tier_overlay(workdir / "tier-overlay", api_port=int(cluster.server.rsplit(":", 1)[1]))
    return auditor_env(cluster), f"./scripts/deploy.sh --kustomize {overlay}"


async def certify(cluster: LocalCluster, tier: RealNodeTier, workdir: Path, output: Path) -> int:
    """build.sh, deploy.sh, a bare ai_migration_compare.sh; the comparison's exit code (2 if a step before fails).
    The console log and the comparison's report go to `output`."""
    env, deploy = await asyncio.to_thread(_prepare, cluster, workdir, output)
    await provide_shared_volume(cluster)
    say(f"Tier set-up: PersistentVolume training-data-nfs (nfs {NFS_SERVER_STAND_IN}:{NFS_PATH}, storage class nfs)")
    reports = ROOT / "compare-results"
    before = set(reports.iterdir()) if reports.is_dir() else set()
    with (output / "console.log").open("w") as console:
        if code := await typed("./scripts/build.sh", env=env, console=console):
            return 2
        archive = ROOT / "dist" / f"ai-storage-orchestrator-{version()}.oci.tar"
        await asyncio.to_thread(tier.import_image, archive)
        say(f"Tier set-up: {archive.name} imported into the containerd of {', '.join(tier.node_names)}\n")
        if code := await typed(deploy, env=env, console=console):
            return 2
        extra = os.environ.get("E2E_COMPARE_ARGS", "").strip()  # `make e2e-timing`: the same run, more pairs timed
        recorders = [TaskEventRecorder(n.name, n.ctr_command) for n in tier.nodes] if "--timing-pairs" in extra else []
        for recorder in recorders:
            recorder.start()
        try:
            code = await typed(f"./scripts/ai_migration_compare.sh {extra}".strip(), env=env, console=console)
        finally:
            events = [event for recorder in recorders for event in await asyncio.to_thread(recorder.stop)]
    made = sorted(set(reports.iterdir()) - before) if reports.is_dir() else []
    for report in made:
        for item in report.iterdir():
            shutil.move(str(item), output / item.name)
        report.rmdir()
    if recorders:
        write_runtime_timing(output, events, unlabelled=sum(r.unlabelled for r in recorders))
    return code


def write_runtime_timing(output: Path, events: list[TaskEvent], *, unlabelled: int) -> None:
    """The timed migrations again from containerd's stamps: printed, and runtime-timing.json beside report.json."""
    try:
        report = json.loads((output / "report.json").read_text())
    except (OSError, ValueError) as error:
        say(f"\nRUNTIME TIMING: not measured (no report.json to read the timed migrations from: {error})")
        return
    moves = runtime_timing.timed_moves(report)
    figures = runtime_timing.move_figures(moves, events)
    block = runtime_timing.lines(figures)
    if unlabelled:
        block.append(f"# {unlabelled} task event(s) left out: their container was gone before its labels were read")
    say("\n" + "\n".join(block))
    since = min((m.requested_ns for m in moves if m.requested_ns is not None), default=0)
    document = {
        **runtime_timing.to_json(figures),
        "events_unlabelled": unlabelled,
        "events_since": iso_time(since / 1e9),
        "events": [runtime_timing.event_json(e, since) for e in sorted(events, key=lambda e: e.at_ns)],
    }
    (output / "runtime-timing.json").write_text(json.dumps(document, indent=2) + "\n")
