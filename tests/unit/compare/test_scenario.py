"""The comparison's choice of workload variant for the nodes it found."""

from __future__ import annotations

import pytest

from ai_storage_orchestrator.compare.cluster import CompareError
from ai_storage_orchestrator.compare.scenario import choose_workload

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
    assert choose_workload(requested, simulated=simulated) == chosen


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
