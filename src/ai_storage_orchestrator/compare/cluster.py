"""What the comparison needs from the cluster: node facts, pod states, and waiting on watches with deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import KubeApi, Resource

JSON = dict[str, Any]
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
SIMULATED_REASON = "simulated node (no cgroups)"
_WATCH_SECONDS = 60
# Waiting reasons after which a container will not start by itself.
HOPELESS = frozenset({"CrashLoopBackOff", "CreateContainerConfigError", "InvalidImageName", "CreateContainerError"})
# Waiting reasons of an image the node cannot get. A registry's hiccup passes at the kubelet's next try (its back-off
# starts at 10 s), so they end a wait only once they have lasted IMAGE_PULL_GRACE seconds, not at once, nor only at
# the end of --timeout.
IMAGE_PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"})
IMAGE_PULL_GRACE = 30.0


def container_states(pod: Mapping[str, Any]) -> dict[str, str]:
    """``running``, or a short description of why a container is not running, for each container with a status."""
    states: dict[str, str] = {}
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if "running" in state:
            states[str(status.get("name"))] = "running"
        elif "terminated" in state:
            terminated = state["terminated"] or {}
            states[str(status.get("name"))] = (
                f"terminated (exit {terminated.get('exitCode')}, {terminated.get('reason') or 'no reason'})"
            )
        else:
            waiting = state.get("waiting") or {}
            states[str(status.get("name"))] = f"waiting ({waiting.get('reason') or 'no reason'})"
    return states


@dataclass(frozen=True, slots=True)
class ContainerRun:
    """Which run of a container a pod status shows: the kubelet's ``restartCount`` and the runtime's ``containerID``
    ("" until the container is created). A restart raises the count and brings a new ID."""

    restart_count: int
    container_id: str = ""

    def change_since(self, earlier: ContainerRun) -> str | None:
        """How this run differs from ``earlier`` (the container restarted in between), or None (the same run)."""
        if self.restart_count != earlier.restart_count:
            return f"restartCount {earlier.restart_count} -> {self.restart_count}"
        if earlier.container_id and self.container_id and self.container_id != earlier.container_id:
            return f"containerID {_short_id(earlier.container_id)} -> {_short_id(self.container_id)}"
        return None

    def to_json(self) -> JSON:
        return {"restart_count": self.restart_count, "container_id": self.container_id}


def _short_id(container_id: str) -> str:
    scheme, found, digest = container_id.partition("://")
    return f"{scheme}://{digest[:12]}" if found else container_id[:12]


def container_runs(pod: Mapping[str, Any]) -> dict[str, ContainerRun]:
    """The run of each container with a status (``ContainerRun``)."""
    runs: dict[str, ContainerRun] = {}
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        count = status.get("restartCount")
        runs[str(status.get("name"))] = ContainerRun(
            count if isinstance(count, int) else 0, str(status.get("containerID") or "")
        )
    return runs


def spec_container_names(pod: Mapping[str, Any]) -> list[str]:
    return [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]


class CompareError(Exception):
    """The comparison cannot go on; the message says why (exit code 2)."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    simulated: bool
    ready: bool
    schedulable: bool
    kubelet_version: str
    container_runtime: str
    kernel: str
    os_image: str
    cgroup_hint: str | None = None

    def to_json(self) -> JSON:
        return {
            "name": self.name,
            "simulated": self.simulated,
            "ready": self.ready,
            "schedulable": self.schedulable,
            "kubelet_version": self.kubelet_version,
            "container_runtime": self.container_runtime,
            "kernel": self.kernel,
            "os_image": self.os_image,
        }

    def describe(self) -> str:
        if self.simulated:
            return f"{self.name} (simulated by KWOK {self.kubelet_version}: no containers, no cgroups)"
        return f"{self.name} (kubelet {self.kubelet_version}, {self.container_runtime}, kernel {self.kernel})"


def is_simulated(node: Mapping[str, Any]) -> bool:
    """A KWOK node: label ``type=kwok``, KWOK's own annotation, or a kubelet version starting with ``kwok``."""
    metadata = node.get("metadata") or {}
    if (metadata.get("labels") or {}).get("type") == "kwok":
        return True
    if (metadata.get("annotations") or {}).get("kwok.x-k8s.io/node") == "fake":
        return True
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return str(info.get("kubeletVersion") or "").startswith("kwok")


