"""The comparison's choice of workload variant for the nodes it found; the native move's re-creation."""

from __future__ import annotations

from typing import Any, cast

import pytest

from ai_storage_orchestrator.compare.cluster import SIMULATED_REASON, CompareError, pod_ready
from ai_storage_orchestrator.compare.options import Options
from ai_storage_orchestrator.compare.orchestrating import OrchestratorClient
from ai_storage_orchestrator.compare.sampling import PathApi
from ai_storage_orchestrator.compare.scenario import Scenario, choose_workload
from ai_storage_orchestrator.compare.workload import NUMPY_IMAGE
from ai_storage_orchestrator.kube.exec import KubeExec

pytestmark = pytest.mark.unit

JSON = dict[str, Any]


@pytest.mark.parametrize(
    ("requested", "simulated", "chosen"),
    [
        ("auto", True, "simulated"),
        ("auto", False, "tensorflow"),
        ("simulated", True, "simulated"),
        ("tensorflow", False, "tensorflow"),
        ("numpy", False, "numpy"),
    ],
)
def test_a_variant_that_runs_on_the_nodes_is_chosen(requested: str, simulated: bool, chosen: str) -> None:
    assert choose_workload(requested, simulated=simulated)[0] == chosen


def test_auto_on_real_nodes_takes_the_image_both_nodes_have_and_says_so() -> None:
    images = [frozenset({NUMPY_IMAGE}), frozenset({NUMPY_IMAGE, "pause:3.10"})]
    workload, why = choose_workload("auto", simulated=False, node_images=images)
    assert workload == "numpy"
    assert why == f"{NUMPY_IMAGE} is on both nodes, CPU requests x1/2 to fit 2-core nodes (--workload overrides)"
    assert choose_workload("tensorflow", simulated=False, node_images=images) == ("tensorflow", "--workload")


@pytest.mark.parametrize("requested", ["tensorflow", "numpy"])
def test_real_variants_need_real_nodes(requested: str) -> None:
    with pytest.raises(CompareError, match=f"--workload {requested} needs real nodes"):
        choose_workload(requested, simulated=True)


def test_the_simulated_variant_needs_simulated_nodes() -> None:
    with pytest.raises(CompareError, match="use --workload tensorflow, numpy or tensorflow-local"):
        choose_workload("simulated", simulated=False)


def test_an_unknown_variant_is_an_error_not_a_crash() -> None:
    with pytest.raises(CompareError, match="one of simulated, tensorflow, numpy, tensorflow-local, not 'keras'"):
        choose_workload("keras", simulated=False)


class _VanishingPods:
    """Pods as KWOK leaves them: the first ``vanish`` pods created under a name are gone at once, then one is Ready."""

    def __init__(self, vanish: int) -> None:
        self.vanish = vanish
        self.created = 0

    async def create(self, resource: object, body: JSON, *, namespace: str | None = None) -> JSON:
        self.created += 1
        return body

    async def list(self, resource: object, **_: object) -> tuple[list[JSON], str]:
        if self.created <= self.vanish:
            return [], "1"
        ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        return [{"metadata": {"name": "p"}, "status": ready}], "1"


def _scenario(pods: _VanishingPods, *, simulated: bool) -> tuple[Scenario, list[str]]:
    said: list[str] = []
    scenario = Scenario(
        Options(timeout=5), kube=cast(PathApi, pods), execs=cast(KubeExec, None),
        api=cast(OrchestratorClient, None), say=said.append,
    )  # fmt: skip
    scenario.unmeasured = SIMULATED_REASON if simulated else None
    return scenario, said


async def test_a_pod_a_simulated_node_removed_under_its_old_name_is_created_again_and_said() -> None:
    pods = _VanishingPods(vanish=1)
    scenario, said = _scenario(pods, simulated=True)
    pod, _ = await scenario._recreate({"metadata": {"name": "p"}}, "recreated pod Ready")
    assert pod_ready(pod)
    assert pods.created == 2
    assert said == ["  the simulated node removed the recreated pod p (KWOK tracks pods by name); creating it again"]


@pytest.mark.parametrize(("simulated", "created"), [(False, 1), (True, 3)])
async def test_a_recreated_pod_that_keeps_vanishing_ends_the_run(simulated: bool, created: int) -> None:
    pods = _VanishingPods(vanish=10)
    scenario, _ = _scenario(pods, simulated=simulated)
    with pytest.raises(CompareError, match="recreated pod Ready: the pod is gone"):
        await scenario._recreate({"metadata": {"name": "p"}}, "recreated pod Ready")
    assert pods.created == created
