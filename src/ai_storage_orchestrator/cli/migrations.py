"""The REST client commands: `migrate`, `status`, `list`, `cancel`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from ai_storage_orchestrator.api.schemas import LIMIT_MAX, LIMIT_MIN
from ai_storage_orchestrator.cli import output
from ai_storage_orchestrator.cli.client import (
    EXIT_FAILED,
    EXIT_OK,
    JSON,
    PROGRAM,
    ApiClient,
    ApiError,
    CliError,
    UnreachableError,
    UsageError,
    add_connection_arguments,
    print_json,
    program_of,
    set_command,
)
from ai_storage_orchestrator.cli.progress import Progress
from ai_storage_orchestrator.models import Status, Strategy

POLL_INTERVAL = 0.5
# While waiting, an orchestrator that restarts or fails over is not a reason to give up at once.
RETRY_BUDGET_SECONDS = 30.0


def _print(lines: list[str]) -> None:
    for line in lines:
        print(line)


def _add_wait_arguments(parser: argparse.ArgumentParser, help_text: str, *, exclusive_with_dry_run: bool) -> None:
    group: Any = parser.add_mutually_exclusive_group() if exclusive_with_dry_run else parser
    if exclusive_with_dry_run:
        group.add_argument(
            "--dry-run", action="store_true", help="print the plan and every check without changing anything"
        )
    group.add_argument("--wait", action="store_true", help=help_text)
    # Hidden: how often --wait polls GET /api/migrations/<id> (tests make it short).
    parser.add_argument("--poll-interval", type=float, default=POLL_INTERVAL, help=argparse.SUPPRESS)


def _emit(as_json: bool, value: JSON, lines: list[str]) -> None:
    if as_json:
        print_json(value)
    else:
        _print(lines)


# migrate ------------------------------------------------------------------------------------------------------------
def add_migrate_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], *, plugin: bool = False, **extra: Any
) -> argparse.ArgumentParser:
    """``plugin``: as `kubectl migrate` has it -- the namespace defaults to the kubeconfig context's and the source
    node to the pod's (the caller resolves both); ``extra`` goes to ``add_parser`` (e.g. ``prog``)."""
    parser = subparsers.add_parser(
        "migrate",
        help="move a pod to another node",
        **extra,
        description=(
            "Ask the orchestrator to move POD to another node. Exit codes: 0 accepted (with --wait: completed;"
            " with --dry-run: would be accepted), 1 failed or cancelled (with --dry-run: would be refused),"
            " 2 usage or HTTP error, 130 interrupted."
        ),
    )
    parser.add_argument("pod", metavar="POD", help="the pod to move" + (" (NAME or pod/NAME)" if plugin else ""))
    if plugin:
        parser.add_argument("-n", "--namespace", help="the pod's namespace (default: the kubeconfig context's)")
    else:
        parser.add_argument("-n", "--namespace", required=True, help="the pod's namespace")
    parser.add_argument(
        "--to",
        dest="target_node",
        metavar="NODE",
        help=(
            "the node to move it to (default: auto, the orchestrator chooses the node that passes every fit check and"
            " scores best, and says why)"
        ),
    )
    parser.add_argument(
        "--from",
        dest="source_node",
        metavar="NODE",
        help=(
            "the node it runs on now (default: read from the pod through the API server)"
            if plugin
            else "the node it runs on now (required: the orchestrator refuses a pod that is not there)"
        ),
    )
    parser.add_argument("--preserve-pv", action="store_true", help="keep its data on the shared persistent volume")
    parser.add_argument(
        "--ignore-pdb",
        action="store_true",
        help=(
            "delete the source pod instead of evicting it, so no PodDisruptionBudget can block the move"
            " (without it, a blocked migration fails at its timeout: blocked_by_disruption_budget)"
        ),
    )
    parser.add_argument(
        "--strategy",
        choices=[s.value for s in Strategy],
        default=Strategy.AUTO.value,
        help="make-before-break starts the target first; checkpoint-restart stops the source first (default auto)",
    )
    parser.add_argument("--timeout-seconds", type=int, metavar="N", help="deadline of the whole migration (API: 600)")
    _add_wait_arguments(parser, "show progress until the migration ends, then a summary", exclusive_with_dry_run=True)
    add_connection_arguments(parser)
    set_command(parser, migrate)
    return parser


def _node_hint(args: argparse.Namespace) -> str:
    return (
        "--from NODE is required: the orchestrator moves a pod only from the node it runs on now; find it with"
        f" `kubectl get pod -n {args.namespace} {args.pod} -o jsonpath='{{.spec.nodeName}}'`"
    )


