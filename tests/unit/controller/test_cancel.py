"""A cancel is checked on the record it marks: the service's phase check and its write must not disagree."""

from __future__ import annotations

from typing import cast

import pytest

from ai_storage_orchestrator.controller.service import MigrationService
from ai_storage_orchestrator.errors import Conflict
from ai_storage_orchestrator.kube.resources import POD_MIGRATIONS, KubeApi
from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import Phase
from tests.unit.controller.fakes import NAMESPACE, World

pytestmark = pytest.mark.unit


def _service(world: World) -> MigrationService:
    api = cast(KubeApi, world.api)  # the cancel only gets and patches, which the fake does as the API server would
    return MigrationService(api=api, state=world.state, metrics=Metrics(), planner=world.controller.planner)


async def _moves_on_unseen(world: World, status: dict[str, str]) -> None:
    """The controller writes the record; the service's cache has not heard of it yet."""
    world.api.reflect = False
    await world.api.merge_patch(POD_MIGRATIONS, "m1", {"status": status}, namespace=NAMESPACE)
    world.api.reflect = True


def _cancel_marked(world: World) -> bool:
    return bool(world.api.objects[(POD_MIGRATIONS.plural, NAMESPACE, "m1")]["spec"].get("cancelRequested"))


async def test_a_cancel_checked_on_a_stale_phase_is_refused_once_the_source_removal_began() -> None:
    world = World()
    world.migration(phase=Phase.WAITING_FOR_TARGET.value, strategy="make-before-break")
    await _moves_on_unseen(world, {"phase": Phase.REMOVING_SOURCE.value})
    with pytest.raises(Conflict) as refused:
        await _service(world).cancel("m1")
    assert refused.value.reason == "migration_finishing"
    assert not _cancel_marked(world), "no 202 for a cancel the move can no longer honour"


async def test_a_cancel_on_a_record_changed_meanwhile_is_written_on_the_new_version() -> None:
    world = World()
    world.migration(phase=Phase.WAITING_FOR_TARGET.value, strategy="make-before-break")
    await _moves_on_unseen(world, {"message": "waiting for the kubelet"})
    answer = await _service(world).cancel("m1")
    assert answer["cancel_requested"] is True
    assert _cancel_marked(world)
