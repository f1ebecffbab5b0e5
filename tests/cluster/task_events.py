"""Container starts and exits as the container runtime records them: containerd's event stream, in nanoseconds.

Real-node tier only. An auditor's cluster gives no such access, so the comparison itself reads the kubelet's
whole-second time stamps (compare/timing.py); the e2e harness records these beside them (tests/cluster/
runtime_timing.py turns them into figures).

``ctr events`` prints one line per event, ``<time> <namespace> <topic> <json>``, the time as Go prints a time.Time
(``2026-12-03 02:40:00.123456789 +0000 UTC``, trailing zeros of the fraction dropped). A task's own exit has ``id``
equal to its ``container_id``; an exec's exit (the checkpoint's, a probe's) has the exec's id and is no container exit.
Which pod and container a task belongs to is in the container's CRI labels, read once per container while it exists.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ai_storage_orchestrator.compare.measuring import NS_PER_SECOND
from tests.cluster.processes import die_with_parent, kill_group

START, EXIT = "start", "exit"
TOPICS = {"/tasks/start": START, "/tasks/exit": EXIT}
POD_LABEL, POD_UID_LABEL = "io.kubernetes.pod.name", "io.kubernetes.pod.uid"
CONTAINER_LABEL, KIND_LABEL = "io.kubernetes.container.name", "io.cri-containerd.kind"
_LINE = re.compile(
    r"^(?P<day>\d{4}-\d\d-\d\d) (?P<clock>\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d{1,9}))? (?P<offset>[+-]\d{4})"
    r" \S+ \S+ (?P<topic>/\S+) (?P<payload>\{.*\})\s*$"
)


@dataclass(frozen=True, slots=True)
class RawEvent:
    at_ns: int  # Unix time, nanoseconds
    kind: str  # START | EXIT
    container_id: str


@dataclass(frozen=True, slots=True)
class TaskEvent:
    node: str
    at_ns: int
    kind: str
    container_id: str
    pod: str
    pod_uid: str
    container: str


def parse_event(line: str) -> RawEvent | None:
    """A container's start or exit from one line of ``ctr events``; None for anything else."""
    match = _LINE.match(line)
    if match is None or (kind := TOPICS.get(match["topic"])) is None:
        return None
    try:
        body = json.loads(match["payload"])
    except json.JSONDecodeError:
        return None
    container = body.get("container_id") if isinstance(body, dict) else None
    if not container or (kind == EXIT and body.get("id", container) != container):
        return None
    moment = dt.datetime.strptime(f"{match['day']} {match['clock']} {match['offset']}", "%Y-%m-%d %H:%M:%S %z")
    nanos = int((match["fraction"] or "0").ljust(9, "0"))
    return RawEvent(int(moment.timestamp()) * NS_PER_SECOND + nanos, kind, str(container))


def labels_of(info: str) -> Mapping[str, str]:
    """The labels in ``ctr containers info``'s JSON."""
    document: Any = json.loads(info)
    labels = document.get("Labels") if isinstance(document, dict) else None
    return {str(k): str(v) for k, v in (labels or {}).items()}


def task_event(node: str, raw: RawEvent, labels: Mapping[str, str]) -> TaskEvent | None:
    """The event with its pod and container, or None for a pod sandbox's task (or a container not the kubelet's)."""
    if labels.get(KIND_LABEL) != "container" or CONTAINER_LABEL not in labels:
        return None
    return TaskEvent(
        node,
        raw.at_ns,
        raw.kind,
        raw.container_id,
        labels.get(POD_LABEL, ""),
        labels.get(POD_UID_LABEL, ""),
        labels[CONTAINER_LABEL],
    )


class TaskEventRecorder:
    """``ctr events`` against one node's containerd, read by a thread until ``stop``. ``ctr`` is the command line
    that reaches that containerd (binary and ``--address``)."""

    def __init__(self, node: str, ctr: Sequence[str]) -> None:
        self.node, self.ctr = node, list(ctr)
        self.events: list[TaskEvent] = []
        self.unlabelled = 0  # tasks whose container was gone before its labels could be read
        self._labels: dict[str, Mapping[str, str]] = {}
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._process = subprocess.Popen(
            [*self.ctr, "events", 'topic=="/tasks/start"', 'topic=="/tasks/exit"'],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=die_with_parent,
        )
        assert self._process.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self._process.stdout,), name=f"task-events-{self.node}", daemon=True
        )
        self._reader.start()

    def _read(self, lines: Iterable[str]) -> None:
        for line in lines:
            if (raw := parse_event(line)) is not None:
                self._record(raw)

    def _record(self, raw: RawEvent) -> None:
        labels = self._labels.get(raw.container_id)
        if labels is None:
            labels = self._read_labels(raw.container_id)
            if labels is None:
                self.unlabelled += 1
                return
            self._labels[raw.container_id] = labels
        if (event := task_event(self.node, raw, labels)) is not None:
            with self._lock:
                self.events.append(event)

    def _read_labels(self, container_id: str) -> Mapping[str, str] | None:
        result = subprocess.run(
            [*self.ctr, "--namespace=k8s.io", "containers", "info", container_id],
            capture_output=True,
            text=True,
            check=False,
        )
        return labels_of(result.stdout) if result.returncode == 0 else None

    def stop(self, timeout: float = 10.0) -> list[TaskEvent]:
        if self._process is not None:
            kill_group(self._process.pid, timeout=timeout, wait=self._process.wait)
            self._process = None
        if self._reader is not None:
            self._reader.join(timeout)
            self._reader = None
        with self._lock:
            return list(self.events)
