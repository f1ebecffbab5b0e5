"""The pure part of `drain`: which pods are skipped (as `kubectl drain` skips them), what the orchestrator's refusal
or dry run says about a pod, and the lines of the plan, the summary and the verdict. No I/O: the tests feed it dicts."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ai_storage_orchestrator.cli.client import ApiError
from ai_storage_orchestrator.cli.output import table, target_choice_text
from ai_storage_orchestrator.controller.planning.owner import controlling_owner

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


class Action(StrEnum):
    MIGRATE = "migrate"
    EVICT = "evict"
    SKIP = "skip"
    LEAVE = "leave"  # refused by the orchestrator, and --no-evict


class Outcome(StrEnum):
    MIGRATED = "migrated"
    EVICTED = "evicted"
    SKIPPED = "skipped"
    LEFT = "left"
    FAILED = "failed"
    GONE = "gone"  # the pod went away on its own before anything was done to it


@dataclass
class PodWork:
    """One pod of the node: what is (to be) done with it and how far it got."""

    namespace: str
    name: str
    uid: str | None = None
    action: Action | None = None
    reason: str = ""
    target: str | None = None
    state: str = "pending"
    migration_id: str | None = None
    started: float | None = None
    finished: float | None = None
    outcome: Outcome | None = None
    not_evictable: str | None = None  # why the pod is not evicted if the orchestrator refuses it (as kubectl drain)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.finished if self.finished is not None else now) - self.started


def is_daemonset_pod(pod: Mapping[str, Any]) -> bool:
    owner = controlling_owner(pod)
    return owner is not None and owner.get("kind") == "DaemonSet"


def skip_reason(pod: Mapping[str, Any]) -> str | None:
    """Why `kubectl drain` would leave this pod alone (DaemonSet pods only with --ignore-daemonsets, which the
    caller checks), or None."""
    metadata = pod.get("metadata") or {}
    if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
        return "mirror pod of a static pod: the kubelet owns it, the API cannot move it"
    if metadata.get("deletionTimestamp"):
        return "already terminating"
    if is_daemonset_pod(pod):
        owner = controlling_owner(pod) or {}
        return f"managed by DaemonSet {owner.get('name')} (--ignore-daemonsets)"
    return None


# Volumes the orchestrator adds to the pods it makes (the gate's door, the restore's record): no user data in them.
OURS = "ai-storage-"


def eviction_blocker(pod: Mapping[str, Any], *, force: bool, delete_emptydir_data: bool) -> str | None:
    """Why `kubectl drain` would not evict this pod without an override: nothing recreates a pod without a
    controller (evicting it deletes it for good), and an emptyDir's data goes with the pod."""
    if controlling_owner(pod) is None and not force:
        return "no controller would recreate it, so evicting it would delete it for good (--force to evict it)"
    volumes = (pod.get("spec") or {}).get("volumes") or []
    local = [
        str(v.get("name"))
        for v in volumes
        if isinstance(v, Mapping) and v.get("emptyDir") is not None and not str(v.get("name")).startswith(OURS)
    ]
    if local and not delete_emptydir_data:
        return f"its emptyDir data ({', '.join(local)}) would be lost (--delete-emptydir-data to evict it)"
    return None


def sort_pods(
    pods: Iterable[Mapping[str, Any]], *, force: bool = False, delete_emptydir_data: bool = False
) -> tuple[list[PodWork], list[PodWork]]:
    """(the pods to ask the orchestrator about, the skipped ones), each in namespace/name order."""
    candidates: list[PodWork] = []
    skipped: list[PodWork] = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        work = PodWork(str(metadata.get("namespace")), str(metadata.get("name")), uid=metadata.get("uid"))
        work.not_evictable = eviction_blocker(pod, force=force, delete_emptydir_data=delete_emptydir_data)
        reason = skip_reason(pod)
        if reason is None:
            candidates.append(work)
        else:
            work.action, work.reason, work.state, work.outcome = Action.SKIP, reason, "skipped", Outcome.SKIPPED
            skipped.append(work)
    return sorted(candidates, key=lambda w: w.key), sorted(skipped, key=lambda w: w.key)


