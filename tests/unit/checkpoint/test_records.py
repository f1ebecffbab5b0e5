"""The spooled record of what a checkpoint copied: aggregates in memory, records spilled past the budget, read back
one at a time as manifest entries and checksum lines."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from ai_storage_orchestrator.checkpoint.checksums import checksum_line
from ai_storage_orchestrator.checkpoint.errors import CheckpointError
from ai_storage_orchestrator.checkpoint.records import FileRecords
from ai_storage_orchestrator.checkpoint.tarstream import TarEntry, TarStreamError, TarStreamLimitExceeded

SUM = "ab" * 32


def test_sections_give_back_manifest_entries_and_checksum_lines() -> None:
    with FileRecords() as records:
        scratch = records.begin("trainer", "/work/scratch")
        for entry in [
            TarEntry("./scratch", "directory"),
            TarEntry("./scratch/a.bin", "file", 3, SUM),
            TarEntry("./scratch/latest", "symlink", link="a.bin"),
        ]:
            records.add(scratch, entry)
        single = records.begin("monitor", "/state.json")
        records.add(single, TarEntry("./state.json", "file", 5, "cd" * 32))
        files = [(f.container, f.artifact, f.path, f.kind, f.stored, f.link) for f in records.all_files()]
        assert files == [
            ("trainer", "/work/scratch", "/work/scratch", "directory", "artifacts/trainer/work/scratch", None),
            ("trainer", "/work/scratch", "/work/scratch/a.bin", "file", "artifacts/trainer/work/scratch/a.bin", None),
            (
                "trainer",
                "/work/scratch",
                "/work/scratch/latest",
                "symlink",
                "artifacts/trainer/work/scratch/latest",
                "a.bin",
            ),
            ("monitor", "/state.json", "/state.json", "file", "artifacts/monitor/state.json", None),
        ]
        assert list(records.checksum_lines(scratch)) == [f"{SUM}  scratch/a.bin\n".encode()]
        assert list(records.checksum_lines(single)) == [f"{'cd' * 32}  state.json\n".encode()]
        assert (scratch.file_count, scratch.file_bytes, scratch.entry_count) == (1, 3, 3)
        assert (records.file_count, records.file_bytes, records.entry_count) == (2, 8, 4)
        listed = b"".join(records.checksum_lines(scratch))
        assert (scratch.list_size, scratch.list_sha256) == (len(listed), hashlib.sha256(listed).hexdigest())
        assert scratch.list_path.startswith("checksums/trainer/")
        assert scratch.list_path.endswith(".sha256")
        assert scratch.list_path != records.begin("trainer", "/work/other").list_path


def test_records_spill_to_a_temporary_file_beyond_the_memory_budget(tmp_path: Path) -> None:
    with FileRecords(memory=64 * 1024, directory=str(tmp_path)) as records:
        section = records.begin("trainer", "/data")
        for index in range(5_000):
            records.add(section, TarEntry(f"./data/{index:06d}-{'n' * 40}", "file", index, SUM))
        assert records.spilled
        sizes = [f.size for f in records.files(section)]
        assert sizes == list(range(5_000))
        readers = zip(records.files(section), records.checksum_lines(section), strict=True)
        assert all(line.endswith(f"{f.path[1:]}\n".encode()) for f, line in readers), "two readers interleave"


def test_a_spool_that_cannot_spill_is_a_clear_failure(tmp_path: Path) -> None:
    with FileRecords(memory=1024, directory=str(tmp_path / "missing")) as records:
        section = records.begin("trainer", "/data")
        for index in range(8):  # 8 records of about 100 bytes: within the 1024 bytes of memory
            records.add(section, TarEntry(f"./data/{index}", "file", 1, SUM))
        with pytest.raises(CheckpointError) as failure:
            records.add(section, TarEntry("./data/" + "s" * 400, "file", 1, SUM))  # past 1024: spills
    assert failure.value.reason == "checkpoint_too_large"
    assert "writable temporary directory" in failure.value.message


def test_the_entry_cap_counts_every_artifact_of_the_checkpoint() -> None:
    with FileRecords(max_entries=3) as records:
        first, second = records.begin("a", "/x"), records.begin("b", "/y")
        records.add(first, TarEntry("./x", "directory"))
        records.add(first, TarEntry("./x/f", "file", 1, SUM))
        records.add(second, TarEntry("./y", "file", 1, SUM))
        with pytest.raises(TarStreamLimitExceeded, match="more than 3 entries"):
            records.add(second, TarEntry("./y2", "file", 1, SUM))


@pytest.mark.parametrize("name", ["./other/f", "./x/../../etc/passwd", "/etc/passwd", "./xy"])
def test_members_outside_the_artifact_are_refused(name: str) -> None:
    with FileRecords() as records, pytest.raises(TarStreamError, match="outside"):
        records.add(records.begin("a", "/data/x"), TarEntry(name, "file", 1, SUM))


def test_checksum_lines_are_what_sha256sum_checks(tmp_path: Path) -> None:
    names = ["plain.bin", "two  spaces", "back\\slash", "new\nline", "ünï"]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    listing = tmp_path / "list"
    listing.write_bytes(b"".join(checksum_line(hashlib.sha256(n.encode()).hexdigest(), n) for n in names))
    done = subprocess.run(["sha256sum", "-c", str(listing)], cwd=tmp_path, capture_output=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_names_as_tar_may_write_them() -> None:
    """``./x/f``, ``x/f`` and ``/x/f`` name the same member; the archive's own ``.`` entry is no member."""
    with FileRecords() as records:
        section = records.begin("c", "/data/x")
        for name in [".", "./x", "x/a", "/x/b", "./x/sub/"]:
            records.add(section, TarEntry(name, "directory" if name.endswith(("x", "/", ".")) else "file", 0, None))
        assert [f.path for f in records.files(section)] == ["/data/x", "/data/x/a", "/data/x/b", "/data/x/sub"]


