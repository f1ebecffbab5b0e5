"""`compare`: the certification test -- Kubernetes' native delete-and-recreate against the orchestrator's migration of
the same three-container workload between the same two nodes, measured the same way."""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from pathlib import Path

from ai_storage_orchestrator.cli.client import CA_FILE_ENV, positive_float
from ai_storage_orchestrator.compare import report
from ai_storage_orchestrator.compare.cluster import IMAGE_PULL_GRACE, CompareError
from ai_storage_orchestrator.compare.discovery import (
    CLIENT_IDENTITY,
    SERVICE_NAME,
    SYSTEM_NAMESPACE,
    DiscoveryApi,
    DiscoveryError,
    discover,
    orchestrator_client,
    resolve_kubeconfig,
)
from ai_storage_orchestrator.compare.options import SOURCES, TIMING_SPREAD_SECONDS, Options
from ai_storage_orchestrator.compare.results import EXIT_ERROR, WINDOW_RULES, Comparison
from ai_storage_orchestrator.compare.scenario import Scenario
from ai_storage_orchestrator.compare.workload import (
    NUMPY_CPU_SCALE,
    NUMPY_IMAGE,
    PROCESS_SECONDS,
    TENSORFLOW_LOCAL_IMAGE,
    WORKLOADS,
)
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.exec import KubeExec
from ai_storage_orchestrator.rest_client import DEFAULT_URL

URL_ENV = "AI_STORAGE_ORCHESTRATOR_URL"
TOKEN_ENV = "AI_STORAGE_ORCHESTRATOR_TOKEN"
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Run the certification comparison: deploy pod tensorflow-ai-workload (tensorflow-trainer, data-processor that
completes after ~45 s, model-monitor) on the source node; TEST 1 moves it the Kubernetes way (delete, recreate with
nodeName=target), TEST 2 moves it back with the orchestrator (POST /api/migrations); each new pod is measured the
same way; then a summary, a JSON/Markdown/HTML report and charts (PNG, SVG) in --output-dir, and clean-up.

CPU is a rate: delta of the cumulative CPU counter over the delta of its time stamp, taken in the same read.
Sources: cgroup (exec `sh -c` into every container at once: cgroup v2 cpu.stat usage_usec and memory.current, or v1
cpuacct.usage and memory.usage_in_bytes, with `date +%s%N`; a v2 read is refused, as a failed read, unless the
container has its own cgroup namespace, /proc/self/cgroup exactly `0::/`: otherwise it would count the node's CPU),
kubelet (GET /api/v1/nodes/NODE/proxy/stats/summary: usageCoreNanoSeconds with its time, workingSetBytes; no exec),
auto (cgroup, else kubelet). Each figure is the trimmed mean of --samples interval rates (sorted, --trim highest and
lowest dropped). Fewer valid samples than asked give no figure and exit 2: nothing is estimated. A container that
restarts within its window (restartCount or containerID changes) ends that window with no figure (insufficient).

Window start (--window-start):
  ready            {ready}
  migration-start  {migration_start}

Simulated (KWOK) nodes run no containers and have no cgroups: CPU and memory are reported as "not measured", the
saving as n/a, and the run needs --allow-unmeasured. Migration times, containers started, requests freed and the
orchestrator's decisions are real either way.

Without flags, compare finds what it needs and prints one line per value found, naming the flag that overrides it:
the orchestrator (Service {system}/{service}: its cluster IP, else a ready endpoint address that answers /readyz,
TLS verified as {service}.{system}.svc with the CA of ConfigMap {system}/{service}-ca), a one-hour token for
ServiceAccount {client} (audience {service}; granted get, create and delete on pods in the comparison's namespace
only), the nodes (where the workload pod runs, else the usable node with the most allocatable CPU, and the next
one) and the shared volume (claim training-data in the namespace, else the export of an NFS PersistentVolume of
storageClass nfs). A missing piece is one sentence each, and exit code 2.""".format(
    system=SYSTEM_NAMESPACE,
    service=SERVICE_NAME,
    client=CLIENT_IDENTITY,
    ready=WINDOW_RULES["ready"],
    migration_start=WINDOW_RULES["migration-start"],
)
EPILOG = """\
exit codes: 0 the CPU saving meets --threshold (or, with --allow-unmeasured, a run without CPU figures finished);
1 the saving is below the threshold; 2 error (including too few valid samples, and simulated nodes without
--allow-unmeasured); 130 interrupted."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="certification test: native delete-and-recreate vs the orchestrator, CPU and memory compared",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # `--output json` (the other commands' flag) must not silently mean --output-dir json here.
        allow_abbrev=False,
    )
    configure(parser)
    parser.set_defaults(handler=handler, command_coroutine=compare)


