"""`ai-storage-orchestrator logs`: the orchestrator's JSON log lines, one readable line each, optionally of one
migration only. Reads a file, stdin, or `kubectl logs` of the orchestrator pod; `--follow` keeps reading."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import stat
import sys
from collections.abc import AsyncGenerator, Collection, Mapping, Sequence
from typing import IO, Any

from ai_storage_orchestrator.cli.client import EXIT_OK, CliError, UsageError, set_command

CHUNK = 65536
FILE_POLL_INTERVAL = 0.25
# Keys shown in their own columns (or below the line) rather than as key=value.
_COLUMNS = frozenset({"timestamp", "level", "event", "phase", "logger", "exception", "stack"})
_MULTILINE = ("exception", "stack")
# The context the orchestrator binds (structlog contextvars): first, whatever their place in the JSON object.
_BOUND = ("migration_id", "pod", "namespace", "request_id")


# Where scripts/deploy.sh and k8s/ run the orchestrator: what `kubectl migrate logs` reads when nothing is piped in.
DEPLOYED_POD = "kube-system/deploy/ai-storage-orchestrator"


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], *, plugin: bool = False
) -> argparse.ArgumentParser:
    """``plugin``: as `kubectl migrate logs` has it -- without --file and with nothing piped in, it reads
    `kubectl logs` of the deployed orchestrator (``DEPLOYED_POD``)."""
    parser = subparsers.add_parser(
        "logs",
        help="read the orchestrator's log, one readable line per entry",
        description=(
            "Print the orchestrator's JSON log lines as `HH:MM:SS.mmm  LEVEL  event  phase  key=value ...`"
            " (times in UTC; lines that are not JSON are printed unchanged). Reads stdin unless --file or --from-pod"
            " says otherwise" + (f"; with neither and nothing piped in, --from-pod {DEPLOYED_POD}." if plugin else ".")
        ),
    )
    parser.add_argument("--migration", metavar="ID", help="only the lines of this migration (their migration_id)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep reading as the log grows")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--file", metavar="PATH", help="a file of JSON log lines; - reads stdin")
    source.add_argument(
        "--from-pod",
        metavar="NS/NAME",
        help="run `kubectl logs [-f] -n NS NAME`; NAME may be a pod or e.g. deploy/ai-storage-orchestrator",
    )
    parser.add_argument("--kubectl", default="kubectl", metavar="PATH", help="kubectl to run (default %(default)s)")
    parser.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default="text",
        help="text: readable lines; json: the matching lines unchanged, for jq (default %(default)s)",
    )
    # Hidden: how often --follow looks for new data in a file (tests make it short).
    parser.add_argument("--poll-interval", type=float, default=FILE_POLL_INTERVAL, help=argparse.SUPPRESS)
    parser.set_defaults(default_pod=DEPLOYED_POD if plugin else None)
    set_command(parser, logs)
    return parser


# Formatting ---------------------------------------------------------------------------------------------------------
def parse_entry(line: str) -> dict[str, Any] | None:
    """The JSON object of a log line, or None for anything else."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def clock(timestamp: object) -> str:
    """HH:MM:SS.mmm (UTC) of an ISO timestamp or epoch seconds; other values as they are."""
    moment: dt.datetime | None = None
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    elif isinstance(timestamp, str):
        try:
            moment = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        except ValueError:
            return timestamp
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC)
    if moment is None:
        return "-"
    return f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}"


def format_value(value: object) -> str:
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in "\"'=" for c in value)
        return value if plain else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def format_entry(entry: Mapping[str, Any], *, hide: Collection[str] = ()) -> str:
    level = str(entry.get("level") or "-").upper()
    event = str(entry.get("event") or "-")
    phase = str(entry.get("phase") or "-")
    keys = [*(k for k in _BOUND if k in entry), *(k for k in entry if k not in _BOUND)]
    pairs = " ".join(f"{key}={format_value(entry[key])}" for key in keys if key not in _COLUMNS and key not in hide)
    line = f"{clock(entry.get('timestamp')):<12}  {level:<7}  {event:<24}  {phase:<16}  {pairs}".rstrip()
    for key in _MULTILINE:
        text = entry.get(key)
        if isinstance(text, str) and text:
            line += "".join(f"\n    {part}" for part in text.rstrip("\n").split("\n"))
    return line


def concerns(entry: Mapping[str, Any], migration_id: str) -> bool:
    """A line of that migration: its bound ``migration_id``, or the reconcile lines' ``key`` (``<namespace>/<id>``)."""
    if entry.get("migration_id") == migration_id:
        return True
    key = entry.get("key")
    return isinstance(key, str) and key.rpartition("/")[2] == migration_id


def render(line: str, *, migration_id: str | None = None, raw: bool = False) -> str | None:
    """What to print for one log line, or None when the migration filter drops it."""
    entry = parse_entry(line)
    if migration_id is not None and (entry is None or not concerns(entry, migration_id)):
        return None
    if raw or entry is None:
        return line
    return format_entry(entry, hide=("migration_id",) if migration_id else ())


# Sources ------------------------------------------------------------------------------------------------------------
def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r")


