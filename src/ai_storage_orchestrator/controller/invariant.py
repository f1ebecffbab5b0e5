"""The one rule of the whole product, stated once: **the pod's work is never lost.**

At every instant at least one of {source, target} is alive, or the pod is restorable from the record: its spec is
in ``status.targetPodManifest`` and its state on the shared volume (checkpoint-restart, after Checkpointing).
Concretely:

* the source is removed only when a Ready target with the recorded UID exists (make-before-break, checked live
  against the API server right before, never from a cache; "Ready" as ``serving`` reads it) or the checkpoint step
  has finished (checkpoint-restart);
* a pre-warmed target's gate opens (its containers start) only when a live read shows the source gone, or being
  removed with no container the kubelet reports running: two copies of the trainer never run at once;
* a rollback that finds the source stopping waits until it is gone and recreates it; it never declares the pod
  safe while a copy it relies on is still terminating;
* a terminal record never leaves zero pods after the orchestrator touched the source: `transition` checks the live
  pods before every terminal phase and refuses (``InvariantViolation``, retried) instead of recording one.

These functions are pure; the phases (controller/phases.py) and the context (controller/context.py) call them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ai_storage_orchestrator.bodies import Pod
from ai_storage_orchestrator.errors import TemporaryError

JSON = dict[str, Any]


class InvariantViolation(TemporaryError):
    """A step was about to leave the pod without a running copy: the step is retried, never recorded."""

    default_reason = "pod_would_be_lost"


def terminating(pod: JSON) -> bool:
    return Pod(pod).terminating


def alive(pod: JSON | None) -> bool:
    """Exists and is not being removed (a terminating pod is on its way out: it counts as gone)."""
    if pod is None:
        return False
    view = Pod(pod)
    return not view.terminating and view.phase != "Failed"


def refused(pod: JSON) -> bool:
    """The kubelet failed the pod before any of its containers ran: its admission turned it away (OutOfcpu,
    OutOfmemory, NodeAffinity, ...), which it decides once, at once, for a pod bound to its node."""
    view = Pod(pod)
    if view.phase != "Failed":
        return False
    statuses = [*view.init_container_statuses, *view.container_statuses]
    return not any(
        "running" in (status.get("state") or {})
        or "terminated" in (status.get("state") or {})
        or "terminated" in (status.get("lastState") or {})
        for status in statuses
    )


def admitted(pod: JSON) -> bool:
    """The kubelet of its node has taken the pod: it runs or has run, or the kubelet reports its containers."""
    view = Pod(pod)
    if view.phase in ("Running", "Succeeded"):
        return True
    return bool(view.init_container_statuses or view.container_statuses) and not refused(pod)


def containers_stopped(pod: JSON) -> bool:
    """Being removed, and the kubelet reports none of its containers running: they never run again (a terminating
    pod's containers are not restarted). What a pre-warmed target's gate waits for, read live (controller/phases.py)."""
    view = Pod(pod)
    if not view.terminating:
        return False
    statuses = [*view.init_container_statuses, *view.container_statuses]
    reported = all(status.get("state") for status in statuses)
    return reported and not any("running" in (status.get("state") or {}) for status in statuses)


def serving(pod: JSON) -> str | None:
    """How the pod runs its work (None: it does not yet, or no more): "is Ready", "succeeded", or — for a pod whose
    restart policy does not rerun a container that ended with exit 0 — "runs (… completed)" when every other container
    is ready and every readiness gate holds. A finished data-preparation container leaves its pod not Ready for good
    (the certification's source is in that state), so a target in it would otherwise never be fit to replace the
    source."""
    view = Pod(pod)
    if view.ready:
        return "is Ready"
    if view.phase == "Succeeded":
        return "succeeded"
    if view.phase != "Running" or view.terminating or view.spec.get("restartPolicy", "Always") == "Always":
        return None
    statuses = view.container_statuses
    if len(statuses) < len(view.spec.get("containers") or ()):
        return None
    gates = [str(g.get("conditionType")) for g in view.spec.get("readinessGates") or ()]
    if not all(view.condition_true(gate) for gate in gates):
        return None
    completed = [str(s.get("name")) for s in statuses if _completed(s)]
    if any(not s.get("ready") and not _completed(s) for s in statuses) or len(completed) == len(statuses):
        return None
    return f"runs ({', '.join(completed)} completed)"


def _completed(status: Mapping[str, Any]) -> bool:
    terminated = (status.get("state") or {}).get("terminated")
    return isinstance(terminated, dict) and terminated.get("exitCode") == 0


def target_unfit_to_replace_source(target: JSON | None, *, uid: str | None, node: str) -> str | None:
    """Why the source must not be removed yet because of the target (None: it may go). `target` must be a fresh
    read from the API server: a Ready target in a cache may already have been evicted."""
    if target is None:
        return "the target pod is gone"
    pod = Pod(target)
    if uid and pod.uid != uid:
        return f"target pod {pod.name} was replaced by another pod (uid changed)"
    if pod.terminating:
        return f"target pod {pod.name} is being removed"
    if pod.node_name != node:
        return f"target pod {pod.name} is not on node {node}"
    if serving(target) is None:
        return f"target pod {pod.name} is no longer Ready"
    return None
