"""`ai-storage-orchestrator compare` against the local control plane and the orchestrator running as its own process:
the whole certification flow on simulated nodes. CPU and memory cannot be measured there (no cgroups) and say so;
everything else in the report is real."""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes_asyncio import client

from ai_storage_orchestrator.cli.compare import compare, configure
from ai_storage_orchestrator.compare.cluster import container_completed, wait_for
from ai_storage_orchestrator.compare.measuring import CounterRead, NotRunning
from ai_storage_orchestrator.compare.sampling import CgroupReader, SamplingPlan, sample
from ai_storage_orchestrator.compare.workload import simulated_pod
from ai_storage_orchestrator.kube.exec import KubeExec
from ai_storage_orchestrator.kube.resources import PODS, KubeApi
from tests.cluster.fixtures import ClusterHandle, _wait_default_service_account
from tests.cluster.orchestrator_process import OrchestratorProcess

NOT_MEASURED = "simulated node (no cgroups)"
EXEC_NAMESPACES = [f"aiso-exec-{n}" for n in range(16)]  # tests/cluster/kwok-exec.yaml


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(list(argv))


async def _simulated_nodes(core: client.CoreV1Api, cluster: ClusterHandle) -> tuple[str, str]:
    nodes = {n.metadata.name: n for n in (await core.list_node()).items}
    chosen = cluster.node_names[:2]
    if len(chosen) < 2 or any((nodes[name].metadata.labels or {}).get("type") != "kwok" for name in chosen):
        pytest.skip("needs two simulated (KWOK) nodes")
    return chosen[0], chosen[1]


