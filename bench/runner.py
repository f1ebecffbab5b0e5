"""`make bench`: every scenario in turn, each on its own local control plane, then the results file, its Markdown
and the generated part of docs/BENCHMARKS.md. With --only, earlier results of the other scenarios are kept.

Only a run at the published scale (bench.publish) writes bench/results/ and docs/BENCHMARKS.md; a --quick run, or
any smaller one, writes its results and page to its output directory only (default out/bench/, git-ignored) and says
where."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import profiles
from bench.decision import profile_plan, run_decision
from bench.machine import describe
from bench.publish import PUBLISHED_ROUNDS, smaller_than_published
from bench.report import markdown, reproduce, update_docs
from bench.scale import run_scale
from bench.scale_plan import FULL, QUICK, node_names
from bench.stage_scenarios import run_stage_scenarios
from tests.cluster.local_cluster import REPO_ROOT, LocalCluster, binaries_dir

JSON = dict[str, Any]
SCENARIOS = ("decision", "migration", "api", "scale", "checkpoint")
RESULTS = REPO_ROOT / "bench" / "results"  # the published results
DOCS = REPO_ROOT / "docs" / "BENCHMARKS.md"  # the published page
SMALLER_OUT = REPO_ROOT / "out" / "bench"  # --quick and other runs below the published scale


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Say:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {text}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, pods, nodes and migrations")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--rounds", type=int, help="migration rounds (default 50, quick 5)")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile passes")
    parser.add_argument(
        "--orchestrator-arg",
        action="append",
        default=[],
        dest="orchestrator_args",
        metavar="FLAG",
        help="an extra `serve` flag for the orchestrator of the migration and api scenarios (--no-prewarm, say);"
        " such a run is never published",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="directory of latest.json, latest.md and the profile listings (default: bench/results/ for a run at the"
        " published scale, which also rewrites the docs page; out/bench/ for --quick or any smaller run)",
    )
    parser.add_argument("--docs", type=Path, default=DOCS, help="the published page (written only from bench/results/)")
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory (clusters, logs)")
    return parser.parse_args(argv)


def _tagged(data: JSON, *, scenario: str, quick: bool) -> JSON:
    flags = data.get("orchestrator_args") or ()
    return {
        "quick": quick,
        "ran_at": now_iso(),
        "reproduce": reproduce(scenario, quick=quick, orchestrator_args=flags),
        **data,
    }


def _profile_entry(path: Path, name: str, what: str) -> JSON:
    """The top entries; the full listing travels in "listing_text" until write_outputs puts it in the output dir."""
    if not path.exists():
        return {"error": f"no profile written at {path.name}"}
    return {"what": what, "listing_text": profiles.text_report(path), **profiles.top_entries(path)}


def smaller_by_arguments(args: argparse.Namespace) -> bool:
    """Known before the run: --quick or fewer rounds than published (the results are checked again at the end)."""
    return bool(args.quick or args.orchestrator_args or (args.rounds is not None and args.rounds < PUBLISHED_ROUNDS))


def output_dir(args: argparse.Namespace) -> Path:
    out: Path = args.out or (SMALLER_OUT if smaller_by_arguments(args) else RESULTS)
    return out


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(path)


def write_outputs(results: JSON, *, out: Path, docs: Path, say: Callable[[str], None]) -> bool:
    """latest.json, latest.md and the profile listings into `out`; the generated part of `docs` only when the run is
    at the published scale and `out` is the published results directory. True when published."""
    unpublished = smaller_than_published(results)
    if unpublished and out.resolve() == RESULTS.resolve():
        out = SMALLER_OUT
    publish = not unpublished and out.resolve() == RESULTS.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name, profile in (results.get("profiles") or {}).items():
        if isinstance(profile, dict) and "listing_text" in profile:
            listing = out / f"profile-{name}.txt"
            listing.write_text(profile.pop("listing_text"))
            profile["listing"] = _shown(listing)
    (out / "latest.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    generated = markdown(results, unpublished=unpublished)
    (out / "latest.md").write_text(generated)
    if publish:
        update_docs(docs, generated)
        say(f"results: {_shown(out / 'latest.json')}, {_shown(docs)}")
    else:
        why = "; ".join(unpublished) if unpublished else f"--out {_shown(out)} is not {_shown(RESULTS)}"
        say(
            f"not the published scale or place ({why}): results in {_shown(out / 'latest.json')}, page in"
            f" {_shown(out / 'latest.md')}; {_shown(docs)} and {_shown(RESULTS)} left as they were"
        )
    return publish


def run_checkpoint(*, quick: bool, say: Callable[[str], None]) -> JSON:
    sizes = ["16", "64"] if quick else ["64", "1024"]
    command = [sys.executable, "-m", "bench.checkpoint_throughput", "--sizes-mib", *sizes]
    say(f"checkpoint throughput: {' '.join(command[1:])}")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=REPO_ROOT, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "did not finish within 1800 s", "command": " ".join(command[1:])}
    output = done.stdout
    start = output.rfind("\n[")
    try:
        sizes_result = json.loads(output[start + 1 :] if start >= 0 else output)
    except ValueError:
        return {"error": (done.stderr or output)[-1500:], "command": " ".join(command[1:])}
    return {"sizes": sizes_result, "command": "python " + " ".join(command[1:])}


def run_cluster_scenarios(args: argparse.Namespace, selected: set[str], workdir: Path, say: Say) -> tuple[JSON, JSON]:
    scenarios: JSON = {}
    found_profiles: JSON = {}
    profile = not args.no_profile
    if selected & {"migration", "api"}:
        cluster = LocalCluster(workdir / "cluster", node_names=["sim-node-0", "sim-node-1"])
        say("starting the local control plane (2 simulated nodes)")
        cluster.start()
        try:
            profile_dir = workdir if profile else None
            out = asyncio.run(
                run_stage_scenarios(
                    kubeconfig=cluster.kubeconfig,
                    nodes=cluster.node_names,
                    workdir=workdir,
                    rounds=args.rounds or (5 if args.quick else 50),
                    migration="migration" in selected,
                    api="api" in selected,
                    quick=args.quick,
                    profile_dir=profile_dir,
                    say=say,
                    orchestrator_args=args.orchestrator_args,
                )
            )
        finally:
            cluster.stop()
        startup = out.pop("startup", {})
        flags = {"orchestrator_args": args.orchestrator_args} if args.orchestrator_args else {}
        for name, data in out.items():
            scenarios[name] = _tagged({**data, **startup, **flags}, scenario=name, quick=args.quick)
        if profile:
            rounds = 2 if args.quick else 5
            what = f"The orchestrator process (start-up included) during {rounds} rounds of both orderings."
            found_profiles["migration"] = _profile_entry(workdir / "migration.prof", "migration", what)
            what = (
                "The orchestrator process (start-up included) during 5 s of GET at 500 req/s and 5 s of POST dry_run"
                " at 200 req/s."
            )
            found_profiles["api"] = _profile_entry(workdir / "api.prof", "api", what)
    if "scale" in selected:
        size = QUICK if args.quick else FULL
        cluster = LocalCluster(workdir / "scale-cluster", node_names=node_names(size), startup_timeout=300)
        say(f"starting a second local control plane ({size.nodes} simulated nodes) for {size.pods} pods")
        cluster.start()
        scale_profile = workdir / "scale.prof" if profile else None
        try:
            outcome = asyncio.run(
                run_scale(
                    kubeconfig=cluster.kubeconfig,
                    workdir=workdir,
                    size=size,
                    cluster_pids={p.name: p.pid for p in cluster.processes if p.pid is not None},
                    profile_to=scale_profile,
                    say=say,
                )
            )
            scenarios["scale"] = _tagged({"outcome": outcome.to_json()}, scenario="scale", quick=args.quick)
        finally:
            cluster.stop()
        if scale_profile is not None:
            what = (
                f"A second orchestrator: initial sync of {size.pods} pods, a burst of {size.patches} pod events and"
                f" {size.migrations} more migrations at once."
            )
            found_profiles["scale"] = _profile_entry(scale_profile, "scale", what)
    return scenarios, found_profiles


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = set(args.only or SCENARIOS)
    say = Say()
    out = output_dir(args)
    earlier = out / "latest.json"
    previous: JSON = json.loads(earlier.read_text()) if args.only and earlier.exists() else {}
    results: JSON = {
        "schema": 1,
        "command": "make bench" + (f' BENCH_ARGS="{" ".join(sys.argv[1:])}"' if sys.argv[1:] else ""),
        "started_at": now_iso(),
        "machine": describe(binaries_dir()),
        "scenarios": dict(previous.get("scenarios") or {}),
        "profiles": dict(previous.get("profiles") or {}),
    }
    with tempfile.TemporaryDirectory(prefix="aiso-bench-", dir=args.workdir) as tmp:
        if "decision" in selected:
            say("decision latency (in process, timeit)")
            decision = run_decision(quick=args.quick)
            results["scenarios"]["decision"] = _tagged({"results": decision}, scenario="decision", quick=args.quick)
            if not args.no_profile:
                profile_plan(Path(tmp) / "decision.prof")
                what = "500 plans of the certification pod onto a node that already runs 100 pods, in process."
                results["profiles"]["decision"] = _profile_entry(Path(tmp) / "decision.prof", "decision", what)
        scenarios, found_profiles = run_cluster_scenarios(args, selected, Path(tmp), say)
        results["scenarios"].update(scenarios)
        results["profiles"].update(found_profiles)
        if "checkpoint" in selected:
            checkpoint = run_checkpoint(quick=args.quick, say=say)
            results["scenarios"]["checkpoint"] = _tagged(checkpoint, scenario="checkpoint", quick=args.quick)
    results["finished_at"] = now_iso()
    results["duration_s"] = round(time.monotonic() - say.started, 1)
    write_outputs(results, out=out, docs=args.docs, say=say)
    return 0


if __name__ == "__main__":
    os.chdir(REPO_ROOT)
    sys.exit(main())
