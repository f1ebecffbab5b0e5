"""The published certification run (`make e2e E2E_OUTPUT_DIR=docs/results/e2e-real-nodes`) shows every line of the
specification's console output, in its order: the three commands as typed, build.sh's and deploy.sh's closing lines,
and the comparison's blocks (checked by ``spec_blocks_missing``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ai_storage_orchestrator.compare.spec_output import spec_blocks_missing

pytestmark = pytest.mark.unit

CONSOLE = Path(__file__).resolve().parents[3] / "docs" / "results" / "e2e-real-nodes" / "console.log"
PROCEDURE = [  # what the specification's steps 1 and 2 print, in order, before the comparison's own header
    r"# \./scripts/build\.sh$",
    r"^Building AI Storage Orchestrator\.\.\.$",
    r"^✓ Build completed successfully$",
    r"# \./scripts/deploy\.sh( |$)",
    r"^Deploying AI Storage Orchestrator to Kubernetes\.\.\.$",
    r"^service/ai-storage-orchestrator created$",
    r"^deployment\.apps/ai-storage-orchestrator created$",
    r"^✓ AI Storage Orchestrator deployed to kube-system$",
    r"# \./scripts/ai_migration_compare\.sh$",  # typed bare: no argument
]


def _positions(lines: list[str]) -> list[int | None]:
    found: list[int | None] = []
    start = 0
    for pattern in PROCEDURE:
        at = next((i for i in range(start, len(lines)) if re.search(pattern, lines[i])), None)
        found.append(at)
        start = at + 1 if at is not None else start
    return found


def test_the_published_run_types_the_three_commands_and_prints_their_lines_in_order() -> None:
    lines = CONSOLE.read_text().splitlines()
    missing = [p for p, at in zip(PROCEDURE, _positions(lines), strict=True) if at is None]
    assert missing == []


def test_the_published_run_shows_every_block_of_the_specification_in_order() -> None:
    text = CONSOLE.read_text()
    comparison = text[text.index("# ./scripts/ai_migration_compare.sh") :]
    assert spec_blocks_missing(comparison) == []
    assert re.search(r"^RESULT: AI Orchestrator achieved \d+\.\d% CPU reduction", comparison, re.MULTILINE)


def test_the_checks_fail_on_a_run_that_lacks_a_line() -> None:
    text = CONSOLE.read_text()
    assert spec_blocks_missing(text.replace("NODE MIGRATION:", "NODES:")) != []
    lines = text.replace("✓ Build completed successfully", "build done").splitlines()
    assert None in _positions(lines)
