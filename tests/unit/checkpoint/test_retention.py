"""Retention: which checkpoint directories of one workload are deleted."""

from __future__ import annotations

from ai_storage_orchestrator.checkpoint.retention import select_for_deletion


def decide(names: list[str], **kwargs: object) -> tuple[list[str], list[str]]:
    options: dict[str, object] = {
        "complete": set(names),
        "current": names[0],
        "phases": {},
        "in_use": set(),
        "retention": 3,
        "keep_failed": False,
    }
    options.update(kwargs)
    decision = select_for_deletion(newest_first=names, **options)  # type: ignore[arg-type]
    return decision.keep, decision.delete


def test_keeps_the_newest_n_including_the_current() -> None:
    names = ["m5", "m4", "m3", "m2", "m1"]
    assert decide(names) == (["m5", "m4", "m3"], ["m2", "m1"])
    assert decide(names, retention=1) == (["m5"], ["m4", "m3", "m2", "m1"])
    assert decide(names, retention=0) == (["m5"], ["m4", "m3", "m2", "m1"]), "the current one always stays"


def test_n_plus_two_migrations_leave_n() -> None:
    kept: list[str] = []
    on_volume: list[str] = []
    for number in range(1, 6):  # N=3, N+2 migrations
        on_volume.insert(0, f"m{number}")
        kept, deleted = decide(list(on_volume), current=f"m{number}")
        on_volume = [n for n in on_volume if n not in deleted]
    assert on_volume == kept == ["m5", "m4", "m3"]


def test_failed_cancelled_partial_active_and_in_use() -> None:
    names = ["cur", "act", "fail", "canc", "part", "use", "ok1", "ok2", "ok3"]
    phases = {"act": "WaitingForTarget", "fail": "Failed", "canc": "Cancelled", "use": "Completed", "ok1": "Completed"}
    keep, delete = decide(names, complete=set(names) - {"part", "act"}, phases=phases, in_use={"use"})
    # cur + use count towards 3, so one more completed (ok1) stays
    assert keep == ["cur", "act", "use", "ok1"]
    assert delete == ["fail", "canc", "part", "ok2", "ok3"]


def test_keep_failed() -> None:
    keep, delete = decide(["cur", "fail", "canc"], phases={"fail": "Failed", "canc": "Cancelled"}, keep_failed=True)
    assert keep == ["cur", "fail", "canc"]
    assert delete == []


def test_unknown_entries_are_left_alone() -> None:
    keep, delete = decide(["cur", "lost+found", ".hidden", "UPPER", "m1"], retention=1)
    assert keep == ["cur"]
    assert delete == ["m1"]


def test_in_use_checkpoint_of_a_failed_migration_stays_without_counting() -> None:
    keep, delete = decide(["cur", "rolled", "ok1", "ok2"], phases={"rolled": "Failed"}, in_use={"rolled"}, retention=2)
    assert keep == ["cur", "rolled", "ok1"]
    assert delete == ["ok2"]
