"""Pure migration planning: from raw Kubernetes objects to container decisions, a target pod and pre-flight checks.

No I/O here: the controller fetches the objects and hands them in (see ``validation.plan_migration``).
"""

from ai_storage_orchestrator.controller.planning.analysis import analyse_containers, nothing_to_run
from ai_storage_orchestrator.controller.planning.checks import REASON_PRIORITY, Check
from ai_storage_orchestrator.controller.planning.containers import container_states, is_sidecar
from ai_storage_orchestrator.controller.planning.fit import node_fit_checks, tolerates, untolerated_taints
from ai_storage_orchestrator.controller.planning.naming import target_pod_name
from ai_storage_orchestrator.controller.planning.quantities import (
    container_requests,
    cpu_millicores,
    format_cpu,
    format_memory,
    memory_bytes,
    parse_quantity,
    pod_requests,
)
from ai_storage_orchestrator.controller.planning.strategy import resolve_strategy
from ai_storage_orchestrator.controller.planning.targetpod import build_target_pod, requests_summary
from ai_storage_orchestrator.controller.planning.validation import MigrationPlan, plan_migration
from ai_storage_orchestrator.controller.planning.volumes import (
    CheckpointVolume,
    ClaimInfo,
    StaticVolumeCatalog,
    VolumeCatalog,
    VolumeInfo,
    choose_checkpoint_volume,
    claim_info_from_objects,
    classify_pod_volumes,
    pv_source_kind,
)
from ai_storage_orchestrator.conventions import CHECKPOINT_HOOK_PREFIX, CHECKPOINT_VOLUME_ANNOTATION

__all__ = [
    "CHECKPOINT_HOOK_PREFIX",
    "CHECKPOINT_VOLUME_ANNOTATION",
    "REASON_PRIORITY",
    "Check",
    "CheckpointVolume",
    "ClaimInfo",
    "MigrationPlan",
    "StaticVolumeCatalog",
    "VolumeCatalog",
    "VolumeInfo",
    "analyse_containers",
    "build_target_pod",
    "choose_checkpoint_volume",
    "claim_info_from_objects",
    "classify_pod_volumes",
    "container_requests",
    "container_states",
    "cpu_millicores",
    "format_cpu",
    "format_memory",
    "is_sidecar",
    "memory_bytes",
    "node_fit_checks",
    "nothing_to_run",
    "parse_quantity",
    "plan_migration",
    "pod_requests",
    "pv_source_kind",
    "requests_summary",
    "resolve_strategy",
    "target_pod_name",
    "tolerates",
    "untolerated_taints",
]
