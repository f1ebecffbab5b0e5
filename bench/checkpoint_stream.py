"""Memory and throughput of following a checkpoint stream, in process, no cluster: the tar follower
(``tarmembers.follow``, standard ``tarfile`` in stream mode) -> the spooled file records (``FileRecords``) -> the
streamed manifest and checksum lists, as ``copying``/``saving`` chain them, fed from tar blocks generated on the
fly (nothing is written but the records' spool).

    .venv/bin/python -m bench.checkpoint_stream [--only files large over-cap] [--files N] [--large-gib G]

Scenarios, each in a process of its own so that its peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) is its own:

files     N (default 1,000,000) files of 64 bytes, entry limit raised to N: the stream, then the manifest and the
          checksum list produced from the records (bytes counted and hashed, as ``saving`` sizes them).
large     one file of G GiB (default 10), generated 1 MiB at a time.
over-cap  N files with the default limits: refused after 100,000 entries (``checkpoint_too_large``).

The stream is fed in 32 KiB frames, as kube-apiserver delivers exec output.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from ai_storage_orchestrator.checkpoint.manifest import serialise_streaming
from ai_storage_orchestrator.checkpoint.records import FileRecords
from ai_storage_orchestrator.checkpoint.tarmembers import TarLimits, TarStreamLimitExceeded, TarSummary
from ai_storage_orchestrator.checkpoint.tarmembers import follow as follow_tar
from tests.unit.checkpoint.tarblocks import one_large_file, small_files

SCENARIOS = ("files", "large", "over-cap")
FRAME = 32 * 1024
MIB = 1024 * 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def frames(chunks: Iterable[bytes], size: int = FRAME) -> Iterator[memoryview]:
    """``chunks`` re-cut into ``size``-byte frames."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        if len(pending) >= size:
            view = memoryview(bytes(pending))
            whole = len(view) - len(view) % size
            for start in range(0, whole, size):
                yield view[start : start + size]
            pending = bytearray(view[whole:])
    if pending:
        yield memoryview(bytes(pending))


class FrameReader:
    """The frames as the file-like object ``tarfile`` reads, counting the bytes it took."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._frames = frames(chunks)
        self._pending = b""
        self.bytes_seen = 0

    def read(self, size: int, /) -> bytes:
        while len(self._pending) < size:
            frame = next(self._frames, None)
            if frame is None:
                break
            self._pending += bytes(frame)
        taken, self._pending = self._pending[:size], self._pending[size:]
        self.bytes_seen += len(taken)
        return taken


def follow(chunks: Iterable[bytes], records: FileRecords, limits: TarLimits, artifact: str) -> tuple[TarSummary, int]:
    """What ``copying.stream_artifact`` does with the stream of ``artifact`` (minus the forwarding and the thread):
    the summary and the bytes read."""
    section = records.begin("trainer", artifact)
    reader = FrameReader(chunks)
    summary = follow_tar(reader, lambda entry: records.add(section, entry), limits)
    return summary, reader.bytes_seen


def products(records: FileRecords) -> dict[str, int]:
    """Size the manifest and the checksum lists from the records, as ``saving`` does before it streams them."""
    manifest = hashlib.sha256()
    manifest_bytes = 0
    for chunk in serialise_streaming({"kind": "bench"}, (f.to_json() for f in records.all_files())):
        manifest.update(chunk)
        manifest_bytes += len(chunk)
    lists = sum(len(line) for section in records.sections for line in records.checksum_lines(section))
    return {"manifest_bytes": manifest_bytes, "checksum_list_bytes": lists}


def run(scenario: str, files: int, large_gib: float) -> dict[str, Any]:
    rss_before = peak_rss_mib()
    limits = TarLimits(max_entries=files + 1) if scenario == "files" else TarLimits()
    stream = one_large_file(int(large_gib * 1024 * MIB)) if scenario == "large" else small_files(files)
    result: dict[str, Any] = {"scenario": scenario}
    started = time.perf_counter()
    with FileRecords(max_entries=limits.max_entries) as records:
        seen: int | None = None
        try:
            summary, seen = follow(stream, records, limits, "/big.bin" if scenario == "large" else "/data")
            result["finished"] = summary.finished
        except TarStreamLimitExceeded as refused:
            result["refused"] = f"{refused} (limit {refused.limit})"
        stream_seconds = time.perf_counter() - started
        result.update(
            entries=records.entry_count,
            files=records.file_count,
            file_bytes=records.file_bytes,
            spilled=records.spilled,
            stream_seconds=round(stream_seconds, 2),
        )
        if seen is not None:
            result["stream_bytes"] = seen
            result["stream_mib_per_s"] = round(seen / MIB / stream_seconds, 1)
            result["entries_per_s"] = round(records.entry_count / stream_seconds)
            if scenario != "large":
                products_started = time.perf_counter()
                result.update(products(records))
                result["products_seconds"] = round(time.perf_counter() - products_started, 2)
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    result["rss_before_mib"] = round(rss_before, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkpoint_stream", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--large-gib", type=float, default=10.0)
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # one scenario, JSON out
    args = parser.parse_args(argv)
    if args.in_process:
        print(json.dumps(run(args.only[0], args.files, args.large_gib)))
        return 0
    results = []
    for scenario in args.only:
        command = [sys.executable, "-m", "bench.checkpoint_stream", "--in-process", "--only", scenario]
        command += ["--files", str(args.files), "--large-gib", str(args.large_gib)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
