"""The comparison's choice of workload variant for the nodes it found."""

from __future__ import annotations

import pytest

from ai_storage_orchestrator.compare.cluster import CompareError
from ai_storage_orchestrator.compare.scenario import choose_workload
from ai_storage_orchestrator.compare.workload import NUMPY_IMAGE

pytestmark = pytest.mark.unit


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
