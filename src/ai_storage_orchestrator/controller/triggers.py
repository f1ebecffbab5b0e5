"""Annotation-triggered migrations: `ai-storage.io/migrate-to: <node>` on a pod asks for a migration
(`ai-storage.io/migrate-to: auto`: to a node the orchestrator chooses, controller/planning/choice.py).

The trigger validates like the REST API (same service). The pod remembers what happened in its own annotations, so
a trigger never fires twice, also across restarts:
  ai-storage.io/migration-id      the migration it started
  ai-storage.io/migration-status  Pending/Running/…, or `Refused (<node>): <reason>: <message>`
Removing `migrate-to` while the migration has not touched any pod yet cancels it. Only the leader acts.

Only namespaces that opted in (label `ai-storage.io/migrations: enabled`) may trigger migrations by annotation; the
others are refused once (`namespace_not_opted_in`), like any refusal. The label is read with one GET of the pod's
namespace per trigger, not from a watch cache: triggers are rare (a refusal is remembered, a started migration too),
a GET is always current (a namespace labelled a second ago is not refused on a stale cache), it needs only `get` on
that one namespace (single-namespace mode with a Role works), and the orchestrator keeps no copy of every namespace.
Who may write `migrate-to` and the checkpoint annotations is enforced by the ValidatingAdmissionPolicy in
`k8s/admission` (the API server knows the author; the orchestrator does not). Without it anyone who may patch a pod
could make the orchestrator move it, or exec a hook in it, with the orchestrator's rights; so the trigger fails
closed: before acting it GETs the policy's binding by its shipped name (and the policy the binding names), and when
either is missing, or the binding does not deny, the trigger is refused once (`admission_policy_missing`). Like the
namespace label, this is read per trigger, never cached: installing the policy takes effect at the next changed
annotation, removing it at the next trigger. `--trust-annotations` (no binding name) skips the check, for clusters
that enforce the same rule by other means. REST requests are not affected."""

from __future__ import annotations

from typing import Any

import structlog

from ai_storage_orchestrator.controller.reactor import Reactor
from ai_storage_orchestrator.controller.reconciler import Result
from ai_storage_orchestrator.controller.records import phase_of
from ai_storage_orchestrator.controller.service import MigrationService
from ai_storage_orchestrator.conventions import (
    MIGRATE_TO_ANNOTATION,
    MIGRATION_ID_ANNOTATION,
    MIGRATION_STATUS_ANNOTATION,
    MIGRATION_STRATEGY_ANNOTATION,
    MIGRATION_TIMEOUT_ANNOTATION,
    NAMESPACE_OPT_IN_LABEL,
    NAMESPACE_OPT_IN_SELECTOR,
    NAMESPACE_OPT_IN_VALUE,
    PRESERVE_PV_ANNOTATION,
)
from ai_storage_orchestrator.errors import Conflict, OrchestratorError, TemporaryError
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.events import EventRecorder
from ai_storage_orchestrator.kube.resources import (
    NAMESPACES,
    PODS,
    VALIDATING_ADMISSION_POLICIES,
    VALIDATING_ADMISSION_POLICY_BINDINGS,
    KubeApi,
    Resource,
)
from ai_storage_orchestrator.models import AUTO_TARGET, TIMEOUT_MAX, TIMEOUT_MIN, MigrationRequest, Phase, Strategy
from ai_storage_orchestrator.watchers.state import ClusterState
from ai_storage_orchestrator.watchers.store import JSON, object_key

log = structlog.get_logger(__name__)

# The old names, still imported by others (tests/integration); the keys are defined in conventions.
MIGRATE_TO = MIGRATE_TO_ANNOTATION
MIGRATION_ID = MIGRATION_ID_ANNOTATION
MIGRATION_STATUS = MIGRATION_STATUS_ANNOTATION

NOT_OPTED_IN = "namespace_not_opted_in"
ADMISSION_POLICY_MISSING = "admission_policy_missing"

# Phases in which no pod has been touched yet: removing the annotation still cancels cleanly.
_CANCELLABLE_BY_ANNOTATION = frozenset({Phase.PENDING, Phase.VALIDATING, Phase.CHECKPOINTING})


def _annotations(pod: JSON | None) -> dict[str, str]:
    return dict(((pod or {}).get("metadata") or {}).get("annotations") or {})


def _timeout(annotations: dict[str, str]) -> int:
    seconds = int(annotations.get(MIGRATION_TIMEOUT_ANNOTATION, "600"))
    if not TIMEOUT_MIN <= seconds <= TIMEOUT_MAX:
        raise ValueError(
            f"{MIGRATION_TIMEOUT_ANNOTATION} must be between {TIMEOUT_MIN} and {TIMEOUT_MAX} seconds (got {seconds})"
        )
    return seconds


