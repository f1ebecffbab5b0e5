"""The console text follows the specification's output block for block: a whole comparison run against a fake cluster,
exec and orchestrator, checked line by line with ``spec_blocks_missing``; the checker's refusals; the pieces."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest

from ai_storage_orchestrator.compare import report
from ai_storage_orchestrator.compare import workload as wl
from ai_storage_orchestrator.compare.measuring import MIB, CounterRead, Interval, NotRunning, SamplingLog, Snapshot
from ai_storage_orchestrator.compare.options import Options
from ai_storage_orchestrator.compare.results import EXIT_PASS, MEASURED, Comparison
from ai_storage_orchestrator.compare.scenario import Scenario
from ai_storage_orchestrator.compare.spec_output import (
    ContainerMemory,
    MigrationStatusLines,
    container_line,
    container_memory,
    spec_blocks_missing,
)
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.exec import ExecStatus
from ai_storage_orchestrator.kube.resources import NODES, PODS, PVCS, Resource

pytestmark = pytest.mark.unit

JSON = dict[str, Any]
S = 1_000_000_000
T0 = 1_700_000_000 * S
# Millicores per container and sample: each container's rate varies a little from sample to sample.
RATES = {"tensorflow-trainer": 700, "data-processor": 240, "model-monitor": 50}
MEMORY = {"tensorflow-trainer": 650 * MIB, "data-processor": 35 * MIB, "model-monitor": 4 * MIB}


# A fake cluster: pods become Ready when first listed; data-processor completes when the pod is listed again. -------
class FakeKube:
    def __init__(self, *, simulated: bool = False) -> None:
        self.simulated = simulated
        self.objects: dict[tuple[str, str], JSON] = {}
        self.lists: dict[str, int] = {}
        self.version = 0

    def _key(self, resource: Resource, name: str) -> tuple[str, str]:
        return resource.plural, name

    def _stamp(self, obj: JSON) -> JSON:
        self.version += 1
        metadata = obj.setdefault("metadata", {})
        metadata["resourceVersion"] = str(self.version)
        metadata.setdefault("uid", f"uid-{metadata.get('name')}-{self.version}")
        return obj

    async def get_path(self, path: str) -> JSON:
        assert path == "/version"
        return {"gitVersion": "v1.30.2"}

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> JSON:
        found = self.objects.get(self._key(resource, name))
        if found is None:
            raise KubeApiError(404, "NotFound", f"{resource.plural} {name} not found")
        return copy.deepcopy(found)

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> tuple[list[JSON], str]:
        if resource == NODES:
            return [_node("node-a", self.simulated), _node("node-b", self.simulated)], str(self.version)
        if label_selector:
            return [], str(self.version)
        assert field_selector is not None
        name = field_selector.removeprefix("metadata.name=")
        if resource.plural == "serviceaccounts":
            return [{"metadata": {"name": name}}], str(self.version)
        obj = self.objects.get(self._key(resource, name))
        if obj is not None and resource == PODS:
            self.lists[name] = self.lists.get(name, 0) + 1
            if self.lists[name] >= 2:  # data-processor has done its work
                _set_state(obj, wl.COMPLETING_CONTAINER, {"terminated": {"exitCode": 0, "reason": "Completed"}})
        return ([copy.deepcopy(obj)] if obj is not None else []), str(self.version)

    async def watch(self, resource: Resource, **kwargs: Any) -> AsyncIterator[Any]:
        return
        yield  # an empty stream: wait_for lists again

    async def create(self, resource: Resource, body: JSON, *, namespace: str | None = None) -> JSON:
        obj = self._stamp(copy.deepcopy(body))
        name = obj["metadata"]["name"]
        if resource == PODS:
            _start(obj)
            self.lists.pop(name, None)
        if resource == PVCS:
            obj["status"] = {"phase": "Bound"}
        self.objects[self._key(resource, name)] = obj
        return copy.deepcopy(obj)

    async def apply(self, resource: Resource, obj: JSON, *, field_manager: str, dry_run: bool = False) -> JSON:
        return await self.create(resource, obj)

    async def delete(self, resource: Resource, name: str, *, namespace: str | None = None, **kwargs: Any) -> JSON:
        if self.objects.pop(self._key(resource, name), None) is None:
            raise KubeApiError(404, "NotFound", f"{resource.plural} {name} not found")
        return {}


def _node(name: str, simulated: bool) -> JSON:
    return {
        "metadata": {"name": name, "labels": {"type": "kwok"} if simulated else {}},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {
                "kubeletVersion": "v1.30.2",
                "containerRuntimeVersion": "containerd://1.7.20",
                "kernelVersion": "6.1.0",
                "osImage": "Debian GNU/Linux 12",
            },
        },
    }


def _start(pod: JSON) -> None:
    names = [c["name"] for c in pod["spec"]["containers"]]
    pod["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": n, "state": {"running": {}}, "started": True, "restartCount": 0} for n in names],
    }


def _set_state(pod: JSON, container: str, state: JSON) -> None:
    for status in pod["status"]["containerStatuses"]:
        if status["name"] == container:
            status["state"] = state


class FakeExec:
    """The cgroup read of a container: one second of the node's clock per read, the container's rate varied per read."""

    def __init__(self) -> None:
        self.reads: dict[tuple[str, str], int] = {}
        self.used: dict[tuple[str, str], int] = {}

    def session(self, *, namespace: str, pod: str, container: str, argv: Sequence[str], stdin: bool = False) -> Any:
        key = (pod, container)
        n = self.reads.get(key, 0)
        self.reads[key] = n + 1
        rate = RATES[container] + (n * 37) % 60 - 30  # millicores: ±30 around the container's rate
        self.used[key] = self.used.get(key, 0) + rate * 1000  # µs of CPU over one second
        output = (
            f"cgroup v2\nusage_usec {self.used[key]}\ntimestamp_ns {T0 + n * S}\n"
            f"memory.current {MEMORY[container] + n * 1024}\n"
        ).encode()

        class Session:
            status: ExecStatus | None = None

            async def output(self) -> AsyncIterator[tuple[int, bytes]]:
                yield 1, output
                self.status = ExecStatus(0)

        @asynccontextmanager
        async def context() -> AsyncIterator[Session]:
            yield Session()

        return context()


class FakeOrchestrator:
    """Answers the POST by moving the pod (data-processor left out) and reports the phases it went through."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube

    async def ready(self) -> tuple[bool, str]:
        return True, "ok"

    async def version(self) -> str | None:
        return "0.1.0"

    async def create(self, body: JSON) -> JSON:
        old = await self.kube.get(PODS, body["pod_name"])
        new = copy.deepcopy(old)
        new["metadata"] = {"name": f"{body['pod_name']}-migrated-abc12345", "labels": old["metadata"]["labels"]}
        new["spec"]["nodeName"] = body["target_node"]
        new["spec"]["containers"] = [c for c in old["spec"]["containers"] if c["name"] != wl.COMPLETING_CONTAINER]
        await self.kube.create(PODS, new)
        await self.kube.delete(PODS, body["pod_name"])
        return {"migration_id": "abc12345abcd", "status": "pending", "phase": "Pending", "message": "queued"}

    async def wait(
        self, migration: JSON, *, timeout: float, on_change: Callable[[JSON], None] | None = None
    ) -> tuple[JSON, float]:
        final = {
            "migration_id": "abc12345abcd",
            "status": "completed",
            "phase": "Completed",
            "message": "target pod Ready",
            "new_pod_name": "tensorflow-ai-workload-migrated-abc12345",
            "containers": [
                {"name": "tensorflow-trainer", "action": "migrate", "reason": "running"},
                {"name": "data-processor", "action": "skip", "reason": "completed (exit 0)"},
                {"name": "model-monitor", "action": "migrate", "reason": "running"},
            ],
        }
        steps = [
            migration,
            {"status": "running", "phase": "Validating", "message": "validating"},
            {"status": "running", "phase": "Checkpointing", "message": "saving"},
            final,
        ]
        for step in steps:
            if on_change is not None:
                on_change(step)
        return final, time.monotonic()


