"""`drain NODE`: cordon a node, then move every pod off it -- migrated by the orchestrator when it accepts the pod,
evicted like `kubectl drain` (Eviction API, PodDisruptionBudgets respected) when it refuses it, skipped like `kubectl
drain` skips them (DaemonSet-managed, mirror/static, already terminating).

The orchestrator decides which pods it migrates: each pod is asked for with a POST /api/migrations without
`target_node` (it chooses the node and says why); a 422 (e.g. `owned_by_controller`, `no_target_node`) means it
refuses the pod, which is then evicted (or, with --no-evict, left in place and reported).

Exit codes: 0 the node has no pod left but skipped ones (--dry-run: every pod has a plan), 1 a pod failed or is
still there, 2 usage or connection errors, 130 interrupted (the node stays cordoned; migrations in flight go on)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ai_storage_orchestrator.cli import kubeconfig
from ai_storage_orchestrator.cli.client import (
    CA_FILE_ENV,
    DEFAULT_HTTP_TIMEOUT,
    EXIT_FAILED,
    EXIT_OK,
    JSON,
    TOKEN_ENV,
    URL_ENV,
    ApiClient,
    ApiError,
    CliError,
    UsageError,
    positive_float,
    program_of,
    set_command,
)
from ai_storage_orchestrator.cli.drain_pods import (
    Action,
    Outcome,
    PodWork,
    apply_dry_run,
    daemonset_blockers,
    is_refusal,
    parse_duration,
    plan_lines,
    refusal_text,
    refused_action,
    remaining_problem,
    sort_pods,
    summary_lines,
    target_of,
)
from ai_storage_orchestrator.cli.drain_progress import DrainProgress
from ai_storage_orchestrator.cli.output import TERMINAL_STATUSES
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import NODES, PODS, KubeApi
from ai_storage_orchestrator.rest_client import DEFAULT_URL

DEFAULT_PARALLEL = 2
DEFAULT_TIMEOUT = 600.0
POLL_INTERVAL = 1.0
EVICTION_FIRST_DELAY = 1.0
EVICTION_MAX_DELAY = 10.0


# The effects: the orchestrator's REST API and the API server, behind two small interfaces (fakes in the unit tests).
class Orchestrator(Protocol):
    async def create(self, body: JSON) -> JSON: ...

    async def get(self, migration_id: str) -> JSON: ...


class Cluster(Protocol):
    async def node_exists(self, node: str) -> bool: ...

    async def cordon(self, node: str) -> None: ...

    async def pods_on(self, node: str, namespace: str | None) -> list[JSON]: ...

    async def evict(self, namespace: str, name: str, uid: str | None) -> None: ...

    async def pod_present(self, namespace: str, name: str, uid: str | None) -> bool: ...


class KubeCluster:
    """The API server through the kubeconfig's credentials (kube/ layer: raw JSON, no retries on evictions)."""

    def __init__(self, kube: KubeApi) -> None:
        self.kube = kube

    async def node_exists(self, node: str) -> bool:
        try:
            await self.kube.get(NODES, node)
        except KubeApiError as error:
            if error.not_found:
                return False
            raise
        return True

    async def cordon(self, node: str) -> None:
        await self.kube.merge_patch(NODES, node, {"spec": {"unschedulable": True}})

    async def pods_on(self, node: str, namespace: str | None) -> list[JSON]:
        pods, _ = await self.kube.list(PODS, namespace=namespace, field_selector=f"spec.nodeName={node}")
        return pods

    async def evict(self, namespace: str, name: str, uid: str | None) -> None:
        await self.kube.evict(name, namespace=namespace, uid=uid)

    async def pod_present(self, namespace: str, name: str, uid: str | None) -> bool:
        try:
            pod = await self.kube.get(PODS, name, namespace=namespace)
        except KubeApiError as error:
            if error.not_found:
                return False
            raise
        return uid is None or (pod.get("metadata") or {}).get("uid") == uid