@pytest.mark.parametrize("name", ["./x//f", "./x/./f", "./x/../x/f"])
def test_members_with_empty_or_dot_components_are_refused(name: str) -> None:
    with FileRecords() as records, pytest.raises(TarStreamError, match="outside"):
        records.add(records.begin("a", "/data/x"), TarEntry(name, "file", 1, SUM))


def test_a_section_without_members_reads_back_empty() -> None:
    with FileRecords() as records:
        first = records.begin("a", "/x")
        records.add(first, TarEntry(".", "directory"))
        second = records.begin("b", "/y")
        records.add(second, TarEntry("./y", "file", 2, SUM))
        assert list(records.files(first)) == []
        assert list(records.checksum_lines(first)) == []
        assert [f.path for f in records.all_files()] == ["/y"]


def test_every_file_of_a_section_adds_up_and_only_files_are_listed() -> None:
    with FileRecords() as records:
        section = records.begin("a", "/x")
        records.add(section, TarEntry("./x/a", "file", 3, SUM))
        records.add(section, TarEntry("./x/b", "file", 4, SUM))
        records.add(section, TarEntry("./x/h", "hardlink", 0, None, "x/a"))
        assert (section.file_count, section.file_bytes, section.entry_count) == (2, 7, 3)
        assert len(list(records.checksum_lines(section))) == 2


def test_the_entry_cap_says_which_cap() -> None:
    with FileRecords(max_entries=1) as records:
        section = records.begin("a", "/x")
        records.add(section, TarEntry("./x", "directory"))
        with pytest.raises(TarStreamLimitExceeded) as caught:
            records.add(section, TarEntry("./x/f", "file", 1, SUM))
    assert (caught.value.limit, caught.value.allowed) == ("entries", 1)
    assert str(caught.value) == "the checkpoint's artifacts hold more than 1 entries"


def test_a_spool_that_cannot_spill_says_what_to_do(tmp_path: Path) -> None:
    with (
        FileRecords(memory=100, directory=str(tmp_path / "missing")) as records,
        pytest.raises(CheckpointError) as failure,
    ):
        records.add(records.begin("a", "/x"), TarEntry("./x/" + "s" * 200, "file", 1, SUM))
    assert failure.value.message.startswith(
        "the list of the checkpoint's files outgrew the 100 bytes kept in memory and could not be spooled to a"
        " temporary file ("
    )
    assert failure.value.message.endswith(
        "); give the orchestrator a writable temporary directory (an emptyDir at /tmp, or $TMPDIR)"
    )


@pytest.mark.parametrize(
    ("artifact", "name", "path"),
    [
        ("/data/x", "./x/MAX", "/data/x/MAX"),
        ("/data/x", "./x/dir/", "/data/x/dir"),
        ("/data/Xdir", "Xdir/f", "/data/Xdir/f"),
        ("/data/Xdir", "/Xdir/f", "/data/Xdir/f"),
    ],
)
def test_names_keep_every_character_of_their_own(artifact: str, name: str, path: str) -> None:
    with FileRecords() as records:
        section = records.begin("c", artifact)
        records.add(section, TarEntry(name, "file", 1, SUM))
        assert [f.path for f in records.files(section)] == [path]


def test_a_member_outside_is_quoted_at_most_200_characters_long() -> None:
    name = "./other/" + "n" * 300
    with FileRecords() as records, pytest.raises(TarStreamError) as caught:
        records.add(records.begin("a", "/data/x"), TarEntry(name, "file", 1, SUM))
    assert str(caught.value) == f"the stream of /data/x holds a member outside it: {name[:200]!r}"


def test_the_file_list_is_capped_in_bytes_whatever_its_entry_count() -> None:
    """Long names that are not UTF-8 take six bytes of JSON per byte: the cap is on what is written, not counted."""
    long_name = "./x/" + "\udcff" * 4000
    with FileRecords(max_bytes=100_000) as records:
        section = records.begin("a", "/x")
        records.add(section, TarEntry("./x", "directory"))
        entry = TarEntry(long_name, "symlink", link="\udcfe" * 4000)
        for _ in range(2):
            records.add(section, entry)  # 2 x ~48 KB
        with pytest.raises(TarStreamLimitExceeded, match="outgrew 100,000 bytes") as refused:
            records.add(section, entry)
    assert refused.value.limit == "list_bytes"