async def _run(*, simulated: bool = False, **options: Any) -> tuple[str, Comparison]:
    """A whole comparison as the CLI prints it: the scenario, the summary, then clean-up."""
    lines: list[str] = []
    kube = FakeKube(simulated=simulated)
    settings = {"namespace": "ml", "workload": "numpy", "nfs_server": "127.0.0.1", "interval": 0.001, "timeout": 300}
    scenario = Scenario(
        Options(**{**settings, **options}),
        kube=kube,  # type: ignore[arg-type]
        execs=FakeExec(),  # type: ignore[arg-type]
        api=FakeOrchestrator(kube),  # type: ignore[arg-type]
        say=lines.append,
    )
    comparison = await scenario.run()
    allow = bool(options.get("allow_unmeasured"))
    lines += report.console_lines(comparison, threshold=20, allow_unmeasured=allow)
    await scenario.clean_up()
    return "\n".join(lines) + "\n", comparison


async def test_a_whole_run_prints_every_line_of_the_specification_in_order() -> None:
    text, comparison = await _run()
    assert comparison.error is None, text
    assert spec_blocks_missing(text) == [], text
    lines = text.splitlines()
    assert lines[1] == "     AI Container Migration Performance Comparison Tool"
    assert lines[3].startswith("Test ID: AI-MIGRATION-")
    # The quick pre-migration probe: 3 real samples and their minimum.
    probe = lines.index("# Pod tensorflow-ai-workload: measuring 3 containers (3 samples)")
    samples = [int(line.split(": ")[1].rstrip("m")) for line in lines[probe + 1 : probe + 4]]
    assert [line.split(":")[0] for line in lines[probe + 1 : probe + 4]] == ["# Sample 1", "# Sample 2", "# Sample 3"]
    assert lines[probe + 4] == f"# Minimum CPU usage (of 3 samples): {min(samples)}m"
    assert "# Container data-processor: 0MB (completed)" in lines[probe + 5 : probe + 12]
    # After the native move: the 20 samples of the window, their trimmed mean, data-processor restarted.
    post = lines.index("# Post-migration measurement (all 3 containers restarted)")
    window = [line for line in lines[post:] if line.startswith("# Sample ")][:20]
    assert [line.split(":")[0] for line in window] == [f"# Sample {n}" for n in range(1, 21)]
    assert comparison.native is not None
    assert comparison.native.measurement.status == MEASURED
    cpu = comparison.native.measurement.cpu_millicores
    assert cpu is not None
    assert f"# Trimmed mean CPU usage (of 20 samples, 3 highest and 3 lowest dropped): {cpu:.0f}m" in lines[post:]
    restarted = next(line for line in lines[post:] if line.startswith("# Container data-processor"))
    assert restarted.endswith("MB (restarted!)")
    assert comparison.native.probe is not None
    assert comparison.native.probe.minimum_cpu_millicores == min(samples)
    # TEST 2: the status lines, the two containers measured, and the summary.
    assert "# [0s] Migration status: pending" in lines
    assert ".# [0s] Migration status: running" in lines
    assert ".# [0s] Migration status: completed" in lines
    assert "# Post-migration measurement (only 2 containers - completed container excluded)" in lines
    assert "• Target Achievement: COMPLETE" in lines
    assert comparison.verdict(threshold=20, allow_unmeasured=False).exit_code == EXIT_PASS
    document = comparison.to_json(threshold=20, allow_unmeasured=False)
    assert document["methods"]["native"]["pre_migration_probe"]["minimum_cpu_millicores"] == min(samples)
    assert document["methods"]["orchestrator"]["final_node"] == "node-a"
    markdown = report.markdown(comparison, threshold=20, allow_unmeasured=False)
    assert f"- pre-migration probe of `tensorflow-ai-workload` (3 samples): minimum CPU {min(samples):.1f}m" in markdown


