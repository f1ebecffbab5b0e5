from __future__ import annotations

from typing import Any

import pytest

from ai_storage_orchestrator.controller.planning import (
    cpu_millicores,
    format_cpu,
    format_memory,
    memory_bytes,
    pod_requests,
)
from ai_storage_orchestrator.models import Resources
from tests.unit.planning.fixtures import container

pytestmark = pytest.mark.unit

GI = 2**30
MI = 2**20


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("500m", 500),
        ("1.5", 1500),
        ("2", 2000),
        (2, 2000),
        (0.25, 250),
        ("100u", 1),  # rounded up, like Quantity.MilliValue()
        ("250000000n", 250),
        ("1e-3", 1),
        ("0", 0),
    ],
)
def test_cpu_millicores(quantity: Any, expected: int) -> None:
    assert cpu_millicores(quantity) == expected


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("1.5Gi", 3 * GI // 2),
        ("512Mi", 512 * MI),
        ("1G", 10**9),
        ("1k", 1000),
        ("1Ki", 1024),
        ("1e3", 1000),
        ("1E3", 1000),
        ("129M", 129_000_000),
        ("1E", 10**18),
        ("134217728", 134217728),
        (1024, 1024),
        ("0.5", 1),
    ],
)
def test_memory_bytes(quantity: Any, expected: int) -> None:
    assert memory_bytes(quantity) == expected


@pytest.mark.parametrize("garbage", ["", "abc", "1.5GB", "1K", "Gi", "-1", "1 Gi", "1e", "1e9999", None, True, "nan"])
def test_garbage_is_a_value_error(garbage: Any) -> None:
    with pytest.raises(ValueError, match=r"quantit|too large"):
        memory_bytes(garbage)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"containers": [container("a", cpu="1", memory="1Gi"), container("b", cpu="500m", memory="512Mi")]},
            Resources(1500, GI + 512 * MI),
            id="sum-of-containers",
        ),
        pytest.param(
            {"containers": [container("a", cpu="2", memory="1Gi", limits_only=True)]},
            Resources(2000, GI),
            id="limits-default-requests",
        ),
        pytest.param(
            {"containers": [container("a", cpu="1")], "initContainers": [container("i", cpu="3", memory="2Gi")]},
            Resources(3000, 2 * GI),
            id="init-peak-wins",
        ),
        pytest.param(
            {
                "containers": [container("a", cpu="1", memory="1Gi")],
                "initContainers": [
                    container("sidecar", cpu="500m", memory="256Mi", restart_policy="Always"),
                    container("init", cpu="1200m", memory="100Mi"),
                ],
            },
            Resources(1700, GI + 256 * MI),  # cpu: init 1200m + earlier sidecar 500m; memory: main + sidecar
            id="sidecar-adds-to-main-and-later-inits",
        ),
        pytest.param(
            {"containers": [container("a", cpu="1", memory="1Gi")], "overhead": {"cpu": "250m", "memory": "64Mi"}},
            Resources(1250, GI + 64 * MI),
            id="overhead",
        ),
        pytest.param({"containers": [container("a")]}, Resources(0, 0), id="best-effort"),
    ],
)
def test_pod_requests(spec: dict[str, Any], expected: Resources) -> None:
    assert pod_requests(spec) == expected


def test_formatting() -> None:
    assert (format_cpu(1700), format_cpu(2000), format_memory(7 * GI // 2), format_memory(100)) == (
        "1700m",
        "2",
        "3.5Gi",
        "100",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "not a quantity: True"),
        (None, "not a quantity: None"),
        ("1 Gi", "not a valid Kubernetes quantity: '1 Gi'"),
        (str(2**63 + 1), f"quantity too large: '{2**63 + 1}'"),
    ],
)
def test_refusals_name_the_value(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=r"quantit") as caught:
        memory_bytes(value)
    assert str(caught.value) == message


def test_the_largest_quantity_is_two_to_the_63() -> None:
    assert memory_bytes(str(2**63)) == 2**63


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [(1023, "1023"), (1024, "1Ki"), (1536, "1.5Ki"), (GI, "1Gi"), (GI + GI // 100, "1.01Gi")],
)
def test_memory_is_formatted_in_the_largest_unit_it_fills(num_bytes: int, text: str) -> None:
    assert format_memory(num_bytes) == text


def test_every_earlier_sidecar_adds_to_a_later_init_container() -> None:
    spec = {
        "containers": [container("a", cpu="100m")],
        "initContainers": [
            container("s1", cpu="300m", restart_policy="Always"),
            container("s2", cpu="200m", restart_policy="Always"),
            container("init", cpu="1"),
        ],
    }
    assert pod_requests(spec) == Resources(1500, 0)