async def test_compare_on_simulated_nodes_reports_what_is_real(
    cluster: ClusterHandle,
    core: client.CoreV1Api,
    namespace: str,
    crd_installed: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, target = await _simulated_nodes(core, cluster)
    orchestrator = OrchestratorProcess(tmp_path, kubeconfig=cluster.kubeconfig, namespace=namespace)
    await orchestrator.start()
    output = tmp_path / "report"
    try:
        code = await compare(
            _args(
                f"--kubeconfig={cluster.kubeconfig}",
                f"--orchestrator-url={orchestrator.url}",
                f"--namespace={namespace}",
                f"--source-node={source}",
                f"--target-node={target}",
                "--workload=simulated",
                "--simulated-complete-after=2s",
                "--allow-unmeasured",
                f"--output-dir={output}",
                "--timeout=60",
            )
        )
    finally:
        orchestrator.stop()
    printed = capsys.readouterr().out
    assert code == 0, printed

    document: dict[str, Any] = json.loads((output / "report.json").read_text())
    native, orchestrated = document["methods"]["native"], document["methods"]["orchestrator"]
    assert (native["from_node"], native["to_node"]) == (source, target)
    assert (orchestrated["from_node"], orchestrated["to_node"]) == (target, source)
    assert native["containers_started"] == 3
    assert orchestrated["containers_started"] == 2
    assert sorted(orchestrated["started_containers"]) == ["model-monitor", "tensorflow-trainer"]
    assert native["requests"] == {"cpu_millicores": 2200, "memory_bytes": 5 << 30, "memory_mib": 5120.0}
    assert orchestrated["requests"]["cpu_millicores"] == 1700
    assert document["comparison"]["cpu_requests_freed_millicores"] == 500
    assert document["comparison"]["memory_requests_freed_bytes"] == 1536 << 20
    assert native["migration_seconds"] > 0
    assert orchestrated["migration_seconds"] > 0
    decisions = {d["name"]: d["action"] for d in orchestrated["orchestrator_migration"]["containers"]}
    assert decisions == {"tensorflow-trainer": "migrate", "data-processor": "skip", "model-monitor": "migrate"}
    assert orchestrated["orchestrator_migration"]["status"] == "completed"
    for method in (native, orchestrated):
        measurement = method["measurement"]
        assert measurement["status"] == "not_measured"
        assert measurement["reason"] == NOT_MEASURED
        assert measurement["cpu_millicores"] is None
        assert measurement["memory_mib"] is None
        assert measurement["samples"] == []
        assert measurement["reads"] == []
    assert document["comparison"]["cpu_saving_percent"] is None
    assert document["nodes"]["source"]["simulated"] is True
    assert document["result"]["exit_code"] == 0
    assert document["result"]["line"].startswith(f"RESULT: CPU and memory not measured: {NOT_MEASURED}")

    markdown = (output / "report.md").read_text()
    assert f"| CPU Usage | not measured: {NOT_MEASURED} | not measured: {NOT_MEASURED} | n/a |" in markdown
    png = (output / "cpu-per-sample.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (560, 300)

    table = [line for line in printed.splitlines() if "│" in line]
    assert table[0].split("│")[0].strip() == "METRIC"
    assert any(line.startswith("Containers started") and line.split("│")[1:3] for line in table)
    assert "RESULT: CPU and memory not measured" in printed

    # Clean-up: the namespace was the test's, so it stays; what compare created is gone.
    pods = (await core.list_namespaced_pod(namespace)).items
    assert all(p.metadata.deletion_timestamp for p in pods), [p.metadata.name for p in pods]
    claims = (await core.list_namespaced_persistent_volume_claim(namespace)).items
    assert all(c.metadata.deletion_timestamp for c in claims)


async def test_simulated_nodes_without_allow_unmeasured_exit_2_before_changing_anything(
    cluster: ClusterHandle, core: client.CoreV1Api, namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = await _simulated_nodes(core, cluster)
    code = await compare(
        _args(
            f"--kubeconfig={cluster.kubeconfig}",
            "--orchestrator-url=http://127.0.0.1:9",  # never asked: the run stops before
            f"--namespace={namespace}",
            f"--source-node={source}",
            f"--target-node={target}",
            f"--output-dir={tmp_path / 'report'}",
        )
    )
    printed = capsys.readouterr().out
    assert code == 2
    assert "--allow-unmeasured" in printed
    assert "CPU and memory cannot be measured" in printed
    assert (await core.list_namespaced_pod(namespace)).items == []
    assert (await core.list_namespaced_persistent_volume_claim(namespace)).items == []
    document = json.loads((tmp_path / "report" / "report.json").read_text())
    assert document["result"]["exit_code"] == 2
    assert "simulated (KWOK)" in document["result"]["error"]


async def test_cgroup_reads_through_the_real_exec_transport(
    cluster: ClusterHandle, core: client.CoreV1Api, api: client.ApiClient
) -> None:
    """The reading path only (exec websocket, `sh -c`, parsing, one exec per container at once, completed containers
    left out). KWOK runs the command on THIS machine, so the counters are the host's: that is why `compare` never
    measures on simulated nodes, and why this test checks the plumbing, not the figures."""
    if cluster.local is None:
        pytest.skip("exec into simulated pods needs the local harness's KWOK exec config (kwok-exec.yaml)")
    existing = {ns.metadata.name for ns in (await core.list_namespace()).items}
    namespace = next((n for n in EXEC_NAMESPACES if n not in existing), None)
    assert namespace is not None, "the exec namespace pool of kwok-exec.yaml is used up"
    await core.create_namespace(
        cast(client.V1Namespace, {"metadata": {"name": namespace, "labels": {"ai-storage.io/test": "true"}}})
    )
    try:
        await _wait_default_service_account(core, namespace)
        pod = simulated_pod(node=cluster.node_names[0], complete_after="0s")
        pod["spec"]["volumes"] = []  # no claim needed to read counters
        for container in pod["spec"]["containers"]:
            container["volumeMounts"] = []
        await core.create_namespaced_pod(namespace, cast(client.V1Pod, pod))
        kube = KubeApi(api)
        reader = CgroupReader(
            kube, KubeExec(api), namespace=namespace, pod=pod["metadata"]["name"],
            containers=["tensorflow-trainer", "data-processor", "model-monitor"],
        )  # fmt: skip

        await wait_for(
            kube, PODS, name=pod["metadata"]["name"], namespace=namespace, timeout=30, what="data-processor done",
            condition=container_completed("data-processor"),
        )  # fmt: skip
        log = await sample(reader, SamplingPlan(samples=2, interval=0.2, max_reads=6))
    finally:
        await core.delete_namespace(namespace)

    assert log.valid_count == 2, [i.reason for i in log.intervals]
    first = log.snapshots[0].reads
    assert isinstance(first["tensorflow-trainer"], CounterRead)
    assert first["tensorflow-trainer"].origin in ("cgroup v1", "cgroup v2")
    assert isinstance(first["model-monitor"], CounterRead)
    assert first["data-processor"] == NotRunning("terminated (exit 0, Completed)")
    assert all(i.cpu_millicores is not None and i.cpu_millicores >= 0 for i in log.intervals)
