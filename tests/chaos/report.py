"""The campaign's table: scenarios per fault kind, how they ended, and every violation of the invariant."""

from __future__ import annotations

from collections import Counter, defaultdict

from tests.chaos.campaign import Outcome
from tests.chaos.scenarios import Fault

VIOLATIONS = ("pod-lost", "two-copies", "wrong-copy", "stuck", "gate-early")
RESULTS = ("Completed", "Failed", "Cancelled", "deleted")


def _ending(result: str) -> str:
    """'Failed (reason)' → 'Failed'; 'deleted after Cancelled' → 'deleted'."""
    return result.split(" ")[0]


def table(outcomes: list[Outcome]) -> str:
    by_fault: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_fault[outcome.scenario.fault.value].append(outcome)
    header = ["fault", "scenarios", "fired", *RESULTS, "pods lost", "two copies", "wrong copy", "stuck", "gate early"]
    rows = [header, ["---"] * len(header)]

    def row(label: str, group: list[Outcome]) -> list[str]:
        results = Counter(_ending(o.result) for o in group)
        verdicts = Counter(o.verdict for o in group)
        return [
            label,
            str(len(group)),
            str(sum(o.fired for o in group)),
            *(str(results[r]) for r in RESULTS),
            *(str(verdicts[v]) for v in VIOLATIONS),
        ]

    for fault in Fault:
        rows.append(row(fault.value, by_fault.get(fault.value, [])))
    rows.append(row("**all**", outcomes))
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def phase_coverage(outcomes: list[Outcome]) -> str:
    def cell(o: Outcome) -> tuple[str, str, str]:
        return (o.scenario.strategy.value, o.scenario.phase.value, o.scenario.when)

    fired = Counter(cell(o) for o in outcomes if o.fired)
    planned = Counter(cell(o) for o in outcomes)
    lines = ["| ordering | phase | when | scenarios | fault fired |", "| --- | --- | --- | --- | --- |"]
    for key, count in sorted(planned.items()):
        lines.append(f"| {' | '.join(key)} | {count} | {fired[key]} |")
    return "\n".join(lines)


def violations(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.verdict != "ok"]