def migration_body(args: argparse.Namespace) -> JSON:
    if not args.source_node:
        raise UsageError(_node_hint(args))
    body: JSON = {
        "pod_name": args.pod,
        "pod_namespace": args.namespace,
        "source_node": args.source_node,
        "target_node": args.target_node,
        "preserve_pv": args.preserve_pv,
        "strategy": args.strategy,
    }
    if args.target_node is None:  # omitted: the orchestrator chooses (as `--to auto`)
        del body["target_node"]
    if args.timeout_seconds is not None:
        body["timeout_seconds"] = args.timeout_seconds
    if args.ignore_pdb:  # sent only when set: an orchestrator that predates it refuses unknown fields
        body["ignore_pdb"] = True
    if args.dry_run:
        body["dry_run"] = True
    return body


async def migrate(args: argparse.Namespace) -> int:
    body = migration_body(args)
    as_json = args.output == "json"
    async with ApiClient.from_args(args) as api:
        if args.dry_run:
            plan = await api.create(body)
            _emit(as_json, plan, output.plan_lines(plan))
            return EXIT_OK if output.plan_accepted(plan) else EXIT_FAILED
        migration = await api.create(body)
        if not args.wait:
            _emit(as_json, migration, output.accepted_lines(migration, program=program_of(args)))
            return EXIT_OK
        if not as_json:
            print(output.accepted_lines(migration)[0])
        final = await wait_for(
            api, migration, poll_interval=args.poll_interval, quiet=as_json, program=program_of(args)
        )
    return _report_final(final, as_json=as_json)


def _report_final(migration: JSON, *, as_json: bool) -> int:
    if as_json:
        print_json(migration)
    else:
        _print([output.headline(migration), *output.migration_lines(migration, transitions=False)])
    return EXIT_OK if migration.get("status") == Status.COMPLETED.value else EXIT_FAILED


async def wait_for(
    api: ApiClient, migration: JSON, *, poll_interval: float, quiet: bool = False, program: str = PROGRAM
) -> JSON:
    """Poll the migration until its status is completed, failed or cancelled; return the last object."""
    progress = Progress(quiet=quiet)
    migration_id = str(migration.get("migration_id"))
    current = migration
    failing_since: float | None = None
    try:
        while True:
            progress.show(current)
            if current.get("status") in output.TERMINAL_STATUSES:
                progress.break_line()
                return current
            await asyncio.sleep(poll_interval)
            try:
                current = await api.get(migration_id)
                failing_since = None
            except (UnreachableError, ApiError) as error:
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                if (isinstance(error, ApiError) and error.status < 500) or now - failing_since > RETRY_BUDGET_SECONDS:
                    progress.break_line()
                    if not (isinstance(error, ApiError) and error.status == 404):  # gone: nothing goes on
                        print(
                            f"stopped waiting; migration {migration_id} goes on"
                            f" (follow it again with: {program} status {migration_id} --wait)",
                            file=sys.stderr,
                        )
                    raise
                if failing_since == now:
                    progress.break_line()
                    print(f"warning: {error.message}; still trying", file=sys.stderr)
    except asyncio.CancelledError:  # Ctrl-C: the migration goes on without us
        progress.break_line()
        print(
            f"stopped waiting; migration {migration_id} goes on (cancel it with: {program} cancel {migration_id})",
            file=sys.stderr,
        )
        raise


# status -------------------------------------------------------------------------------------------------------------
def add_status_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "status",
        help="show one migration",
        description="Show a migration. With --wait, exit 0 when it completed and 1 when it failed or was cancelled.",
    )
    parser.add_argument("migration_id", metavar="ID")
    _add_wait_arguments(parser, "show progress until the migration ends", exclusive_with_dry_run=False)
    add_connection_arguments(parser)
    set_command(parser, status)
    return parser


async def status(args: argparse.Namespace) -> int:
    as_json = args.output == "json"
    async with ApiClient.from_args(args) as api:
        migration = await api.get(args.migration_id)
        if args.wait:
            migration = await wait_for(
                api, migration, poll_interval=args.poll_interval, quiet=as_json, program=program_of(args)
            )
    if args.wait:
        return _report_final(migration, as_json=as_json)
    _emit(as_json, migration, output.migration_lines(migration))
    return EXIT_OK


