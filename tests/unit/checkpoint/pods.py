"""Raw pod objects for the checkpoint tests (camelCase dicts, as the API server serves them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHARED = "shared-data"


def workload(
    root: Path,
    *,
    hooks: dict[str, list[str]] | None = None,
    artifacts: dict[str, list[str]] | None = None,
    extra_annotations: dict[str, str] | None = None,
    processor_done: bool = True,
) -> dict[str, Any]:
    """trainer (running, emptyDir 'optimizer'), processor (completed, writes emptyDir 'processed' which the trainer
    reads), monitor (running); every container mounts the shared volume at <root>/shared."""
    shared = {"name": SHARED, "mountPath": str(root / "shared")}
    optimizer = {"name": "optimizer", "mountPath": str(root / "scratch-trainer")}
    processed = {"name": "processed", "mountPath": str(root / "scratch-processor")}
    annotations = {f"ai-storage.io/checkpoint-hook.{c}": json.dumps(argv) for c, argv in (hooks or {}).items()}
    annotations |= {f"ai-storage.io/checkpoint-artifacts.{c}": json.dumps(p) for c, p in (artifacts or {}).items()}
    annotations |= extra_annotations or {}
    processor_state: dict[str, Any] = (
        {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2024-05-01T10:05:00Z"}}
        if processor_done
        else {"running": {"startedAt": "2024-05-01T10:00:00Z"}}
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "trainer-pod", "namespace": "ml", "uid": "uid-1", "annotations": annotations},
        "spec": {
            "nodeName": "node-a",
            "restartPolicy": "OnFailure",
            "containers": [
                {
                    "name": "trainer",
                    "image": "example.com/trainer:1",
                    "resources": {"requests": {"cpu": "1"}},
                    "securityContext": {"runAsUser": 1000},
                    "volumeMounts": [shared, optimizer, processed],
                },
                {"name": "processor", "image": "example.com/processor:1", "volumeMounts": [shared, processed]},
                {"name": "monitor", "image": "example.com/monitor:1", "volumeMounts": [shared]},
            ],
            "volumes": [
                {"name": SHARED, "persistentVolumeClaim": {"claimName": "training-data"}},
                {"name": "optimizer", "emptyDir": {}},
                {"name": "processed", "emptyDir": {}},
            ],
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "trainer", "state": {"running": {"startedAt": "2024-05-01T10:00:00Z"}}, "restartCount": 0},
                {"name": "processor", "state": processor_state, "restartCount": 0},
                {"name": "monitor", "state": {"running": {"startedAt": "2024-05-01T10:00:00Z"}}, "restartCount": 1},
            ],
        },
    }


def volume(root: Path) -> dict[str, str]:
    """Planning's checkpoint volume for `workload`."""
    return {"volume": SHARED, "mount_path": str(root / "shared"), "container": "trainer"}


DECISIONS = [
    {"name": "trainer", "kind": "container", "state": "running", "action": "migrate", "reason": "running"},
    {"name": "processor", "kind": "container", "state": "terminated", "action": "skip", "reason": "done"},
    {"name": "monitor", "kind": "container", "state": "running", "action": "migrate", "reason": "running"},
]


def target_of(pod: dict[str, Any]) -> dict[str, Any]:
    """A target pod as planning builds it (processor skipped)."""
    spec = json.loads(json.dumps(pod["spec"]))
    spec["containers"] = [c for c in spec["containers"] if c["name"] != "processor"]
    spec["nodeName"] = "node-b"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "trainer-pod-migrated-abc", "namespace": "ml", "annotations": {}},
        "spec": spec,
    }
