"""Kubernetes resource quantities and a pod's effective requests as the scheduler computes them.

Quantities are parsed exactly (``decimal``) and rounded *up*, like ``resource.Quantity.MilliValue()``:
``"500m"`` → 500 millicores, ``"1.5"`` → 1500, ``"100u"`` → 1; ``"1.5Gi"`` → 1610612736 bytes, ``"1e3"`` → 1000.
Garbage raises ``ValueError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from ai_storage_orchestrator.controller.planning.containers import is_sidecar
from ai_storage_orchestrator.models import Resources

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_EXPONENT = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(r"^\+?(?P<number>\d+\.?\d*|\.\d+)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d{1,3})?$")
_MAX_VALUE = Decimal(2**63)


def parse_quantity(value: str | int | float) -> Decimal:
    """The exact value of a Kubernetes quantity (``"1.5Gi"``, ``"500m"``, ``"1e3"``, ``2``); negatives are refused."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a quantity: {value!r}")
    text = str(value) if not isinstance(value, str) else value
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"not a valid Kubernetes quantity: {value!r}")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex only lets digits through
        raise ValueError(f"not a valid Kubernetes quantity: {value!r}") from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        result = number * _BINARY[suffix]
    elif suffix in _DECIMAL_EXPONENT:
        result = number.scaleb(_DECIMAL_EXPONENT[suffix])
    else:
        result = number.scaleb(int(suffix[1:]))
    if result > _MAX_VALUE:
        raise ValueError(f"quantity too large: {value!r}")
    return result


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def cpu_millicores(value: str | int | float) -> int:
    """CPU quantity → millicores, rounded up (``"100u"`` → 1)."""
    return _ceil(parse_quantity(value) * 1000)


def quantity_int(value: str | int | float) -> int:
    """A quantity as a whole number, rounded up: memory bytes, pod counts."""
    return _ceil(parse_quantity(value))


def memory_bytes(value: str | int | float) -> int:
    """Memory quantity → bytes, rounded up."""
    return quantity_int(value)


def format_cpu(millicores: int) -> str:
    """``1700`` → ``"1700m"``, ``2000`` → ``"2"``."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def format_memory(num_bytes: int) -> str:
    """Bytes → a short binary-unit string (``"3.5Gi"``); exact when possible, else two decimals."""
    for unit, size in reversed(_BINARY.items()):
        if abs(num_bytes) >= size:
            text = f"{num_bytes / size:.2f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
    return str(num_bytes)


def format_resources(resources: Resources) -> str:
    return f"cpu {format_cpu(resources.cpu_millicores)}, memory {format_memory(resources.memory_bytes)}"


def _resource_list(values: Mapping[str, Any] | None) -> Resources:
    values = values or {}
    cpu = values.get("cpu")
    memory = values.get("memory")
    return Resources(
        cpu_millicores(cpu) if cpu is not None else 0,
        memory_bytes(memory) if memory is not None else 0,
    )


def container_requests(container: Mapping[str, Any]) -> Resources:
    """A container's requests; a resource with only a limit requests its limit (as API defaulting does)."""
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = {**limits, **(resources.get("requests") or {})}
    return _resource_list(requests)


def _max(a: Resources, b: Resources) -> Resources:
    return Resources(max(a.cpu_millicores, b.cpu_millicores), max(a.memory_bytes, b.memory_bytes))


def pod_requests(pod_spec: Mapping[str, Any]) -> Resources:
    """The pod's effective request, like the scheduler (``k8s.io/component-helpers/resource.PodRequests``).

    ``max(sum(containers) + sum(sidecars), max_i(init_i + sidecars started before i)) + overhead``, per resource.
    """
    total = Resources()
    for container in pod_spec.get("containers") or []:
        total += container_requests(container)
    sidecars = Resources()
    init_peak = Resources()
    for container in pod_spec.get("initContainers") or []:
        request = container_requests(container)
        if is_sidecar(container):
            total += request
            sidecars += request
            init_peak = _max(init_peak, sidecars)
        else:
            init_peak = _max(init_peak, request + sidecars)
    return _max(total, init_peak) + _resource_list(pod_spec.get("overhead"))


EPHEMERAL_STORAGE = "ephemeral-storage"
_HUGEPAGES_PREFIX = "hugepages-"


def is_extended_resource(name: str) -> bool:
    """A scalar resource the scheduler checks besides cpu/memory/ephemeral-storage/pods (``IsScalarResourceName``):
    a domain-prefixed name (``nvidia.com/gpu``, a device plugin's, ``kubernetes.io/...``) or ``hugepages-<size>``."""
    return ("/" in name and not name.startswith("requests.")) or name.startswith(_HUGEPAGES_PREFIX)


def is_byte_resource(name: str) -> bool:
    """Measured in bytes (shown with binary units): ephemeral-storage and huge pages."""
    return name == EPHEMERAL_STORAGE or name.startswith(_HUGEPAGES_PREFIX)


def format_scalar(name: str, value: int) -> str:
    return format_memory(value) if is_byte_resource(name) else str(value)


def _scalar_list(values: Mapping[str, Any] | None) -> dict[str, int]:
    return {
        str(name): quantity_int(value)
        for name, value in (values or {}).items()
        if name == EPHEMERAL_STORAGE or is_extended_resource(str(name))
    }


def container_scalar_requests(container: Mapping[str, Any]) -> dict[str, int]:
    """A container's ephemeral-storage and extended-resource requests; a limit without a request requests the limit
    (for extended resources the API requires requests equal to limits anyway)."""
    resources = container.get("resources") or {}
    return _scalar_list({**(resources.get("limits") or {}), **(resources.get("requests") or {})})


def _add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {name: a.get(name, 0) + b.get(name, 0) for name in {*a, *b}}


def _max_each(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {name: max(a.get(name, 0), b.get(name, 0)) for name in {*a, *b}}


def pod_scalar_requests(pod_spec: Mapping[str, Any]) -> dict[str, int]:
    """``pod_requests`` for ephemeral-storage and extended resources (same formula, per resource name); names whose
    request is 0 are left out."""
    total: dict[str, int] = {}
    for container in pod_spec.get("containers") or []:
        total = _add(total, container_scalar_requests(container))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in pod_spec.get("initContainers") or []:
        request = container_scalar_requests(container)
        if is_sidecar(container):
            total = _add(total, request)
            sidecars = _add(sidecars, request)
            init_peak = _max_each(init_peak, sidecars)
        else:
            init_peak = _max_each(init_peak, _add(request, sidecars))
    result = _add(_max_each(total, init_peak), _scalar_list(pod_spec.get("overhead")))
    return {name: value for name, value in sorted(result.items()) if value}
