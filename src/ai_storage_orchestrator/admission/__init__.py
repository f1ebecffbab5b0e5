"""Admission webhooks: the orchestrator captures an owner's replacement pod (mutating, pod CREATE) and turns the
eviction of an opted-in pod into a migration (validating, pods/eviction CREATE)."""
