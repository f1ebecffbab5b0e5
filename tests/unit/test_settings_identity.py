"""The leader-election identity must be unique per process: two replicas that share a host name and a pid (hostNetwork
pods on one machine, each its namespace's pid 1) once both believed they held the lease and checkpointed the same pod
at once (found by `make e2e` with the orchestrator deployed as its Deployment)."""

from __future__ import annotations

import socket

import pytest

from ai_storage_orchestrator.settings import Settings, default_identity

pytestmark = pytest.mark.unit


def test_two_processes_with_the_same_pod_name_get_different_identities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "ai-storage-orchestrator-978b7fb6b-75xrb")
    first, second = Settings().identity, Settings().identity
    assert first != second
    assert first.startswith("ai-storage-orchestrator-978b7fb6b-75xrb_")


def test_without_a_pod_name_the_host_name_leads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    identity = default_identity()
    name, _, suffix = identity.rpartition("_")
    assert name == socket.gethostname()
    assert len(suffix) == 36  # a UUID