def configure(parser: argparse.ArgumentParser) -> None:
    nodes = parser.add_argument_group("cluster")
    nodes.add_argument(
        "--source-node",
        metavar="NODE",
        help="where the pod starts (default: where it runs, else the usable node with the most allocatable CPU)",
    )
    nodes.add_argument("--target-node", metavar="NODE", help="where TEST 1 moves it (default: the next usable node)")
    nodes.add_argument(
        "-n", "--namespace", default="ai-migration-compare", help="created unless it exists (%(default)s)"
    )
    nodes.add_argument("--kubeconfig", help="default: $KUBECONFIG, ~/.kube/config, else in-cluster credentials")
    nodes.add_argument(
        "--pvc",
        metavar="CLAIM",
        help="an existing ReadWriteMany claim (default: training-data if it exists, else PV + PVC for --nfs-server)",
    )
    nodes.add_argument(
        "--nfs-server",
        help="NFS server of the PV created without --pvc (default: the export of an NFS PV of storageClass nfs)",
    )
    nodes.add_argument("--nfs-path", default="/exports/training-data", help="its export (default %(default)s)")
    nodes.add_argument(
        "--workload",
        choices=["auto", *WORKLOADS],
        default="auto",
        help="tensorflow: the real manifest of k8s/workloads; numpy: real nodes of a small machine (local image "
        f"{NUMPY_IMAGE}, never pulled; CPU requests x{float(NUMPY_CPU_SCALE):g}); tensorflow-local: the tensorflow "
        f"programs on those nodes (local image {TENSORFLOW_LOCAL_IMAGE}, same CPU scale); simulated: for KWOK "
        "nodes (default auto: simulated on KWOK nodes, else tensorflow)",
    )
    nodes.add_argument(
        "--simulated-complete-after",
        default=f"{PROCESS_SECONDS}s",
        metavar="DURATION",
        help="simulated workload: when data-processor completes, a Go duration (default %(default)s)",
    )
    api = parser.add_argument_group("orchestrator")
    api.add_argument(
        "--orchestrator-url",
        default=os.environ.get(URL_ENV) or None,
        help=f"its REST API (default: ${URL_ENV}, else found through Service {SYSTEM_NAMESPACE}/{SERVICE_NAME})",
    )
    api.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"bearer token (default: ${TOKEN_ENV}, else one minted for ServiceAccount {CLIENT_IDENTITY})",
    )
    api.add_argument(
        "--ca-file",
        default=os.environ.get(CA_FILE_ENV) or None,
        help=f"CA that signed an https:// orchestrator's certificate, besides the system's (default ${CA_FILE_ENV})",
    )
    measure = parser.add_argument_group("measurement")
    measure.add_argument("--samples", type=_positive_int, default=20, help="interval rates per pod (default 20)")
    measure.add_argument("--trim", type=_non_negative_int, default=3, help="highest and lowest dropped (default 3)")
    measure.add_argument("--interval", type=positive_float, default=1.0, help="seconds between reads (default 1.0)")
    measure.add_argument("--window-start", choices=list(WINDOW_RULES), default="ready", help="see above")
    measure.add_argument("--source", choices=list(SOURCES), default="auto", help="where counters come from")
    measure.add_argument(
        "--max-reads", type=_positive_int, help="give up after this many reads per pod (default 2 x (samples + 1))"
    )
    measure.add_argument("--threshold", type=float, default=20.0, help="CPU saving (%%) to pass (default 20)")
    measure.add_argument(
        "--allow-unmeasured",
        action="store_true",
        help="accept a run whose CPU cannot be measured (simulated nodes): exit 0 instead of 2",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--output-dir", type=Path, help="report.json, report.md, report.html, charts (default ./compare-results/ID)"
    )
    run.add_argument("--keep", action="store_true", help="leave namespace, volume and pods in place afterwards")
    run.add_argument(
        "--timeout",
        type=positive_float,
        default=900.0,
        help="seconds per wait (default 900); a pod whose image its node cannot get (ErrImagePull, ImagePullBackOff,"
        f" ErrImageNeverPull, InvalidImageName) ends the wait after {IMAGE_PULL_GRACE:g}s",
    )
    run.add_argument(
        "--timing-pairs",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="after TEST 2, move the pod N more times each way (native, then orchestrator; no CPU sampling) and print"
        " the medians of request -> Ready and trainer downtime side by side (default 0: off)",
    )
    run.add_argument(
        "--timing-spread",
        type=_non_negative_float,
        default=TIMING_SPREAD_SECONDS,
        metavar="SECONDS",
        help="each timed move first waits a random 0 to SECONDS, so the moves meet the kubelet's once-a-second"
        f" container relist at every phase instead of all at one (default {TIMING_SPREAD_SECONDS:g}; 0: back to back)",
    )