async def stream_lines(reader: asyncio.StreamReader) -> AsyncGenerator[str, None]:
    buffer = b""
    while chunk := await reader.read(CHUNK):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            yield _decode(raw)
    if buffer:
        yield _decode(buffer)


def _open(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from None


def _replacement(handle: IO[bytes], path: str | None) -> IO[bytes] | None:
    """A new handle when the file was rotated (replaced) or truncated; None when it only did not grow."""
    if path is None:
        return None
    try:
        current = os.stat(path)
    except OSError:  # being rotated: keep the old handle until the new file appears
        return None
    own = os.fstat(handle.fileno())
    if (current.st_ino, current.st_dev) != (own.st_ino, own.st_dev):
        return _open(path)
    if current.st_size < handle.tell():
        handle.seek(0)
    return None


async def file_lines(
    handle: IO[bytes], *, path: str | None, follow: bool, poll_interval: float = FILE_POLL_INTERVAL
) -> AsyncGenerator[str, None]:
    """The lines of a file; with ``follow``, wait for more at EOF (tail -f), following rotation and truncation."""
    buffer = b""
    try:
        while True:
            chunk = handle.read(CHUNK)
            if chunk:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for raw in complete:
                    yield _decode(raw)
                continue
            if not follow:
                break
            replacement = _replacement(handle, path)
            if replacement is not None:
                if buffer:
                    yield _decode(buffer)
                    buffer = b""
                handle.close()
                handle = replacement
                continue
            await asyncio.sleep(poll_interval)
    finally:
        handle.close()
    if buffer:
        yield _decode(buffer)


def _reopen_stdin() -> IO[bytes]:
    return open(sys.stdin.fileno(), "rb", closefd=False)


async def stdin_lines(*, follow: bool, poll_interval: float) -> AsyncGenerator[str, None]:
    stdin = sys.stdin
    if stat.S_ISREG(os.fstat(stdin.fileno()).st_mode):  # `< file`: a pipe transport refuses regular files
        handle = _reopen_stdin()
        async for line in file_lines(handle, path=None, follow=follow, poll_interval=poll_interval):
            yield line
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK * 16)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    try:
        async for line in stream_lines(reader):
            yield line
    finally:
        transport.close()


def split_pod(value: str) -> tuple[str, str]:
    namespace, _, name = value.partition("/")
    if not namespace or not name:
        raise UsageError(
            f"--from-pod takes NAMESPACE/NAME (e.g. kube-system/deploy/ai-storage-orchestrator), not {value!r}"
        )
    return namespace, name


async def kubectl_lines(
    kubectl: str, target: str, *, follow: bool, flags: Sequence[str] = ()
) -> AsyncGenerator[str, None]:
    """The stdout of `kubectl [flags] logs`; its stderr goes straight to ours. ``flags``: e.g. --kubeconfig."""
    namespace, name = split_pod(target)
    command = [kubectl, *flags, "logs", *(["-f"] if follow else []), "-n", namespace, name]
    try:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
    except FileNotFoundError:
        raise CliError(
            f"kubectl not found ({kubectl}): install kubectl or pass --kubectl PATH, or save the log and use --file"
        ) from None
    except PermissionError:
        raise CliError(f"cannot run {kubectl}: permission denied") from None
    assert process.stdout is not None
    try:
        async for line in stream_lines(process.stdout):
            yield line
    except BaseException:  # closed early (Ctrl-C, a reader that left): stop kubectl too
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        await process.wait()
        raise
    code = await process.wait()
    if code != 0:
        raise CliError(f"`{' '.join(command)}` exited with code {code}")


def _kubectl_flags(args: argparse.Namespace) -> list[str]:
    """The kubectl plugin's --kubeconfig and --context, for the kubectl it runs (absent in the plain CLI)."""
    kubeconfig, context = getattr(args, "kubeconfig", None), getattr(args, "context", None)
    return [*(["--kubeconfig", kubeconfig] if kubeconfig else []), *(["--context", context] if context else [])]


def open_source(args: argparse.Namespace) -> AsyncGenerator[str, None]:
    from_pod = args.from_pod
    if not from_pod and args.file is None and getattr(args, "default_pod", None) and sys.stdin.isatty():
        from_pod = args.default_pod
    if from_pod:
        split_pod(from_pod)  # a usage error before anything runs
        return kubectl_lines(args.kubectl, from_pod, follow=args.follow, flags=_kubectl_flags(args))
    if args.file and args.file != "-":
        handle = _open(args.file)
        return file_lines(handle, path=args.file, follow=args.follow, poll_interval=args.poll_interval)
    if args.file is None and sys.stdin.isatty():
        raise UsageError("nothing to read: give --file PATH, --from-pod NS/NAME, or pipe the log into stdin")
    return stdin_lines(follow=args.follow, poll_interval=args.poll_interval)


async def logs(args: argparse.Namespace) -> int:
    source = open_source(args)
    async with contextlib.aclosing(source) as lines:
        async for line in lines:
            shown = render(line, migration_id=args.migration, raw=args.output == "json")
            if shown is not None:
                print(shown, flush=args.follow)
    return EXIT_OK