def _condition(obj: Mapping[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions") or []
    )


def node_info(node: Mapping[str, Any]) -> NodeInfo:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    spec = node.get("spec") or {}
    no_schedule = any(t.get("effect") in ("NoSchedule", "NoExecute") for t in spec.get("taints") or [])
    return NodeInfo(
        name=str((node.get("metadata") or {}).get("name")),
        simulated=is_simulated(node),
        ready=_condition(node, "Ready"),
        schedulable=not spec.get("unschedulable") and not no_schedule,
        kubelet_version=str(info.get("kubeletVersion") or "unknown"),
        container_runtime=str(info.get("containerRuntimeVersion") or "unknown"),
        kernel=str(info.get("kernelVersion") or "unknown"),
        os_image=str(info.get("osImage") or "unknown"),
    )


def pick_nodes(nodes: Sequence[NodeInfo], *, source: str | None, target: str | None) -> tuple[str, str]:
    """The given nodes, or the first Ready schedulable workers by name."""
    usable = sorted(n.name for n in nodes if n.ready and n.schedulable)
    chosen_source = source or next((n for n in usable if n != target), None)
    chosen_target = target or next((n for n in usable if n != chosen_source), None)
    if not chosen_source or not chosen_target:
        raise CompareError(
            f"need two Ready schedulable nodes (found: {', '.join(usable) or 'none'}); name them with"
            " --source-node and --target-node"
        )
    if chosen_source == chosen_target:
        raise CompareError("--source-node and --target-node must differ")
    names = {n.name for n in nodes}
    for name in (chosen_source, chosen_target):
        if name not in names:
            raise CompareError(f"node {name} does not exist")
    return chosen_source, chosen_target


def pod_ready(pod: Mapping[str, Any] | None) -> bool:
    return pod is not None and (pod.get("status") or {}).get("phase") == "Running" and _condition(pod, "Ready")


def container_completed(name: str) -> Callable[[JSON | None], bool]:
    def completed(pod: JSON | None) -> bool:
        return pod is not None and container_states(pod).get(name, "").startswith("terminated (exit 0")

    return completed


def containers_started(pod: Mapping[str, Any]) -> list[str]:
    """The containers of the pod that have started (running now, or ran and ended)."""
    started = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if "running" in state or "terminated" in state or status.get("started"):
            started.append(str(status.get("name")))
    return started


def pod_trouble(pod: Mapping[str, Any]) -> str | None:
    """Why a pod will not become Ready by itself, if that is already clear."""
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return f"pod failed: {status.get('reason') or ''} {status.get('message') or ''}".strip()
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in HOPELESS:
            return f"container {container.get('name')}: {waiting.get('reason')}: {waiting.get('message') or ''}"
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated and terminated.get("exitCode") not in (0, None):
            return f"container {container.get('name')} exited with code {terminated.get('exitCode')}"
    return None


def image_trouble(pod: Mapping[str, Any]) -> str | None:
    """The first container of the pod waiting for an image its node cannot get (``IMAGE_PULL_FAILURES``), said."""
    for container in [*((pod.get("status") or {}).get("initContainerStatuses") or []),
                      *((pod.get("status") or {}).get("containerStatuses") or [])]:  # fmt: skip
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in IMAGE_PULL_FAILURES:
            message = f": {waiting['message']}" if waiting.get("message") else ""
            return (
                f"container {container.get('name')} cannot get its image {container.get('image') or ''}"
                f" ({reason}{message}): the node must be able to pull it from its registry, or have it imported"
                " into its containerd (the images of --workload numpy and tensorflow-local are never pulled)"
            )
    return None


def describe_pod(pod: Mapping[str, Any] | None) -> str:
    if pod is None:
        return "gone"
    states = ", ".join(f"{k}: {v}" for k, v in container_states(pod).items()) or "no container status yet"
    return f"phase {(pod.get('status') or {}).get('phase')}; {states}"


async def wait_for(
    kube: KubeApi,
    resource: Resource,
    *,
    name: str,
    namespace: str | None,
    condition: Callable[[JSON | None], bool],
    timeout: float,
    what: str,
    trouble: Callable[[JSON], str | None] | None = None,
    lasting_trouble: Callable[[JSON], str | None] | None = None,
    grace: float = IMAGE_PULL_GRACE,
    describe: Callable[[JSON | None], str] = lambda obj: "gone" if obj is None else "present",
    observe: Callable[[JSON | None], None] | None = None,
) -> JSON | None:
    """The object (None: it does not exist) once ``condition`` holds: list, then watch from that version, until
    ``timeout``. ``trouble`` names a state that will not resolve by itself, which ends the wait at once;
    ``lasting_trouble`` one that may (an image pull that failed), which ends the wait once it has lasted ``grace``
    seconds without a break, whether or not the object changes meanwhile. ``observe`` sees every state of the object
    the wait saw, in order: each listed object (None: not there), each watched one, and a deleted object's last state
    (then None)."""
    last: JSON | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    lasting: tuple[float, str] | None = None  # since when (loop time), and the latest word for it
    clock: asyncio.Timeout | None = None

    def seen(obj: JSON | None) -> None:
        if observe is not None:
            observe(obj)

    def settled(obj: JSON | None) -> bool:
        nonlocal lasting
        if condition(obj):
            return True
        problem = trouble(obj) if (trouble is not None and obj is not None) else None
        if problem:
            raise CompareError(f"{what}: {problem}")
        slow = lasting_trouble(obj) if (lasting_trouble is not None and obj is not None) else None
        lasting = (lasting[0] if lasting else loop.time(), slow) if slow else None
        if clock is not None:  # the wait ends at the grace's end while the trouble lasts, else at the timeout
            clock.reschedule(min(deadline, lasting[0] + grace) if lasting else deadline)
        return False

    try:
        async with asyncio.timeout_at(deadline) as clock:
            while True:
                items, version = await kube.list(resource, namespace=namespace, field_selector=f"metadata.name={name}")
                last = items[0] if items else None
                seen(last)
                if settled(last):
                    return last
                try:
                    async for event in kube.watch(
                        resource, resource_version=version, namespace=namespace, timeout_seconds=_WATCH_SECONDS
                    ):
                        if event.type == "BOOKMARK" or (event.object.get("metadata") or {}).get("name") != name:
                            continue
                        seen(event.object)
                        last = None if event.type == "DELETED" else event.object
                        if event.type == "DELETED":
                            seen(None)
                        if settled(last):
                            return last
                except KubeApiError as error:
                    if not (error.gone or error.retriable):
                        raise
                await asyncio.sleep(0)  # a watch that ended at once must not starve the other tasks
    except TimeoutError:
        if lasting is not None and lasting[0] + grace <= deadline:
            raise CompareError(f"{what}: {lasting[1]} (for {grace:g}s)") from None
        raise CompareError(f"{what}: not reached within {timeout:g}s (last seen: {describe(last)})") from None
    except KubeApiError as error:
        raise CompareError(f"{what}: {error}") from error