def daemonset_blockers(pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """DaemonSet pods, which stop a drain without --ignore-daemonsets (as kubectl's)."""
    keys = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        if is_daemonset_pod(pod) and not metadata.get("deletionTimestamp"):
            keys.append(f"{metadata.get('namespace')}/{metadata.get('name')}")
    return sorted(keys)


def failed_check_reasons(details: Mapping[str, Any] | None, checks: object = None) -> list[str]:
    """The reasons of the failed checks, from an error's details or a plan's checks."""
    listed = checks if checks is not None else (details or {}).get("failed_checks")
    reasons: list[str] = []
    for check in listed if isinstance(listed, list) else []:
        reason = str(check.get("reason") or "") if isinstance(check, Mapping) and not check.get("passed") else ""
        if reason and reason not in reasons:
            reasons.append(reason)
    return reasons


def refusal_text(error: ApiError) -> str:
    reasons = failed_check_reasons(error.details) or [error.reason]
    return f"refused ({', '.join(reasons)}): {error.message}"


def is_refusal(error: ApiError) -> bool:
    """The orchestrator will not migrate the pod (the cluster forbids it, or no node fits): evict it instead."""
    return error.status == 422


def target_of(document: Mapping[str, Any]) -> str | None:
    """The target node of a migration or of a dry-run plan."""
    target = document.get("target_node")
    if not target:
        target = (document.get("request") or {}).get("target_node")
    choice = document.get("target_choice")
    if not target and isinstance(choice, Mapping):
        target = (choice.get("chosen") or {}).get("node")
    return str(target) if target and target != "auto" else None


def apply_dry_run(work: PodWork, plan: Mapping[str, Any], *, evict: bool) -> None:
    """What the drain would do with the pod, from the orchestrator's dry run."""
    if plan.get("ok"):
        work.action, work.target = Action.MIGRATE, target_of(plan)
        active = plan.get("active_migration")
        why = target_choice_text(plan.get("target_choice")) or "target chosen by the orchestrator"
        work.reason = f"migration {active} already active: followed" if active else why
        return
    checks = plan.get("checks")
    reasons = failed_check_reasons(None, checks) or ["refused"]
    messages = [str(c.get("message")) for c in checks or [] if isinstance(c, Mapping) and not c.get("passed")]
    text = f"refused ({', '.join(reasons)})" + (f": {messages[0]}" if messages else "")
    work.action, work.reason = refused_action(work, text, evict=evict)


def refused_action(work: PodWork, refusal: str, *, evict: bool) -> tuple[Action, str]:
    """What the drain does with a pod the orchestrator refused: evict it, or leave it (--no-evict, or a pod
    `kubectl drain` would not evict without an override), and why."""
    if not evict:
        return Action.LEAVE, f"{refusal}; left in place (--no-evict)"
    if work.not_evictable is not None:
        return Action.LEAVE, f"{refusal}; not evicted: {work.not_evictable}"
    return Action.EVICT, refusal


def plan_lines(node: str, works: Sequence[PodWork]) -> list[str]:
    rows = [(w.namespace, w.name, w.action.value if w.action else "fail", w.target, w.reason) for w in works]
    counts = _counts(w.action.value if w.action else "fail" for w in works)
    lines = [f"Drain plan for node {node}, dry run: nothing was changed (the node was not cordoned)"]
    lines += table(("NAMESPACE", "POD", "ACTION", "TARGET", "REASON"), rows) if works else ["No pods on the node."]
    lines.append(
        f"Would migrate {counts['migrate']}, evict {counts['evict']}, skip {counts['skip']},"
        f" leave {counts['leave']}; {counts['fail']} cannot be planned"
    )
    return lines


def _counts(values: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(("migrate", "evict", "skip", "leave", "fail", *Outcome), 0)
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def summary_lines(node: str, works: Sequence[PodWork]) -> list[str]:
    counts = _counts(w.outcome.value for w in works if w.outcome is not None)
    lines = [
        f"Node {node}: migrated {counts['migrated']}, evicted {counts['evicted']}, skipped {counts['skipped']},"
        f" failed {counts['failed']}"
        + (f", left in place {counts['left']}" if counts["left"] else "")
        + (f", gone on their own {counts['gone']}" if counts["gone"] else "")
    ]
    for work in works:
        if work.outcome is Outcome.MIGRATED:
            lines.append(f"  migrated  {work.key} -> {work.target} (migration {work.migration_id})")
        elif work.outcome in (Outcome.FAILED, Outcome.LEFT, Outcome.SKIPPED):
            lines.append(f"  {work.outcome.value:<8}  {work.key}: {work.reason}")
    return lines


def remaining_problem(node: str, remaining: Iterable[Mapping[str, Any]], skipped_uids: set[str]) -> str | None:
    """The sentence that says why the drain did not succeed, from the pods still on the node, or None."""
    left = []
    for pod in remaining:
        metadata = pod.get("metadata") or {}
        if metadata.get("uid") in skipped_uids or skip_reason(pod) is not None:
            continue
        left.append(f"{metadata.get('namespace')}/{metadata.get('name')}")
    if not left:
        return None
    names = ", ".join(sorted(left)[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
    return f"node {node} is not drained: {len(left)} pod(s) that are not skipped are still on it: {names}"


def parse_duration(text: str) -> float:
    """kubectl's durations: 90, 90s, 5m, 1h30m, 0 (no limit); in seconds."""
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 90s, 5m, 1h): {text!r}")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)
