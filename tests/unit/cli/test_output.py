"""Rendering helpers of the client commands."""

from __future__ import annotations

import datetime as dt

import pytest

from ai_storage_orchestrator.cli import output
from tests.unit.cli.conftest import migration

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("seconds", "age"),
    [
        (-3, "0s"),
        (45, "45s"),
        (119, "119s"),
        (200, "3m20s"),
        (300, "5m"),
        (42 * 60 + 5, "42m"),
        (5 * 3600 + 10 * 60, "5h10m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (12 * 86400 + 5, "12d"),
    ],
)
def test_human_age_like_kubectl(seconds: float, age: str) -> None:
    assert output.human_age(seconds) == age


def test_age_of_a_timestamp() -> None:
    now = dt.datetime(2024, 5, 1, 10, 5, 0, tzinfo=dt.UTC)
    assert output.age_of("2024-05-01T10:00:00Z", now) == "5m"
    assert output.age_of("2024-05-01T10:04:30.250000+00:00", now) == "29s"
    assert output.age_of(None, now) == "-"
    assert output.age_of("yesterday", now) == "-"


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (True, "-"), (0.25, "0.2s"), (12.5, "12.5s"), (125, "2m05s"), (3725.9, "1h02m")],
)
def test_format_duration(value: object, text: str) -> None:
    assert output.format_duration(value) == text


def test_quantities() -> None:
    assert [output.format_cpu(v) for v in (2000, 1500, 0, None)] == ["2", "1500m", "0", "-"]
    sizes = (4 << 30, 1536 << 20, 512, 3 << 40, None)
    assert [output.format_memory(v) for v in sizes] == ["4Gi", "1.5Gi", "512", "3Ti", "-"]


def test_table_pads_columns_and_flattens_cells() -> None:
    assert output.table(("A", "LONGER"), [("x", None), ("wide value", "two\nlines")]) == [
        "A            LONGER",
        "x            -",
        "wide value   two lines",
    ]


def test_list_lines_ages_from_now() -> None:
    now = dt.datetime(2024, 5, 1, 14, 0, 0, tzinfo=dt.UTC)
    header, row = output.list_lines([migration("Validating")], now=now)
    assert row.split() == ["0123456789ab", "ml", "trainer", "node-a", "node-b", "running", "Validating", "4h"]
    assert header.split()[-1] == "AGE"


def test_migration_lines_of_a_new_migration() -> None:
    lines = output.migration_lines(migration("Pending", "waiting for the controller"))
    assert "New pod:      -" in lines
    assert "Duration:     -" in lines
    assert lines[-2:] == ["Containers:", "  (none reported yet)"]


def test_checkpoint_and_cancel_request_are_shown() -> None:
    shown = migration(
        "Checkpointing",
        checkpoint={"volume": {"volume": "shared", "mount_path": "/data"}, "saved": False, "note": "no artifacts"},
    )
    shown["cancel_requested"] = True
    lines = output.migration_lines(shown)
    assert "Checkpoint:   volume shared at /data; nothing saved; note: no artifacts" in lines
    assert "Cancel:       requested" in lines


def test_one_page_prints_as_the_whole_list() -> None:
    now = dt.datetime(2024, 5, 1, 10, 5, 0, tzinfo=dt.UTC)
    items = [migration("Pending", migration_id="bbbbbbbbbbbb"), migration("Completed")]
    pages = output.ListPages(now=now)
    assert pages.lines(items) + pages.closing_lines() == output.list_lines(items, now=now)


def test_pages_share_one_header_and_columns_only_widen() -> None:
    now = dt.datetime(2024, 5, 1, 10, 5, 0, tzinfo=dt.UTC)
    pages = output.ListPages(now=now)
    first = pages.lines([migration("Pending")])
    wide = {**migration("WaitingForTarget"), "pod_name": "a-much-longer-pod-name"}
    second = pages.lines([wide])
    third = pages.lines([migration("Completed")])
    assert pages.lines([]) == []
    assert pages.closing_lines() == []
    assert first[0].split() == list(output.LIST_HEADERS)
    assert len(first) == 2
    assert (len(second), len(third)) == (1, 1), "no header after the first page"
    # The wide pod name pushed SOURCE to the right for the pages after it, never back.
    source_at = [line.index("node-a") for line in (first[1], second[0], third[0])]
    assert source_at[0] < source_at[1] == source_at[2]


def test_no_page_with_rows_prints_the_empty_message() -> None:
    pages = output.ListPages()
    assert pages.lines([]) == []
    assert pages.closing_lines() == ["No migrations found."]
