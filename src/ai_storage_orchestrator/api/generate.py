"""Write the generated schema files: ``python -m ai_storage_orchestrator.api.generate [--check] [ROOT]``.

The PodMigration CRD (every copy, ``crd.CRD_PATHS``) and the REST API's OpenAPI document (every copy,
``api.openapi.OPENAPI_PATHS``), both from the pydantic models of ``ai_storage_orchestrator.schema``. It lives in the
API package because the OpenAPI document is assembled from the API's routes; the schema package imports nothing of
the API. ROOT (default: the current directory) is the repository's root. With --check nothing is written: the exit
status is 1 and the stale files are named when a committed file differs from what would be written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai_storage_orchestrator.api.openapi import OPENAPI_PATHS, render_openapi
from ai_storage_orchestrator.schema.crd import CRD_PATHS, render_crd


def generated() -> dict[str, str]:
    """Repository path -> the text the generator writes there."""
    files = dict.fromkeys(CRD_PATHS, render_crd())
    files |= dict.fromkeys(OPENAPI_PATHS, render_openapi())
    return files


def stale(root: Path) -> list[str]:
    return [
        path for path, text in generated().items() if not (root / path).is_file() or (root / path).read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ai_storage_orchestrator.api.generate")
    parser.add_argument("root", nargs="?", default=".", type=Path)
    parser.add_argument("--check", action="store_true", help="only report files that differ")
    args = parser.parse_args(argv)
    if args.check:
        differ = stale(args.root)
        for path in differ:
            print(f"{path} differs from the generated schema", file=sys.stderr)
        return 1 if differ else 0
    for path, text in generated().items():
        (args.root / path).parent.mkdir(parents=True, exist_ok=True)
        (args.root / path).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