async def test_the_checker_names_what_is_missing_or_out_of_order() -> None:
    text, _ = await _run()
    lines = text.splitlines()
    without = [line for line in lines if not line.startswith(("Deleting pod...", "✓ AI Migration"))]
    assert spec_blocks_missing("\n".join(without)) == [
        "missing: [TEST 1] Deleting pod...",
        "missing: [TEST 2] ✓ AI Migration: <s>s",
    ]
    # TEST 2 printed before TEST 1: every line of TEST 1 is then out of order.
    test1, test2 = (
        lines.index("TEST 1: Kubernetes Native Migration"),
        lines.index("TEST 2: AI Orchestrator Migration (Optimized)"),
    )
    summary = lines.index("NODE MIGRATION:") - 3
    swapped = lines[:test1] + lines[test2:summary] + lines[test1:test2] + lines[summary:]
    problems = spec_blocks_missing("\n".join(swapped))
    assert "out of order: [TEST 2] TEST 2: AI Orchestrator Migration (Optimized)" in problems
    # The specification's rows must open the table: another row first is out of order.
    table = lines.index(next(line for line in lines if line.startswith("CPU Usage")))
    moved = [*lines[:table], lines[table + 3], *lines[table:]]
    assert spec_blocks_missing("\n".join(moved)) == [
        "out of order: [summary] CPU Usage │ <cpu>m │ <cpu>m │ <n.n>% (first row)",
        "out of order: [summary] Memory Usage │ <mb>MB │ <mb>MB │ <n.n>% (second row)",
    ]
    nothing = spec_blocks_missing("")
    assert nothing[:2] == [
        "missing: [header] =====",
        "missing: [header] AI Container Migration Performance Comparison Tool",
    ]
    assert all(problem.startswith("missing: ") for problem in nothing)