# list ---------------------------------------------------------------------------------------------------------------
def page_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not LIMIT_MIN <= value <= LIMIT_MAX:
        raise argparse.ArgumentTypeError(f"must be from {LIMIT_MIN} to {LIMIT_MAX}: {text!r}")
    return value


def add_list_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], *, plugin: bool = False
) -> argparse.ArgumentParser:
    """``plugin``: as `kubectl list` has it -- the kubeconfig context's namespace unless -A (the caller resolves it)."""
    parser = subparsers.add_parser(
        "list",
        help="list migrations, newest first",
        description=(
            "List migrations, newest first. With --limit N the orchestrator answers in pages of N and the command"
            " follows them to the end, printing each page as it arrives (--output json: one document with every"
            " migration, as without --limit). With --continue TOKEN it fetches that one page only (--output json:"
            " the page as the API answers it, with its `continue` token when more remain); an empty TOKEN is the"
            " first page."
        ),
    )
    parser.add_argument("--status", choices=[s.value for s in Status], help="only migrations with this status")
    if plugin:
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument(
            "-n", "--namespace", help="only migrations of pods in this namespace (default: the kubeconfig context's)"
        )
        scope.add_argument(
            "-A", "--all-namespaces", action="store_true", help="migrations of every namespace the orchestrator sees"
        )
    else:
        parser.add_argument("-n", "--namespace", help="only migrations of pods in this namespace")
    parser.add_argument("--pod", help="only migrations of pods with this name")
    parser.add_argument(
        "--limit", type=page_limit, metavar="N", help=f"ask for pages of at most N migrations ({LIMIT_MIN}-{LIMIT_MAX})"
    )
    parser.add_argument(
        "--continue",
        dest="continue_token",
        metavar="TOKEN",
        help="fetch only the page this token (from a previous page) points to",
    )
    add_connection_arguments(parser)
    set_command(parser, list_migrations)
    return parser


async def list_migrations(args: argparse.Namespace) -> int:
    as_json = args.output == "json"
    filters = {"status": args.status, "namespace": args.namespace, "pod": args.pod}
    async with ApiClient.from_args(args) as api:
        if args.limit is not None and args.continue_token is None:
            return await _list_every_page(api, args.limit, filters, as_json=as_json)
        # Everything in one answer, or the one page --continue points to.
        result = await api.list(**filters, limit=args.limit, continue_token=args.continue_token)
    if as_json:
        print_json(result)
        return EXIT_OK
    _print(output.list_lines(_items(result)))
    following = result.get("continue")
    if isinstance(following, str) and following:
        print(f"more migrations: repeat with --continue {following}", file=sys.stderr)
    return EXIT_OK


async def _list_every_page(api: ApiClient, limit: int, filters: dict[str, Any], *, as_json: bool) -> int:
    """Follow the `continue` tokens to the last page; tables print as pages arrive, JSON once at the end."""
    pages = output.ListPages()
    collected: list[JSON] = []
    seen: set[str] = set()
    token: str | None = None
    while True:
        page = await api.list(**filters, limit=limit, continue_token=token)
        items = _items(page)
        if as_json:
            collected += items
        else:
            _print(pages.lines(items))
            sys.stdout.flush()
        following = page.get("continue")
        if not isinstance(following, str) or not following:
            break
        if following in seen:
            raise CliError(f"the orchestrator answered the same continue token twice ({following[:40]}); stopped")
        seen.add(following)
        token = following
    if as_json:
        print_json({"migrations": collected, "count": len(collected)})
    else:
        _print(pages.closing_lines())
    return EXIT_OK


def _items(page: JSON) -> list[JSON]:
    migrations = page.get("migrations")
    return [m for m in migrations if isinstance(m, dict)] if isinstance(migrations, list) else []


# cancel -------------------------------------------------------------------------------------------------------------
def add_cancel_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "cancel", help="cancel a migration (it rolls back to the source pod)", description="Cancel a migration."
    )
    parser.add_argument("migration_id", metavar="ID")
    add_connection_arguments(parser)
    set_command(parser, cancel)
    return parser


async def cancel(args: argparse.Namespace) -> int:
    async with ApiClient.from_args(args) as api:
        migration = await api.cancel(args.migration_id)
    if args.output == "json":
        print_json(migration)
    else:
        print(
            f"Cancel requested for migration {migration.get('migration_id')}"
            f" (status {migration.get('status')}, phase {migration.get('phase')}); it rolls back to the source pod."
        )
        print(f"Follow it with: {program_of(args)} status {migration.get('migration_id')} --wait")
    return EXIT_OK
