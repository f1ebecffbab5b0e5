"""Item 6: decision latency -- container analysis + the whole plan (target pod, node fit, volume safety, strategy) for
one pod from the in-memory model, timed with timeit. The model is filled by hand the way the watch streams fill it:
the certification pod as the API server and KWOK present it (data-processor completed), two simulated nodes, the
shared NFS volume and its claim."""

from __future__ import annotations

import cProfile
import functools
import statistics
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ai_storage_orchestrator.checkpoint import parse_checkpoint_annotations
from ai_storage_orchestrator.controller.planner import Planner
from ai_storage_orchestrator.controller.service import MigrationService
from ai_storage_orchestrator.kube.resources import KubeApi
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import MigrationRequest
from ai_storage_orchestrator.watchers.state import ClusterState
from tests.cluster.nodes import simulated_node
from tests.cluster.workloads import certification_pod, shared_volume

JSON = dict[str, Any]
NAMESPACE = "ml"
SOURCE, TARGET = "sim-node-0", "sim-node-1"
STAMP = "2025-01-01T00:00:00Z"


def _running(name: str) -> JSON:
    return {"name": name, "ready": True, "started": True, "restartCount": 0, "state": {"running": {"startedAt": STAMP}}}


def _completed(name: str) -> JSON:
    terminated = {"exitCode": 0, "reason": "Completed", "startedAt": STAMP, "finishedAt": STAMP}
    return {"name": name, "ready": False, "started": False, "restartCount": 0, "state": {"terminated": terminated}}


def _as_served(pod: JSON, *, index: int) -> JSON:
    pod["metadata"].update(
        namespace=NAMESPACE, uid=f"00000000-0000-4000-8000-{index:012d}", resourceVersion=str(1000 + index)
    )
    pod["metadata"]["creationTimestamp"] = STAMP
    pod["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
        "containerStatuses": [
            _completed(c["name"]) if c["name"] == "data-processor" else _running(c["name"])
            for c in pod["spec"]["containers"]
        ],
    }
    return pod


def _node(name: str) -> JSON:
    node = simulated_node(name)
    node["spec"] = {}
    node["status"] = {
        "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    return node


def _small_pod(index: int, node: str) -> JSON:
    pod = {
        "metadata": {"name": f"other-{index}", "labels": {"app": "other"}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry.local/other:1"}]},
    }
    served = _as_served(pod, index=index + 1)
    served["status"]["containerStatuses"] = [_running("main")]
    return served


def build_state(*, pods_on_target: int = 0) -> ClusterState:
    state = ClusterState()
    pod = _as_served(certification_pod(node=SOURCE), index=0)
    others = [_small_pod(i, TARGET) for i in range(pods_on_target)]
    state.pods.replace([pod, *others], "1")
    state.nodes.replace([_node(SOURCE), _node(TARGET)], "1")
    pv, pvc = shared_volume(NAMESPACE)
    pv["status"] = {"phase": "Bound"}
    pvc["status"] = {"phase": "Bound", "accessModes": ["ReadWriteMany"], "capacity": {"storage": "10Gi"}}
    state.claims.replace([pvc], "1")
    state.volumes.replace([pv], "1")
    state.migrations.replace([], "1")
    return state


def request() -> MigrationRequest:
    return MigrationRequest(
        pod_name="tensorflow-ai-workload",
        pod_namespace=NAMESPACE,
        source_node=SOURCE,
        target_node=TARGET,
        preserve_pv=True,
    )


def time_call(call: Callable[[], object], *, repeat: int) -> dict[str, float | int]:
    """Microseconds per call: the best and the median of `repeat` timeit batches (autoranged to ≥ 0.2 s each)."""
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    batches = [seconds / number * 1e6 for seconds in timer.repeat(repeat=repeat, number=number)]
    return {"calls_per_batch": number, "batches": repeat, "best_us": round(min(batches), 1),
            "median_us": round(statistics.median(batches), 1)}  # fmt: skip


def run_decision(*, quick: bool) -> dict[str, Any]:
    repeat = 3 if quick else 7
    results: dict[str, Any] = {}
    for label, crowd in (("plan", 0), ("plan_target_with_100_pods", 100)):
        state = build_state(pods_on_target=crowd)
        planner = Planner(state, declared=parse_checkpoint_annotations)
        plan, _ = planner.plan(request(), "bench0000000")
        results[label] = {
            **time_call(functools.partial(planner.plan, request(), "bench0000000"), repeat=repeat),
            "plan_ok": plan.ok,
            "strategy": plan.strategy.value,
            "actions": {d.name: d.action.value for d in plan.decisions},
        }
    state = build_state()
    service = MigrationService(
        api=KubeApi(None), state=state, metrics=Metrics(), planner=Planner(state, declared=parse_checkpoint_annotations)
    )
    results["dry_run_json"] = time_call(lambda: service.dry_run(request()), repeat=repeat)
    results["containers"] = [c["name"] for c in certification_pod(node=SOURCE)["spec"]["containers"]]
    return results


def profile_plan(path: Path, *, calls: int = 500) -> None:
    """cProfile of `calls` plans for the certification pod onto a node with 100 pods, written to `path`."""
    state = build_state(pods_on_target=100)
    planner = Planner(state, declared=parse_checkpoint_annotations)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        planner.plan(request(), "bench0000000")
    profiler.disable()
    profiler.dump_stats(str(path))