# The specification's own example (seed, lines 203-330: its console output without the Korean headings).
SPEC_EXAMPLE = """\
=================================================================
     AI Container Migration Performance Comparison Tool
=================================================================
Test ID: AI-MIGRATION-20251112XXXXXX
Date: 2025-11-12 XX:XX:XX
=================================================================

• Setting up test environment...
• Deploying TensorFlow AI workload...
Waiting for Pod tensorflow-ai-workload to be ready (timeout: 300s)...
pod/tensorflow-ai-workload condition met
✓ Pod tensorflow-ai-workload is ready
TEST 1: Kubernetes Native Migration
Original Pod location: gpu-server-03
K8s Native Target: gpu-server-03 → ai-storage-master

# Pod tensorflow-ai-workload: measuring 3 containers (3 samples)
# Sample 1: 2350m
# Sample 2: 2180m
# Sample 3: 2250m
# Minimum CPU usage (of 3 samples): 2180m

# Pod tensorflow-ai-workload: measuring 3 containers
# Container tensorflow-trainer: 650MB
# Container data-processor: 0MB (completed)
# Container model-monitor: 4MB
# Total Memory usage: 654MB

Pre-migration: CPU 2180m, Memory 654MB
Deleting pod...
Recreating pod on target node: ai-storage-master
Waiting for Pod tensorflow-ai-workload to be ready (timeout: 300s)...
pod/tensorflow-ai-workload condition met
✓ Pod tensorflow-ai-workload is ready

# Post-migration measurement (all 3 containers restarted)
# Pod tensorflow-ai-workload: measuring 3 containers (3 samples)
# Sample 1: 2650m
# Sample 2: 2500m
# Sample 3: 2580m
# Minimum CPU usage (of 3 samples): 2500m

# Pod tensorflow-ai-workload: measuring 3 containers
# Container tensorflow-trainer: 950MB
# Container data-processor: 35MB (restarted!)
# Container model-monitor: 4MB
# Total Memory usage: 989MB

✓ K8s Migration: 8.12s
Post-migration: CPU 2500m, Memory 989MB
Final Pod location: ai-storage-master
TEST 2: AI Orchestrator Migration (Optimized)
Using pod: tensorflow-ai-workload

# Pre-migration measurement
# Pod tensorflow-ai-workload: measuring 3 containers (3 samples)
# Sample 1: 2650m
# Sample 2: 2450m
# Sample 3: 2580m
# Minimum CPU usage (of 3 samples): 2450m

Pre-migration: CPU 2450m, Memory 980MB

AI Orchestrator Migration: ai-storage-master -> gpu-server-03 (back to original for comparison)
Starting AI migration...
# [0s] Migration status: running
.# [3s] Migration status: running
.# [33s] Migration status: completed
✓ Migration completed!

# Post-migration measurement (only 2 containers - completed container excluded)
Measuring post-migration metrics for pod: tensorflow-ai-workload-migrated-1762943063

# Pod tensorflow-ai-workload-migrated-1762943063: measuring 2 containers (3 samples)
# Sample 1: 1850m
# Sample 2: 1800m
# Sample 3: 1920m
# Minimum CPU usage (of 3 samples): 1800m

# Pod tensorflow-ai-workload-migrated-1762943063: measuring 2 containers
# Container tensorflow-trainer: 705MB
# Container model-monitor: 5MB
# Total Memory usage: 710MB

✓ AI Migration: 33.42s
Post-migration: CPU 1800m, Memory 710MB
Final Pod location: gpu-server-03
=================================================================
                  PERFORMANCE COMPARISON SUMMARY
=================================================================
NODE MIGRATION:
• Original Location: gpu-server-03
• K8s Native Result: ai-storage-master
• AI Orchestrator Result: gpu-server-03
• Target Achievement: COMPLETE

METRIC                    │   K8S NATIVE │ AI ORCHESTRATOR │  IMPROVEMENT
─────────────────────────┼──────────────┼─────────────────┼─────────────
CPU Usage                 │      2500m │         1800m │      28.0%
Memory Usage              │       989MB │          710MB │      28.2%

RESULT: AI Orchestrator achieved 28.0% CPU reduction and 28.2% memory reduction

• Cleaning up...
"""