@dataclass
class Drainer:
    """Moves the candidates off the node: migrations at most ``parallel`` at a time, evictions as they come."""

    node: str
    orchestrator: Orchestrator
    cluster: Cluster
    parallel: int = DEFAULT_PARALLEL
    evict: bool = True
    deadline: float | None = None  # time.monotonic() after which nothing more is waited for
    poll_interval: float = POLL_INTERVAL
    notify: Callable[[PodWork], None] = lambda work: None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    stopping: bool = field(default=False, init=False)

    def _body(self, work: PodWork, *, dry_run: bool = False) -> JSON:
        body: JSON = {"pod_name": work.name, "pod_namespace": work.namespace, "source_node": self.node}
        if dry_run:
            body["dry_run"] = True
        return body

    def _left(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    async def probe(self, work: PodWork) -> None:
        """Before the node is cordoned: one dry run of its first pod, so that an orchestrator that cannot be reached
        or refuses these credentials stops the drain with nothing changed (exit 2), not with every pod failed on a
        cordoned node. A refusal of that pod itself (422, 409) is an answer: the drain goes on and handles it."""
        try:
            await self.orchestrator.create(self._body(work, dry_run=True))
        except ApiError as error:
            if error.status in (401, 403) or error.status >= 500:
                why = f"the orchestrator refused the drain: {error.message} ({error.reason}); nothing was changed"
                raise CliError(why) from None
        except CliError as error:
            raise CliError(f"cannot ask the orchestrator: {error.message}; nothing was changed") from None

    def _out_of_time(self, work: PodWork) -> bool:
        """Past the drain's --timeout nothing new is started: a slot freed by a timed-out pod is not a slot for
        another migration or eviction."""
        left = self._left()
        if left is None or left > 0:
            return False
        self._finish(work, Outcome.FAILED, "not started", "not started: the drain's --timeout had passed")
        return True

    def _set(self, work: PodWork, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(work, name, value)
        self.notify(work)

    def _finish(self, work: PodWork, outcome: Outcome, state: str, reason: str | None = None) -> None:
        work.finished = self.clock()
        self._set(work, outcome=outcome, state=state, **({"reason": reason} if reason is not None else {}))

    async def plan(self, works: Sequence[PodWork]) -> None:
        """--dry-run: the orchestrator's dry run for each pod; nothing is changed."""
        for work in works:
            try:
                plan = await self.orchestrator.create(self._body(work, dry_run=True))
            except ApiError as error:
                if error.status == 404:
                    work.action, work.reason = Action.SKIP, "gone: the pod no longer exists"
                elif is_refusal(error):
                    work.action, work.reason = refused_action(work, refusal_text(error), evict=self.evict)
                else:
                    work.reason = f"{error.message} ({error.reason})"
                continue
            apply_dry_run(work, plan, evict=self.evict)

    async def run(self, works: Sequence[PodWork]) -> None:
        slots = asyncio.Semaphore(self.parallel)
        async with asyncio.TaskGroup() as group:
            for work in works:
                group.create_task(self._guarded(work, slots))

    async def _guarded(self, work: PodWork, slots: asyncio.Semaphore) -> None:
        """One pod; an API server error about it (a 503, a 403 on get) fails that pod, not the whole drain."""
        try:
            await self._one(work, slots)
        except KubeApiError as error:
            self._finish(work, Outcome.FAILED, "failed", f"the API server answered: {error.message}")

    async def _one(self, work: PodWork, slots: asyncio.Semaphore) -> None:
        async with slots:
            if self.stopping:
                return
            if self._out_of_time(work):
                return
            work.started = self.clock()
            self._set(work, action=Action.MIGRATE, state="requesting")
            migration: JSON | None = None
            try:
                migration = await self.orchestrator.create(self._body(work))
            except ApiError as error:
                migration = await self._after_refusal(work, error)
            except CliError as error:
                self._finish(work, Outcome.FAILED, "failed", f"cannot ask the orchestrator: {error.message}")
            if migration is not None:
                await self._follow(work, migration)
        if work.action is Action.EVICT and work.outcome is None:
            await self._evict(work)

    async def _after_refusal(self, work: PodWork, error: ApiError) -> JSON | None:
        """The migration to follow when the refusal names one already active, else None (the pod is handled)."""
        active = error.details.get("migration_id")
        if error.status == 409 and isinstance(active, str):
            try:
                return await self.orchestrator.get(active)
            except CliError as failure:
                self._finish(work, Outcome.FAILED, "failed", f"migration {active} is active: {failure.message}")
                return None
        if error.status == 404:
            self._finish(work, Outcome.GONE, "gone", "the pod no longer exists")
        elif not is_refusal(error):
            self._finish(work, Outcome.FAILED, "failed", f"{error.message} ({error.reason})")
        else:
            action, reason = refused_action(work, refusal_text(error), evict=self.evict)
            if action is Action.EVICT:
                self._set(work, action=action, state="to evict", reason=reason)
            else:
                self._finish(work, Outcome.LEFT, "left", reason)
        return None

    async def _follow(self, work: PodWork, migration: JSON) -> None:
        self._set(work, migration_id=str(migration.get("migration_id")), target=target_of(migration))
        current = migration
        while True:
            self._set(work, state=str(current.get("phase") or current.get("status")), target=target_of(current))
            status = current.get("status")
            if status in TERMINAL_STATUSES:
                if status == "completed":
                    self._finish(work, Outcome.MIGRATED, "Completed", "migrated")
                else:
                    why = f"migration {work.migration_id} {status}: {current.get('message')}"
                    self._finish(work, Outcome.FAILED, str(status), why)
                return
            left = self._left()
            if left is not None and left <= 0:
                why = (
                    f"migration {work.migration_id} still {current.get('phase')} at the drain's --timeout; it goes on"
                    f" (cancel {work.migration_id} stops it)"
                )
                self._finish(work, Outcome.FAILED, "timed out", why)
                return
            await self.sleep(self.poll_interval if left is None else min(self.poll_interval, max(left, 0.0)))
            try:
                current = await self.orchestrator.get(str(work.migration_id))
            except ApiError as error:
                if error.status < 500:
                    self._finish(work, Outcome.FAILED, "failed", f"{error.message} ({error.reason})")
                    return
            except CliError:
                pass  # the orchestrator restarting: keep trying until the deadline

    async def _evict(self, work: PodWork) -> None:
        """Like `kubectl drain`: the Eviction API, a 429 (a PodDisruptionBudget forbids it now) retried with backoff
        until the deadline; then wait for the pod to be gone."""
        if work.started is None:
            if self._out_of_time(work):
                return
            work.started = self.clock()
        delay = EVICTION_FIRST_DELAY
        self._set(work, state="evicting")
        while True:
            if self.stopping:
                return
            try:
                await self.cluster.evict(work.namespace, work.name, work.uid)
                break
            except KubeApiError as error:
                if error.not_found:
                    self._finish(work, Outcome.EVICTED, "gone")
                    return
                if error.status != 429:
                    self._finish(work, Outcome.FAILED, "failed", f"eviction refused: {error.message}")
                    return
                left = self._left()
                if left is not None and left <= delay:
                    why = f"eviction still refused at the drain's --timeout: {error.message}"
                    self._finish(work, Outcome.FAILED, "timed out", why)
                    return
                self._set(work, state="blocked by a disruption budget, retrying")
                await self.sleep(delay)
                delay = min(delay * 2, EVICTION_MAX_DELAY)
        self._set(work, state="terminating")
        while await self.cluster.pod_present(work.namespace, work.name, work.uid):
            left = self._left()
            if left is not None and left <= 0:
                self._finish(work, Outcome.FAILED, "timed out", "evicted, but still terminating at the --timeout")
                return
            await self.sleep(self.poll_interval if left is None else min(self.poll_interval, left))
        self._finish(work, Outcome.EVICTED, "evicted")


# The command ------------------------------------------------------------------------------------------------------
def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], **extra: Any
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "drain",
        help="cordon a node and move every pod off it (migrated, else evicted)",
        **extra,
        description=(
            "Cordon NODE, then move its pods off: each pod the orchestrator accepts is migrated to the node it"
            " chooses (at most --parallel at a time); a pod it refuses (e.g. owned_by_controller) is evicted like"
            " `kubectl drain` does (Eviction API, PodDisruptionBudgets respected, 429 retried until --timeout);"
            " DaemonSet pods, mirror pods and terminating pods are skipped. Exit codes: 0 the node has no pod left"
            " but skipped ones, 1 a pod failed or is still there, 2 usage or connection error, 130 interrupted (the"
            " node stays cordoned and migrations in flight go on)."
        ),
    )
    parser.add_argument("node", metavar="NODE", help="the node to drain")
    parser.add_argument(
        "-n", "--namespace", help="only pods of this namespace (default: every namespace, as kubectl drain)"
    )
    parser.add_argument(
        "--ignore-daemonsets",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=(
            "skip DaemonSet-managed pods (default: true here, unlike kubectl; with --no-ignore-daemonsets a"
            " DaemonSet pod stops the drain before anything is changed)"
        ),
    )
    parser.add_argument(
        "--timeout",
        type=parse_duration,
        default=DEFAULT_TIMEOUT,
        metavar="DURATION",
        help="give up waiting after this long, e.g. 90s, 10m; 0: no limit (default 10m)",
    )
    parser.add_argument(
        "--parallel",
        type=_positive_int,
        default=DEFAULT_PARALLEL,
        metavar="N",
        help="migrations in flight at a time (default %(default)s)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (migrated where, evicted, skipped) from the orchestrator's dry run; change nothing,"
        " not even the cordon",
    )
    parser.add_argument(
        "--no-evict",
        dest="evict",
        action="store_false",
        help="leave the pods the orchestrator refuses in place and report them (the exit code is then 1)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="also evict a refused pod that no controller manages (as kubectl drain --force: it is deleted for good)",
    )
    parser.add_argument(
        "--delete-emptydir-data",
        action="store_true",
        help="also evict a refused pod with emptyDir volumes (as kubectl drain: their data is lost)",
    )
    parser.add_argument("--poll-interval", type=float, default=POLL_INTERVAL, help=argparse.SUPPRESS)
    kube = parser.add_argument_group("kubeconfig (as kubectl)")
    kube.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    kube.add_argument("--context", help="kubeconfig context (default: its current-context)")
    connection = parser.add_argument_group("orchestrator connection")
    connection.add_argument(
        "--url",
        default=_env(URL_ENV) or DEFAULT_URL,
        help=f"orchestrator REST API (default: ${URL_ENV} or {DEFAULT_URL})",
    )
    connection.add_argument("--token", default=_env(TOKEN_ENV), help=f"bearer token (default: ${TOKEN_ENV})")
    connection.add_argument("--ca-file", default=_env(CA_FILE_ENV), metavar="PEM", help=f"(default: ${CA_FILE_ENV})")
    connection.add_argument(
        "--request-timeout",
        type=positive_float,
        default=DEFAULT_HTTP_TIMEOUT,
        metavar="SECONDS",
        help="seconds to wait for each HTTP response (default %(default)s)",
    )
    set_command(parser, drain)
    return parser


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _print(lines: Iterable[str], *, file: Any = None) -> None:
    for line in lines:
        print(line, file=file or sys.stdout)


