"""Every name the orchestrator reads or writes on Kubernetes objects in the ``ai-storage.io`` domain, in one place.

Annotation, label, finalizer and label-selector keys, the API group and the checkpoint manifest kind are defined here
and only here: other modules import them (``tests/unit/test_conventions.py`` fails on an ``ai-storage.io`` key
written as a string literal anywhere else in ``src``). A core module: stdlib only, importable from every layer,
including the pure ``controller.planning``. Changing a value changes the contract with users and with objects already
in clusters.
"""

from __future__ import annotations

from typing import Final

# The API ----------------------------------------------------------------------------------------------------------
API_GROUP: Final = "ai-storage.io"  # group of the PodMigration CRD (crds/podmigrations.yaml); records, kube.resources
API_VERSION: Final = "v1alpha1"  # its version; records write ``apiVersion: <API_GROUP>/<API_VERSION>``

# Pod annotations users write and we read --------------------------------------------------------------------------
MIGRATE_TO_ANNOTATION: Final = "ai-storage.io/migrate-to"  # user: target node; triggers starts a migration
MIGRATE_ON_EVICT_ANNOTATION: Final = "ai-storage.io/migrate-on-evict"  # user: "true"; admission.eviction reads
PRESERVE_PV_ANNOTATION: Final = "ai-storage.io/preserve-pv"  # user: "true"/"false"; triggers → MigrationRequest
MIGRATION_STRATEGY_ANNOTATION: Final = "ai-storage.io/migration-strategy"  # user: a Strategy value; triggers read
MIGRATION_TIMEOUT_ANNOTATION: Final = "ai-storage.io/migration-timeout-seconds"  # user: seconds; triggers read
CHECKPOINT_HOOK_PREFIX: Final = "ai-storage.io/checkpoint-hook."  # user, + <container>: hook argv; checkpoint, planning
CHECKPOINT_HOOK_TIMEOUT_ANNOTATION: Final = "ai-storage.io/checkpoint-hook-timeout"  # user: seconds; checkpoint reads
CHECKPOINT_ARTIFACTS_PREFIX: Final = "ai-storage.io/checkpoint-artifacts."  # user, + <container>: paths; checkpoint
CHECKPOINT_VOLUME_ANNOTATION: Final = "ai-storage.io/checkpoint-volume"  # user: volume name; planning.volumes reads

# Pod annotations we write -----------------------------------------------------------------------------------------
MIGRATION_ID_ANNOTATION: Final = "ai-storage.io/migration-id"  # triggers/controller on the source, planning on target
MIGRATION_STATUS_ANNOTATION: Final = "ai-storage.io/migration-status"  # triggers/controller on the source pod
SOURCE_POD_ANNOTATION: Final = "ai-storage.io/source-pod"  # planning on the target pod: <namespace>/<name>
SOURCE_NODE_ANNOTATION: Final = "ai-storage.io/source-node"  # planning on the target pod: the source's node
SKIPPED_CONTAINERS_ANNOTATION: Final = "ai-storage.io/skipped-containers"  # planning on target; checkpoint reads
CHECKPOINT_PATH_ANNOTATION: Final = "ai-storage.io/checkpoint-path"  # checkpoint.restoring on target; phases reads
HANDOFF_ANNOTATION: Final = "ai-storage.io/handoff"  # controller.phases on a pre-warmed target: opens its gate
RESTORED_BY_ANNOTATION: Final = "ai-storage.io/restored-by"  # controller.phases: on a source pod recreated in rollback

# PodMigration annotations we write (records.py): what the request said beyond the CRD's spec ----------------------
WARNINGS_ANNOTATION: Final = "ai-storage.io/warnings"  # a JSON array of sentences, e.g. preserve_pv with no volume
FORCE_RESTART_ANNOTATION: Final = "ai-storage.io/force-restart"  # "true" when the request said force_restart

# Labels we write, and the selectors that read them ----------------------------------------------------------------
MIGRATION_ID_LABEL: Final = "ai-storage.io/migration-id"  # planning on target pods, records on PodMigrations
# ... and, beside that label on a target pod, this variable in its containers (planning/marking.py): the proof that
# the move made the pod, which a `patch` of the label onto another pod cannot give (a pod's env is immutable).
MIGRATION_ID_ENV: Final = "AI_STORAGE_MIGRATION_ID"
MIGRATION_POD_LABEL: Final = "ai-storage.io/pod"  # records on PodMigrations: the source pod's name (at most 63 chars)
COMPARE_TEST_LABEL: Final = "ai-storage.io/compare-test"  # compare.scenario on its objects; its clean-up selects them
WEBHOOKS_LABEL: Final = "ai-storage.io/webhooks"  # admission.registration on configurations it registered itself

# Namespace opt-in: an admin labels a Namespace NAMESPACE_OPT_IN_LABEL=NAMESPACE_OPT_IN_VALUE to allow migrating its
# pods; the controller reads it (label selector NAMESPACE_OPT_IN_SELECTOR). Defined for the controller's upcoming use.
NAMESPACE_OPT_IN_LABEL: Final = "ai-storage.io/migrations"  # admin on Namespaces; controller reads
NAMESPACE_OPT_IN_VALUE: Final = "enabled"  # the only value that opts in
NAMESPACE_OPT_IN_SELECTOR: Final = "ai-storage.io/migrations=enabled"  # = f"{LABEL}={VALUE}" (kept greppable)

# Finalizers -------------------------------------------------------------------------------------------------------
# The controller's finalizer: added by the controller while a migration still has clean-up to do on the object, and
# removed by it (only) when that is done. Defined for the controller's upcoming use.
MIGRATION_FINALIZER: Final = "ai-storage.io/migration-protection"

# Other identifiers ------------------------------------------------------------------------------------------------
CHECKPOINT_MANIFEST_KIND: Final = "ai-storage.io/checkpoint"  # "kind" of manifest.json; checkpoint.manifest
# Pod annotations for simulated (kwok) nodes, read by tests/cluster/kwok-stages.yaml: compare.workload writes them on
# its simulated pod so those containers complete after that duration.
SIM_COMPLETE_CONTAINERS_ANNOTATION: Final = "sim.ai-storage.io/complete-containers"  # comma-separated names
SIM_COMPLETE_AFTER_ANNOTATION: Final = "sim.ai-storage.io/complete-after"  # a Go duration, e.g. "45s"
