"""The outcome of one pre-flight rule, and the stable reason codes of the rules.

A ``Check`` carries its rule's ``reason`` code whether it passed or not; ``passed`` says which. ``message`` is a human
sentence either way, ``details`` data for the API error body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

POD_NOT_FOUND = "pod_not_found"
POD_TERMINATING = "pod_terminating"
POD_NOT_ON_SOURCE_NODE = "pod_not_on_source_node"
SOURCE_EQUALS_TARGET = "source_equals_target"
POD_NOT_RUNNING = "pod_not_running"
OWNED_BY_CONTROLLER = "owned_by_controller"
NO_TARGET_NODE = "no_target_node"  # target chosen by the orchestrator (choice.py): no node passes every fit check
TARGET_NODE_NOT_FOUND = "target_node_not_found"
TARGET_NODE_NOT_READY = "target_node_not_ready"
TARGET_NODE_CORDONED = "target_node_cordoned"
TAINTS_NOT_TOLERATED = "taints_not_tolerated"
NODE_SELECTOR_MISMATCH = "node_selector_mismatch"
NODE_AFFINITY_MISMATCH = "node_affinity_mismatch"
INSUFFICIENT_RESOURCES = "insufficient_resources"
HOST_PORT_CONFLICT = "host_port_conflict"
VOLUME_NODE_AFFINITY = "volume_node_affinity"
UNSAFE_VOLUME = "unsafe_volume"
RWO_VOLUME_REQUIRES_CHECKPOINT_RESTART = "rwo_volume_requires_checkpoint_restart"
NO_SHARED_VOLUME = "no_shared_volume"
NOTHING_TO_RUN = "nothing_to_run"

# The order in which failures are reported: the first failed check in this order becomes the error.
REASON_PRIORITY: tuple[str, ...] = (
    POD_NOT_FOUND,
    POD_TERMINATING,
    POD_NOT_ON_SOURCE_NODE,
    SOURCE_EQUALS_TARGET,
    POD_NOT_RUNNING,
    OWNED_BY_CONTROLLER,
    NO_TARGET_NODE,
    TARGET_NODE_NOT_FOUND,
    TARGET_NODE_NOT_READY,
    TARGET_NODE_CORDONED,
    TAINTS_NOT_TOLERATED,
    NODE_SELECTOR_MISMATCH,
    NODE_AFFINITY_MISMATCH,
    INSUFFICIENT_RESOURCES,
    HOST_PORT_CONFLICT,
    UNSAFE_VOLUME,
    VOLUME_NODE_AFFINITY,
    RWO_VOLUME_REQUIRES_CHECKPOINT_RESTART,
    NO_SHARED_VOLUME,
    NOTHING_TO_RUN,
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    reason: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "reason": self.reason,
            "message": self.message,
            "details": dict(self.details),
        }


def check(name: str, reason: str, *, ok: bool, message: str, **details: Any) -> Check:
    return Check(name=name, passed=ok, reason=reason, message=message, details=details)