def answers(migration: JSON, node: str) -> bool:
    """`migration` is what `migrate-to: <node>` asked for: that node, or for `auto` a node the orchestrator chose."""
    spec = migration.get("spec") or {}
    if node == AUTO_TARGET:
        return "targetChoice" in spec
    return bool(spec.get("targetNode") == node)


def refused_marker(node: str) -> str:
    return f"Refused ({node})"


class AnnotationTrigger:
    def __init__(
        self,
        *,
        api: KubeApi,
        state: ClusterState,
        service: MigrationService,
        recorder: EventRecorder,
        admission_binding: str | None = None,
    ) -> None:
        """`admission_binding`: the ValidatingAdmissionPolicyBinding that must be installed for a trigger to act;
        None trusts annotations without it (the runtime passes Settings.admission_policy_binding unless
        --trust-annotations)."""
        self.api = api
        self.state = state
        self.service = service
        self.recorder = recorder
        self.admission_binding = admission_binding
        self.reactor = Reactor(self.reconcile, workers=1, name="annotation-trigger")
        state.pods.add_listener(self._on_pod)

    def _on_pod(self, _type: str, old: JSON | None, new: JSON | None) -> None:
        if MIGRATE_TO_ANNOTATION in _annotations(new) or MIGRATE_TO_ANNOTATION in _annotations(old):
            self.reactor.enqueue(object_key(new or old or {}))

    async def run(self) -> None:
        """One term of leadership."""
        await self.reactor.run(
            lambda: [
                object_key(pod)
                for pod in self.state.pods
                if MIGRATE_TO_ANNOTATION in _annotations(pod) or MIGRATION_ID_ANNOTATION in _annotations(pod)
            ]
        )

    def _migration_of(self, pod: JSON, migration_id: str | None) -> JSON | None:
        """The migration a pod's annotation names, looked up in the pod's own namespace only: an annotation is
        written by whoever may patch the pod, and must never reach a migration of another namespace."""
        if not migration_id:
            return None
        return self.state.migration(pod["metadata"]["namespace"], migration_id)

    async def reconcile(self, key: str) -> Result:
        pod = self.state.pods.get(key)
        if pod is None:
            return Result.done()
        annotations = _annotations(pod)
        node = annotations.get(MIGRATE_TO_ANNOTATION)
        migration_id = annotations.get(MIGRATION_ID_ANNOTATION)
        migration = self._migration_of(pod, migration_id)
        if node is None:
            await self._cancel_if_untouched(migration)
            return Result.done()
        if migration is not None and answers(migration, node):
            return Result.done()  # this request was already turned into a migration
        if annotations.get(MIGRATION_STATUS_ANNOTATION, "").startswith(refused_marker(node)):
            return Result.done()  # refused before; changing the annotation asks again
        await self._start(pod, node, annotations)
        return Result.done()

    async def _start(self, pod: JSON, node: str, annotations: dict[str, str]) -> None:
        metadata = pod["metadata"]
        unguarded = await self.admission_policy_refusal()
        if unguarded is not None:
            await self._refuse(pod, node, ADMISSION_POLICY_MISSING, unguarded)
            return
        not_opted_in = await self._opt_in_refusal(metadata["namespace"])
        if not_opted_in is not None:
            await self._refuse(pod, node, NOT_OPTED_IN, not_opted_in)
            return
        try:
            request = MigrationRequest(
                pod_name=metadata["name"],
                pod_namespace=metadata["namespace"],
                source_node=(pod.get("spec") or {}).get("nodeName") or "",
                target_node=node,
                preserve_pv=annotations.get(PRESERVE_PV_ANNOTATION, "false").lower() == "true",
                strategy=Strategy(annotations.get(MIGRATION_STRATEGY_ANNOTATION, Strategy.AUTO.value)),
                timeout_seconds=_timeout(annotations),
                triggered_by="annotation",
            )
        except ValueError as error:
            await self._refuse(pod, node, "invalid_annotation", f"invalid migration annotations: {error}")
            return
        try:
            created = await self.service.submit(request)
        except Conflict as error:
            adopted = self._adoptable(error, node)
            if adopted is None:
                await self._refuse(pod, node, error.reason, error.message)
                return
            created = {"migration_id": adopted, "status": "pending"}
        except TemporaryError:
            raise
        except OrchestratorError as error:
            await self._refuse(pod, node, error.reason, error.message)
            return
        log.info(
            "trigger.started",
            pod=metadata["name"],
            namespace=metadata["namespace"],
            migration_id=created["migration_id"],
        )
        await self._annotate(
            pod, {MIGRATION_ID_ANNOTATION: created["migration_id"], MIGRATION_STATUS_ANNOTATION: "Pending"}
        )

    async def admission_policy_refusal(self) -> str | None:
        """Why annotations may not be trusted now (the admission policy that checks their author is not in force), or
        None. A missing binding or policy, or one the orchestrator may not read, refuses; an answer that is neither
        (a connection error, a 5xx) raises: the reconcile is retried."""
        name = self.admission_binding
        if name is None:
            return None
        fix = (
            "install k8s/admission (kubectl apply -k k8s/admission), or run the orchestrator with --trust-annotations"
            " where the cluster enforces the same rule by other means; the REST API is not affected"
        )
        unguarded = (
            "without an enforcing policy anyone who may patch a pod could make the orchestrator move it or run hooks in"
            " it with the orchestrator's rights"
        )
        binding = await self._admission_object(VALIDATING_ADMISSION_POLICY_BINDINGS, name)
        if isinstance(binding, str):
            return f"{binding}: {unguarded}; {fix}"
        spec = binding.get("spec") or {}
        actions = list(spec.get("validationActions") or [])
        if "Deny" not in actions:
            return (
                f"ValidatingAdmissionPolicyBinding {name} does not deny (validationActions {actions}): {unguarded};"
                f" {fix}"
            )
        policy = await self._admission_object(VALIDATING_ADMISSION_POLICIES, str(spec.get("policyName") or ""))
        if isinstance(policy, str):
            return f"{policy} (named by binding {name}): {unguarded}; {fix}"
        return None

    async def _admission_object(self, resource: Resource, name: str) -> JSON | str:
        """The object, or a sentence saying why it is not there for the orchestrator."""
        if not name:
            return f"no {resource.kind} is named"
        try:
            found: JSON = await self.api.get(resource, name)
        except KubeApiError as error:
            if error.not_found:
                return f"{resource.kind} {name} is not installed"
            if error.status == 403:
                return (
                    f"the orchestrator may not read {resource.kind} {name} (grant it get on {resource.plural} with"
                    f" resourceNames [{name}]), so it cannot tell whether it is installed"
                )
            raise
        return found

    async def _opt_in_refusal(self, namespace: str) -> str | None:
        """Why `namespace` may not trigger migrations by annotation, or None when it opted in. An answer other than
        the namespace itself or a refusal to show it (a connection error, a 5xx) raises: the reconcile is retried."""
        opt_in = NAMESPACE_OPT_IN_SELECTOR
        try:
            found = await self.api.get(NAMESPACES, namespace)
        except KubeApiError as error:
            if error.status == 403:
                return (
                    f"the orchestrator may not read namespace {namespace} (grant it get on namespaces), so it cannot"
                    f" tell whether the namespace opted in with label {opt_in}"
                )
            if error.not_found:
                return f"namespace {namespace} does not exist"
            raise
        labels = (found.get("metadata") or {}).get("labels") or {}
        if labels.get(NAMESPACE_OPT_IN_LABEL) == NAMESPACE_OPT_IN_VALUE:
            return None
        return (
            f"namespace {namespace} has not opted in to annotation-triggered migrations: an administrator labels it"
            f" {opt_in} (the REST API is not affected)"
        )

    def _adoptable(self, error: Conflict, node: str) -> str | None:
        """A migration this trigger already created before a crash (same pod, same target, from an annotation)."""
        other_id = error.details.get("migration_id") if error.reason == "migration_in_progress" else None
        other = self.state.find_migration(str(other_id)) if other_id else None  # same pod: same namespace
        spec = (other or {}).get("spec") or {}
        if other and spec.get("triggeredBy") == "annotation" and answers(other, node):
            return str(other_id)
        return None

    async def _refuse(self, pod: JSON, node: str, reason: str, message: str) -> None:
        log.info("trigger.refused", pod=pod["metadata"]["name"], reason=reason, message=message)
        self.recorder.record(pod, reason="MigrationRefused", message=f"{reason}: {message}", warning=True)
        await self._annotate(pod, {MIGRATION_STATUS_ANNOTATION: f"{refused_marker(node)}: {reason}: {message}"[:1024]})

    async def _cancel_if_untouched(self, migration: JSON | None) -> None:
        if migration is None or phase_of(migration) not in _CANCELLABLE_BY_ANNOTATION:
            return
        if (migration.get("spec") or {}).get("triggeredBy") != "annotation":
            return
        try:
            await self.service.cancel(migration["metadata"]["name"], namespace=migration["metadata"]["namespace"])
            log.info("trigger.cancelled", migration_id=migration["metadata"]["name"])
        except OrchestratorError as error:
            log.info("trigger.cancel_refused", migration_id=migration["metadata"]["name"], reason=error.reason)

    async def _annotate(self, pod: JSON, annotations: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        try:
            updated = await self.api.merge_patch(
                PODS, metadata["name"], {"metadata": {"annotations": annotations}}, namespace=metadata["namespace"]
            )
        except KubeApiError as error:
            if error.not_found:
                return
            raise
        self.state.pods.write_through(updated)
