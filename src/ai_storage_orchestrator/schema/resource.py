"""The PodMigration resource (spec and the status fields the CRD declares) and the target choice it records.

Field names are the REST view's (snake_case); the aliases are the resource's (camelCase). The CRD's
``openAPIV3Schema`` is generated from ``PodMigration`` (``crd``); the REST document's ``target_choice`` (in the
responses of ``responses``) from ``TargetChoice``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ai_storage_orchestrator.models import DEFAULT_TIMEOUT, TIMEOUT_MAX, TIMEOUT_MIN, Strategy
from ai_storage_orchestrator.schema.names import LABEL_MAX, SUBDOMAIN_MAX

RUNNERS_UP_MAX = 5
REFUSED_MAX = 20
REQUEST_ID_MAX = 128

NodeName = Annotated[str, Field(max_length=SUBDOMAIN_MAX)]
Count = Annotated[int, Field(ge=0)]


class _Record(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class NodeScoreValues(_Record):
    images_present: bool = Field(description="Every image of the target pod is on the node.")
    images_missing: list[str] = Field(description="Images the node would pull.")
    cpu_after: float = Field(description="CPU requests over allocatable after the move.")
    memory_after: float = Field(description="Memory requests over allocatable after the move.")
    allocated_after: float = Field(description="The mean of the two (ranked on).")
    same_workload_pods: int = Field(
        description="Pods of the same workload (controlling owner, or all the pod's labels) there."
    )


class NodeScore(_Record):
    node: NodeName
    score: NodeScoreValues


class RefusedNode(_Record):
    node: NodeName
    reason: str
    check: str
    message: str


class TargetChoice(_Record):
    """How the orchestrator chose the target node of a request that named none."""

    model_config = ConfigDict(title="TargetChoice")

    considered: Count = Field(description="Nodes examined (every node the orchestrator knows).")
    eligible: Count = Field(description="Nodes that passed every fit check.")
    chosen: NodeScore | None
    runners_up: list[NodeScore] = Field(
        max_length=RUNNERS_UP_MAX, description=f"The next best eligible nodes (<= {RUNNERS_UP_MAX})."
    )
    refused: list[RefusedNode] = Field(
        max_length=REFUSED_MAX,
        description=f"Each refused node (by name, at most {REFUSED_MAX}) with its first failed check.",
    )
    refused_total: Count
    ranking: str = Field(description="The order eligible nodes are ranked in.")


# Every spec field but cancelRequested: what was planned and checked is what is done. A target node changed after
# planning would put the pod (or an owner's replacement, captured by nodeName) where no fit check ran.
WRITTEN_ONCE = (
    "podName",
    "sourceNode",
    "targetNode",
    "preservePV",
    "timeoutSeconds",
    "strategy",
    "triggeredBy",
    "requestId",
    "ignorePDB",
    "targetChoice",
)


def _unchanged(field: str) -> str:
    return f"has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field})"


class PodMigrationSpec(_Record):
    """What to move where; written once when the migration is requested (cancelRequested later)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.sourceNode != self.targetNode", "message": "sourceNode and targetNode must differ"},
                {
                    "rule": " && ".join(_unchanged(field) for field in WRITTEN_ONCE),
                    "message": "spec is written once: only cancelRequested may change (a new move is a new record)",
                },
            ]
        }
    )

    pod_name: NodeName
    source_node: NodeName
    target_node: NodeName
    preserve_pv: bool = Field(default=False, alias="preservePV")
    timeout_seconds: int = Field(default=DEFAULT_TIMEOUT, ge=TIMEOUT_MIN, le=TIMEOUT_MAX)
    strategy: Strategy = Strategy.AUTO
    triggered_by: Annotated[str, Field(max_length=LABEL_MAX)] | None = None
    request_id: Annotated[str, Field(max_length=REQUEST_ID_MAX)] | None = None
    cancel_requested: bool | None = None
    # Remove the source pod with a delete, not an eviction: no PodDisruptionBudget applies.
    ignore_pdb: bool | None = Field(default=None, alias="ignorePDB")
    target_choice: TargetChoice | None = Field(
        default=None,
        description=(
            "Written only when the request named no target: how the orchestrator chose targetNode"
            " (controller/planning/choice.py); the REST view shows it as target_choice."
        ),
    )


class ContainerRecord(_Record):
    name: str | None = None
    kind: str | None = None
    state: str | None = None
    action: str | None = None
    reason: str | None = None


class PhaseTransition(_Record):
    phase: str | None = None
    time: datetime | None = None
    message: str | None = None


class FailureRecord(_Record):
    reason: str | None = None
    message: str | None = None


class ScaledOwner(_Record):
    """The count holder a surge scaled (controller/surge.py) and its count before the move."""

    kind: str | None = None
    name: str | None = None
    from_: int | None = Field(default=None, alias="from")


class OwnerRecord(_Record):
    """The moved pod's controlling owner, whose new pod the admission webhook captures (docs/owned-workloads.md)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    uid: str | None = None
    surge: bool | None = Field(default=None, description="make-before-break through one replica more")
    scaled: ScaledOwner | None = None


class PodMigrationStatus(_Record):
    """What the controller reports; it may write more than declared here (unknown fields are kept)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    phase: str | None = None
    message: str | None = None
    strategy: str | None = None
    target_pod: str | None = None
    source_pod_uid: str | None = Field(default=None, alias="sourcePodUID")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    containers: list[ContainerRecord] | None = None
    phase_transitions: list[PhaseTransition] | None = None
    error: FailureRecord | None = None
    owner: OwnerRecord | None = None


class PodMigration(BaseModel):
    """The resource's schema (metadata, apiVersion and kind are the API server's)."""

    spec: PodMigrationSpec
    status: PodMigrationStatus | None = None
