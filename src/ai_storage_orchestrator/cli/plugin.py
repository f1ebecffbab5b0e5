"""`kubectl migrate`: the client commands as a kubectl plugin (the executable `kubectl-migrate` on PATH).

    kubectl migrate POD [--to NODE] [-n NS] [--from NODE] [--wait | --dry-run] ...
    kubectl migrate list [-n NS | -A] | status ID | cancel ID | drain NODE | logs | completion bash|zsh

What differs from `ai-storage-orchestrator`, the way kubectl users expect it:
* the namespace defaults to the kubeconfig context's (``--kubeconfig``, ``$KUBECONFIG``, ``--context``), for
  `migrate` and for `list` (``-A`` lists every namespace);
* `migrate` without ``--from`` reads the pod's node from the API server with the same kubeconfig and context;
* `logs` with nothing piped in and no ``--file`` reads `kubectl logs` of the deployed orchestrator;
* the orchestrator is found as by the plain CLI: ``--url``, ``$AI_STORAGE_ORCHESTRATOR_URL``, else
  http://127.0.0.1:8080 (``--token``/``$AI_STORAGE_ORCHESTRATOR_TOKEN``, ``--ca-file``/``$..._CA_FILE``).

Everything else -- flags, output, exit codes -- is the plain CLI's."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ai_storage_orchestrator import __version__
from ai_storage_orchestrator.cli import completion, drain, kubeconfig, logs, migrations
from ai_storage_orchestrator.cli.client import Command, UsageError, set_command
from ai_storage_orchestrator.kube.client import create_api_client
from ai_storage_orchestrator.kube.errors import KubeApiError
from ai_storage_orchestrator.kube.resources import PODS, KubeApi
from ai_storage_orchestrator.kube.retrying import NO_RETRIES

PROGRAM = "kubectl migrate"
EXECUTABLE = "kubectl-migrate"
COMMANDS = ("migrate", "list", "status", "cancel", "drain", "logs", "completion")
POD_LOOKUP_TIMEOUT = 15.0

USAGE = """\
kubectl migrate POD [--to NODE] [-n NAMESPACE] [--from NODE] [--wait | --dry-run] [options]
       kubectl migrate list [-n NAMESPACE | -A] [options]
       kubectl migrate status ID [--wait] | cancel ID
       kubectl migrate drain NODE [--dry-run] [--parallel N] [--timeout 10m] [--no-evict] [--force]
                           [--delete-emptydir-data]
       kubectl migrate logs [--migration ID] [-f]
       kubectl migrate completion bash|zsh"""

DESCRIPTION = """\
Move a pod to another node with ai-storage-orchestrator: only the containers that still have work to do are
recreated on the target. The namespace defaults to the kubeconfig context's; the source node to the pod's; without
--to (or with --to auto) the orchestrator chooses the target node and says why. The orchestrator's REST API is
--url, else $AI_STORAGE_ORCHESTRATOR_URL, else http://127.0.0.1:8080 (e.g. `kubectl port-forward -n kube-system
svc/ai-storage-orchestrator 8080`)."""

EPILOG = """\
examples:
  kubectl migrate trainer --to gpu-2 --wait          move pod trainer of the current namespace, follow it
  kubectl migrate trainer -n ml --to gpu-2 --dry-run the plan and every check, nothing changed
  kubectl migrate trainer --dry-run                  the node the orchestrator would choose, and why
  kubectl migrate list -A                            every migration
  kubectl migrate status 455f2b4c6538 --wait         follow one migration to its end
  kubectl migrate drain gpu-1 --dry-run              what draining node gpu-1 would migrate, evict, skip
  source <(kubectl migrate completion bash)          shell completion

`kubectl migrate COMMAND --help` describes each command."""


def add_kube_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("kubeconfig (as kubectl)")
    group.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    group.add_argument("--context", help="kubeconfig context (default: its current-context)")


def _with_kube(parser: argparse.ArgumentParser, command: Command) -> argparse.ArgumentParser:
    add_kube_arguments(parser)
    set_command(parser, command)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        usage=USAGE,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s (ai-storage-orchestrator) {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate = migrations.add_migrate_parser(subparsers, plugin=True, prog=PROGRAM)
    _with_kube(migrate, plugin_migrate)
    _with_kube(migrations.add_list_parser(subparsers, plugin=True), plugin_list)
    migrations.add_status_parser(subparsers)
    migrations.add_cancel_parser(subparsers)
    drain.add_parser(subparsers, prog=f"{PROGRAM} drain")
    add_kube_arguments(logs.add_parser(subparsers, plugin=True))
    completion.add_parser(subparsers, root=parser, program=EXECUTABLE, default="migrate")
    parser.set_defaults(program=PROGRAM)
    return parser


# kubectl's own flags, which kubectl users put first (`kubectl migrate -n ml list`).
_LEADING_FLAGS = ("-n", "--namespace", "--context", "--kubeconfig")


def plugin_argv(argv: Sequence[str]) -> list[str]:
    """`kubectl migrate POD ...` is `migrate POD ...`; a command name, help or version stays as it is. kubectl's
    `-n`/`--namespace`/`--context`/`--kubeconfig` given before the command move after it."""
    words = list(argv)
    leading: list[str] = []
    while words and (words[0] in _LEADING_FLAGS or words[0].startswith(tuple(f"{f}=" for f in _LEADING_FLAGS))):
        flag = words.pop(0)
        leading.append(flag)
        if "=" not in flag and words:
            leading.append(words.pop(0))
    if not words and not leading:
        return []
    if words and words[0] in (*COMMANDS, "-h", "--help", "--version"):
        return [words[0], *leading, *words[1:]]
    return ["migrate", *leading, *words]


def _pod_name(text: str) -> str:
    """kubectl's forms: NAME, pod/NAME, pods/NAME."""
    kind, slash, name = text.partition("/")
    if not slash:
        return text
    if kind.lower() not in ("pod", "pods", "po") or not name:
        raise UsageError(f"POD must be NAME or pod/NAME, not {text!r}: only pods can be migrated")
    return name


async def pod_node(context: kubeconfig.KubeContext, namespace: str, pod: str) -> str:
    """The node the pod runs on, from the API server (the kubeconfig's credentials, else in-cluster ones)."""
    where = f"kubeconfig {context.config_file}" if context.config_file else "in-cluster credentials"
    hint = "; or give --from NODE"
    try:
        api_client = await create_api_client(context.config_file, context=context.context)
    except Exception as error:  # kubernetes_asyncio's ConfigException and friends: unusable credentials
        raise UsageError(f"cannot load Kubernetes credentials ({where}): {error}{hint}") from None
    async with api_client:
        try:
            found = await KubeApi(api_client, request_timeout=POD_LOOKUP_TIMEOUT, retry_policy=NO_RETRIES).get(
                PODS, pod, namespace=namespace
            )
        except KubeApiError as error:
            if error.not_found:
                raise UsageError(f"pod {namespace}/{pod} not found ({where}){hint}") from None
            raise UsageError(f"cannot read pod {namespace}/{pod} ({where}): {error.message}{hint}") from None
    node = (found.get("spec") or {}).get("nodeName")
    if not isinstance(node, str) or not node:
        raise UsageError(f"pod {namespace}/{pod} is not scheduled to a node yet: there is nothing to move")
    return node


def _context(args: argparse.Namespace) -> kubeconfig.KubeContext:
    return kubeconfig.resolve(kubeconfig=args.kubeconfig, context=args.context)


async def plugin_migrate(args: argparse.Namespace) -> int:
    args.pod = _pod_name(args.pod)
    if args.namespace is None or not args.source_node:
        context = _context(args)
        if args.namespace is None:
            args.namespace = context.namespace
        if not args.source_node:
            args.source_node = await pod_node(context, args.namespace, args.pod)
    return await migrations.migrate(args)


async def plugin_list(args: argparse.Namespace) -> int:
    if args.all_namespaces:
        args.namespace = None
    elif args.namespace is None:
        args.namespace = _context(args).namespace
    return await migrations.list_migrations(args)


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(plugin_argv(words))
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