async def drain(args: argparse.Namespace) -> int:
    context = kubeconfig.resolve(kubeconfig=args.kubeconfig, context=args.context)
    where = f"kubeconfig {context.config_file}" if context.config_file else "in-cluster credentials"
    try:
        api_client = await create_api_client(context.config_file, context=context.context)
    except Exception as error:  # kubernetes_asyncio's ConfigException and friends: unusable credentials
        raise UsageError(f"cannot load Kubernetes credentials ({where}): {error}") from None
    try:
        orchestrator = ApiClient(args.url, token=args.token, timeout=args.request_timeout, ca_file=args.ca_file)
    except OSError as error:
        await api_client.close()
        raise UsageError(f"cannot use --ca-file {args.ca_file}: {error.strerror or error}") from None
    async with api_client, orchestrator:
        cluster = KubeCluster(KubeApi(api_client, request_timeout=args.request_timeout))
        try:
            return await drain_with(args, cluster, orchestrator, program=program_of(args))
        except KubeApiError as error:
            raise CliError(f"the API server answered: {error.message} ({where})") from None


async def drain_with(args: argparse.Namespace, cluster: Cluster, orchestrator: Orchestrator, *, program: str) -> int:
    node: str = args.node
    if not await cluster.node_exists(node):
        raise UsageError(f"node {node} not found")
    pods = await cluster.pods_on(node, args.namespace)
    if not args.ignore_daemonsets and (blockers := daemonset_blockers(pods)):
        raise UsageError(
            f"cannot drain node {node}: DaemonSet-managed pods ({', '.join(blockers)}); their DaemonSet would"
            " recreate them -- drop --no-ignore-daemonsets to skip them. Nothing was changed."
        )
    candidates, skipped = sort_pods(pods, force=args.force, delete_emptydir_data=args.delete_emptydir_data)
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    if args.dry_run:
        drainer = Drainer(node, orchestrator, cluster, evict=args.evict)
        await drainer.plan(candidates)
        works = sorted([*candidates, *skipped], key=lambda w: w.key)
        _print(plan_lines(node, works))
        return EXIT_OK if all(w.action is not None for w in works) else EXIT_FAILED

    if candidates:
        await Drainer(node, orchestrator, cluster, evict=args.evict).probe(candidates[0])
    await cluster.cordon(node)
    print(f"node/{node} cordoned")
    # Listed again once cordoned: a pod a concurrent move bound here after the first listing is drained too.
    candidates, skipped = sort_pods(
        await cluster.pods_on(node, args.namespace), force=args.force, delete_emptydir_data=args.delete_emptydir_data
    )
    works = sorted([*candidates, *skipped], key=lambda w: w.key)
    progress = DrainProgress(works)
    drainer = Drainer(
        node,
        orchestrator,
        cluster,
        parallel=args.parallel,
        evict=args.evict,
        deadline=deadline,
        poll_interval=args.poll_interval,
        notify=progress.update,
    )
    progress.start()
    try:
        await drainer.run(candidates)
    except asyncio.CancelledError:
        drainer.stopping = True
        progress.stop()
        _print(interrupted_lines(node, works, program=program), file=sys.stderr)
        raise
    progress.stop()
    _print(summary_lines(node, works))
    skipped_uids = {w.uid for w in skipped if w.uid}
    problem = remaining_problem(node, await cluster.pods_on(node, args.namespace), skipped_uids)
    failed = [w for w in works if w.outcome in (Outcome.FAILED, Outcome.LEFT)]
    if problem is None and not failed:
        print(f"node/{node} drained")
        return EXIT_OK
    print(f"error: {problem or f'node {node}: {len(failed)} pod(s) failed'}", file=sys.stderr)
    return EXIT_FAILED


def interrupted_lines(node: str, works: Sequence[PodWork], *, program: str) -> list[str]:
    """What Ctrl-C leaves behind: the node stays cordoned; what was in flight."""
    lines = [f"interrupted: no new work started; node {node} stays cordoned (undo with: kubectl uncordon {node})"]
    for work in works:
        if work.outcome is not None or work.started is None:
            continue
        if work.migration_id:
            lines.append(
                f"  in flight: {work.key} migration {work.migration_id} ({work.state}) goes on"
                f" (cancel it with: {program} cancel {work.migration_id})"
            )
        else:
            lines.append(f"  in flight: {work.key} {work.action or ''} ({work.state})")
    pending = [w.key for w in works if w.outcome is None and w.started is None]
    if pending:
        lines.append(f"  not started: {', '.join(pending)}")
    return lines