def options_from_args(args: argparse.Namespace) -> Options:
    return Options(
        namespace=args.namespace,
        source_node=args.source_node,
        target_node=args.target_node,
        orchestrator_url=args.orchestrator_url or DEFAULT_URL,
        token=args.token,
        ca_file=args.ca_file,
        kubeconfig=args.kubeconfig,
        samples=args.samples,
        trim=args.trim,
        interval=args.interval,
        window_start=args.window_start,
        source=args.source,
        threshold=args.threshold,
        keep=args.keep,
        workload=args.workload,
        allow_unmeasured=args.allow_unmeasured,
        pvc=args.pvc,
        nfs_server=args.nfs_server,
        nfs_path=args.nfs_path,
        complete_after=args.simulated_complete_after,
        timeout=args.timeout,
        max_reads=args.max_reads,
        timing_pairs=args.timing_pairs,
        timing_spread=args.timing_spread,
    )


def _server(api_client: object) -> str | None:
    host = getattr(getattr(api_client, "configuration", None), "host", None)
    return str(host) if host else None


def say(text: str) -> None:
    print(text, flush=True)


async def compare(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    kubeconfig, source = resolve_kubeconfig(options.kubeconfig)
    try:
        api_client = await create_api_client(kubeconfig)
    except Exception as error:  # kubernetes_asyncio raises several unrelated types for bad or missing credentials
        print(f"error: cannot load Kubernetes credentials ({source}): {error}; pass --kubeconfig", file=sys.stderr)
        return EXIT_ERROR
    kube = DiscoveryApi(api_client)
    try:
        options, found = await discover(
            options, kube, url_given=args.orchestrator_url is not None, server=_server(api_client)
        )
    except DiscoveryError as error:
        await api_client.close()
        for line in error.found:
            say(line)
        print("error: the comparison cannot start:", file=sys.stderr)
        for problem in error.problems:
            print(f"  ✗ {problem}", file=sys.stderr)
        return EXIT_ERROR
    except BaseException:
        await api_client.close()
        raise
    try:
        rest = orchestrator_client(options)
    except (OSError, ssl.SSLError) as error:
        await api_client.close()
        print(f"error: cannot use the orchestrator's CA ({options.ca_file or 'discovered'}): {error}", file=sys.stderr)
        return EXIT_ERROR
    async with api_client, rest as orchestrator:
        scenario = Scenario(options, kube=kube, execs=KubeExec(api_client), api=orchestrator, say=say, discovered=found)
        comparison: Comparison = scenario.comparison
        try:
            comparison = await scenario.run()
            for line in report.console_lines(
                comparison, threshold=options.threshold, allow_unmeasured=options.allow_unmeasured
            ):
                say(line)
        except asyncio.CancelledError:
            comparison.error = "interrupted"
            raise
        finally:
            try:
                await scenario.clean_up()
            except CompareError as error:
                say(f"  clean-up failed: {error}")
            directory = args.output_dir or Path("compare-results") / scenario.test_id
            paths = report.write(
                comparison, directory, threshold=options.threshold, allow_unmeasured=options.allow_unmeasured
            )
            say(f"\nReport: {', '.join(str(p) for p in paths)}")
    verdict = comparison.verdict(threshold=options.threshold, allow_unmeasured=options.allow_unmeasured)
    return verdict.exit_code


def handler(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(compare(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
