"""Files streamed onto the volume as a tar archive generated member by member."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from ai_storage_orchestrator.checkpoint.archive import Member, archive_chunks, batched, write_archive
from ai_storage_orchestrator.checkpoint.errors import CheckpointError
from ai_storage_orchestrator.checkpoint.tarstream import RECORD
from tests.unit.checkpoint.fakes import LocalExec


def test_archive_holds_directories_and_files_and_is_record_padded() -> None:
    members = [
        Member("checksums"),
        Member("checksums/trainer"),
        Member("checksums/trainer/a.sha256", 10, lambda: [b"0123", b"456789"]),
        Member("manifest.json.tmp", 0, list),
    ]
    data = b"".join(archive_chunks(members, mtime=1_700_000_000))
    assert len(data) % RECORD == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        found = {m.name: (m.type, m.size) for m in archive.getmembers()}
        extracted = archive.extractfile("checksums/trainer/a.sha256")
        assert extracted is not None
        assert extracted.read() == b"0123456789"
    assert found == {
        "checksums": (tarfile.DIRTYPE, 0),
        "checksums/trainer": (tarfile.DIRTYPE, 0),
        "checksums/trainer/a.sha256": (tarfile.REGTYPE, 10),
        "manifest.json.tmp": (tarfile.REGTYPE, 0),
    }


@pytest.mark.parametrize("data", [[b"short"], [b"0123456789", b"and more"]])
def test_a_member_whose_data_is_not_its_announced_size_is_refused(data: list[bytes]) -> None:
    with pytest.raises(ValueError, match="announced"):
        b"".join(archive_chunks([Member("f", 10, lambda: data)], mtime=0))


def test_batches_never_exceed_one_chunk_over_the_batch_size() -> None:
    batches = list(batched((bytes(100) for _ in range(25)), size=1000))
    assert [len(b) for b in batches] == [1000, 1000, 500]


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs a tar binary")
async def test_write_archive_extracts_with_tar(tmp_path: Path) -> None:
    members = [Member("sub"), Member("sub/f", 3, lambda: [b"abc"])]
    await write_archive(
        LocalExec(), namespace="ml", pod="p", container="c", directory=str(tmp_path), members=members, mtime=0, what="x"
    )
    assert (tmp_path / "sub" / "f").read_bytes() == b"abc"


async def test_write_archive_failure_has_the_write_reason(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as failure:
        await write_archive(
            LocalExec(),
            namespace="ml",
            pod="p",
            container="c",
            directory=str(tmp_path / "missing"),
            members=[Member("f", 1, lambda: [b"x"])],
            mtime=0,
            what="writing f",
        )
    assert failure.value.reason == "checkpoint_write_failed"
    assert "writing f failed" in failure.value.message
