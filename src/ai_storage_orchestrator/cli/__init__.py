"""`ai-storage-orchestrator` command line: `serve` runs the controller; the other commands are REST clients."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ai_storage_orchestrator import __version__
from ai_storage_orchestrator.cli import compare, completion, drain, logs, migrations, serve
from ai_storage_orchestrator.cli.client import PROGRAM

# Each command module offers `add_parser(subparsers)` and sets `handler` on its parser.
COMMAND_MODULES: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], object]] = [
    serve.add_parser,
    migrations.add_migrate_parser,
    migrations.add_status_parser,
    migrations.add_list_parser,
    migrations.add_cancel_parser,
    drain.add_parser,
    logs.add_parser,
    compare.add_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Move AI-training pods between Kubernetes nodes without re-running finished containers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMAND_MODULES:
        add(subparsers)
    completion.add_parser(subparsers, root=parser, program=PROGRAM)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