def test_the_specifications_own_example_differs_only_where_the_issue_asks_it_to() -> None:
    # Its placeholder time stamps are no time stamps, and after each migration it shows the minimum of 3 samples
    # where we show the trimmed mean of the 20 samples of the window.
    assert spec_blocks_missing(SPEC_EXAMPLE) == [
        "missing: [header] Test ID: AI-MIGRATION-<timestamp>",
        "missing: [header] Date: YYYY-MM-DD HH:MM:SS",
        "missing: [TEST 1 post] # Trimmed mean CPU usage (of N samples, T highest and T lowest dropped): <cpu>m",
        "missing: [TEST 2 post] # Trimmed mean CPU usage (of N samples, T highest and T lowest dropped): <cpu>m",
    ]
    real = SPEC_EXAMPLE.replace("20251112XXXXXX", "20251112093000").replace("XX:XX:XX", "09:30:00")
    for pod in ("tensorflow-ai-workload", "tensorflow-ai-workload-migrated-1762943063"):
        real = real.replace(
            f"# Pod {pod}: measuring 3 containers (3 samples)\n# Sample 1: 2650m\n# Sample 2: 2500m\n"
            "# Sample 3: 2580m\n# Minimum CPU usage (of 3 samples): 2500m",
            "# Pod tensorflow-ai-workload: measuring 3 containers (20 samples)\n# Sample 1: 2650m\n# Sample 2: 2500m\n"
            "# Sample 3: 2580m\n# Trimmed mean CPU usage (of 20 samples, 3 highest and 3 lowest dropped): 2500m",
        )
    real = real.replace(
        "# Minimum CPU usage (of 3 samples): 1800m",
        "# Trimmed mean CPU usage (of 20 samples, 3 highest and 3 lowest dropped): 1800m",
    )
    assert spec_blocks_missing(real) == []


async def test_simulated_nodes_print_every_block_with_not_measured_instead_of_figures() -> None:
    text, comparison = await _run(simulated=True, workload="simulated", allow_unmeasured=True)
    assert comparison.error is None, text
    assert "# Samples: not measured: simulated node (no cgroups)" in text
    assert "# Minimum CPU usage (of 3 samples): not measured: simulated node (no cgroups)" in text
    assert "# Container data-processor: not measured" in text
    assert "Pre-migration: CPU not measured, Memory not measured" in text
    assert "Post-migration: CPU not measured, Memory not measured" in text
    assert "# Sample 1:" not in text  # no number where nothing was measured
    assert spec_blocks_missing(text) == [
        "missing: [summary] RESULT: AI Orchestrator achieved X% CPU reduction and Y% memory reduction"
    ]


# The pieces ----------------------------------------------------------------------------------------------------------
def _snapshot(index: int, reads: dict[str, Any]) -> Snapshot:
    return Snapshot(index, 1000.0 + index, reads)


def test_container_memory_is_the_trimmed_mean_of_the_valid_samples() -> None:
    reads = [
        {"a": CounterRead(T0 + i * S, i, (100 + i) * MIB, "cgroup v2"), "b": NotRunning("terminated (exit 0, Done)")}
        for i in range(6)
    ]
    log = SamplingLog(
        snapshots=[_snapshot(i, r) for i, r in enumerate(reads)],
        intervals=[Interval(i, i + 1, 0.0, 1.0, 1.0, 1.0, 0.001, 0) for i in range(5)],
    )
    found = container_memory(log, ["a", "b", "c"], samples=5, trim=1)
    assert found["a"] == ContainerMemory(cast(float, pytest.approx(103.0)), 5, 0, None)  # 101..105 without 101 and 105
    assert found["b"] == ContainerMemory(0.0, 5, 5, "terminated (exit 0, Done)")
    assert found["c"].mib is None  # no read of it at all: not measured, not 0
    assert container_line("a", found["a"], restarted=True) == "# Container a: 103MB (restarted!)"
    assert container_line("b", found["b"], restarted=False) == "# Container b: 0MB (completed)"
    assert container_line("c", found["c"], restarted=False) == "# Container c: not measured"
    assert container_line("d", None, restarted=False) == "# Container d: not measured"


def test_status_lines_on_each_change_and_every_three_seconds_while_it_stays() -> None:
    printed: list[str] = []
    lines = MigrationStatusLines(printed.append)
    lines.tick(0.5)  # nothing observed yet
    lines.observe("running", 0.2)
    lines.observe("running", 1.0)
    lines.tick(2.9)
    lines.tick(3.3)
    assert lines.due_in(4.0) == pytest.approx(2.3)
    lines.tick(6.4)
    lines.observe("completed", 7.1)
    assert printed == [
        "# [0s] Migration status: running",
        ".# [3s] Migration status: running",
        ".# [6s] Migration status: running",
        ".# [7s] Migration status: completed",
    ]
