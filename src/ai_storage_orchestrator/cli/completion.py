"""`completion bash|zsh`: a shell completion script generated from the command's own argparse parser, so every
command, option and choice it knows is completed and nothing else.

Values come from where the user would look them up: files for paths (--kubeconfig, --file, --ca-file, ...), the
choices argparse declares (--strategy, --status, -o, ...), and -- through kubectl when it is installed, with the
--kubeconfig, --context and -n already typed -- namespaces, nodes, pods and contexts. Nothing is asked of the
orchestrator. The scripts are static: completing costs no Python start-up."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from ai_storage_orchestrator.cli.client import EXIT_OK

SHELLS = ("bash", "zsh")
# What a value is, by the option's dest (or metavar): a kind the scripts know how to complete.
_KIND_BY_DEST = {
    "namespace": "namespace",
    "target_node": "node",
    "source_node": "node",
    "context": "context",
    "kubeconfig": "file",
    "pod": "pod",
}
_FILE_METAVARS = frozenset({"PATH", "PEM", "FILE"})
_KUBECTL_KINDS = {"namespace": "namespaces", "node": "nodes", "pod": "pods"}
Value = str | tuple[str, ...] | None  # None: a flag; "": a free value; a kind; choices


@dataclass(frozen=True, slots=True)
class Option:
    flags: tuple[str, ...]
    value: Value
    help: str


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    options: tuple[Option, ...]
    positional: Value  # what its first positional argument is ("": nothing to offer)


@dataclass(frozen=True, slots=True)
class Spec:
    """A program's commands. ``default``: the command a first word that is no command name belongs to (the kubectl
    plugin's `kubectl migrate POD ...` is its `migrate`)."""

    program: str
    commands: tuple[Command, ...]
    default: str | None = None
    top_options: tuple[Option, ...] = field(default=())

    @property
    def function(self) -> str:
        return "_" + re.sub(r"[^A-Za-z0-9]", "_", self.program)


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    text = re.sub(r"%\((\w+)\)s", lambda m: str(vars(action).get(m[1], "")), text).replace("%%", "%")
    text = re.split(r"; | \(|: ", " ".join(text.split()), maxsplit=1)[0]
    return text if len(text) <= 72 else text[:69].rstrip() + "..."


def _value(action: argparse.Action) -> Value:
    if action.nargs == 0:
        return None
    if action.choices is not None and not isinstance(action.choices, dict):
        return tuple(str(choice) for choice in action.choices)
    if action.dest in _KIND_BY_DEST:
        return _KIND_BY_DEST[action.dest]
    if action.metavar == "NODE":
        return "node"
    if action.metavar in _FILE_METAVARS or action.dest.endswith("_file"):
        return "file"
    if action.dest.endswith("_dir"):
        return "dir"
    return ""


def _command(name: str, help_text: str, parser: argparse.ArgumentParser) -> Command:
    options: list[Option] = []
    positional: Value = ""
    first_positional = True
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            options.append(Option(tuple(action.option_strings), _value(action), _help(action)))
        elif first_positional:
            positional, first_positional = _value(action), False
    return Command(name, help_text, tuple(options), positional)


def spec_of(parser: argparse.ArgumentParser, *, program: str, default: str | None = None) -> Spec:
    """The commands of ``parser`` (one level of subcommands, as this CLI has)."""
    commands: list[Command] = []
    top: list[Option] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            commands += [_command(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
        elif action.option_strings and action.help != argparse.SUPPRESS:
            top.append(Option(tuple(action.option_strings), _value(action), _help(action)))
    return Spec(program, tuple(commands), default, tuple(top))


# bash ----------------------------------------------------------------------------------------------------------------
def _bash_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _valued_pattern(options: Sequence[Option]) -> str:
    flags = sorted({flag for option in options if option.value is not None for flag in option.flags})
    return "|".join(flags) or "--no-such-option"


def _bash_value_case(options: Sequence[Option], function: str, indent: str) -> list[str]:
    lines = [f"{indent}case $prev in"]
    for option in options:
        if option.value is None:
            continue
        pattern = "|".join(option.flags)
        if isinstance(option.value, tuple):
            words = _bash_quote(" ".join(option.value))
            action = f'mapfile -t COMPREPLY < <(compgen -W {words} -- "$cur"); return'
        elif option.value:
            action = f"{function}_values {option.value}; return"
        else:
            action = "return"  # a free value: nothing to offer
        lines.append(f"{indent}    {pattern}) {action} ;;")
    lines.append(f"{indent}esac")
    return lines


def _positional_word(value: Value) -> str:
    if isinstance(value, tuple):
        return "choices:" + " ".join(value)
    return value or ""


def bash_script(spec: Spec) -> str:
    fn = spec.function
    names = " ".join(c.name for c in spec.commands)
    every = [o for c in spec.commands for o in c.options]
    top_words = " ".join(flag for o in spec.top_options for flag in o.flags)
    lines = [
        f"# bash completion for {spec.program}, generated by `{spec.program} completion bash`.",
        f"#   now:          source <({spec.program} completion bash)",
        f"#   every shell:  {spec.program} completion bash > ~/.local/share/bash-completion/completions/{spec.program}",
        "",
        f"{fn}_kubectl() {{  # names of one kind of object, through kubectl when there is one",
        "    command -v kubectl >/dev/null 2>&1 || return 0",
        "    local kind=$1",
        "    shift",
        '    kubectl "$@" get "$kind" --request-timeout=5s -o \'jsonpath={.items[*].metadata.name}\' 2>/dev/null',
        "}",
        "",
        f"{fn}_values() {{  # uses cur, ns and kube of {fn}",
        "    local names",
        "    case $1 in",
        '        file) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;',
        '        dir) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;',
        "        context)",
        "            command -v kubectl >/dev/null 2>&1 || return 0",
        '            names=$(kubectl "${kube[@]}" config get-contexts -o name 2>/dev/null)',
        '            mapfile -t COMPREPLY < <(compgen -W "$names" -- "$cur") ;;',
        "        namespace|node)",
        f'            names=$({fn}_kubectl "${{1}}s" "${{kube[@]}}")',
        '            mapfile -t COMPREPLY < <(compgen -W "$names" -- "$cur") ;;',
        "        pod)",
        f'            names=$({fn}_kubectl pods "${{kube[@]}}" ${{ns:+--namespace "$ns"}})',
        '            mapfile -t COMPREPLY < <(compgen -W "$names" -- "$cur") ;;',
        '        choices:*) mapfile -t COMPREPLY < <(compgen -W "${1#choices:}" -- "$cur") ;;',
        "    esac",
        "}",
        "",
        f"{fn}() {{",
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
        '    local cmd="" word before i skip=0 positionals=0 ns="" options positional=""',
        "    local -a kube=()",
        "    COMPREPLY=()",
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        "        word=${COMP_WORDS[i]} before=${COMP_WORDS[i-1]}",
        "        case $before in",
        "            -n|--namespace) ns=$word ;;",
        '            --kubeconfig) kube+=(--kubeconfig "$word") ;;',
        '            --context) kube+=(--context "$word") ;;',
        "        esac",
        "        if ((skip)); then skip=0; continue; fi",
        "        case $word in",
        f"            {_valued_pattern(every)}) skip=1 ;;",
        "            -*) ;;",
        "            *)",
        "                if [[ -n $cmd ]]; then ((positionals++))",
        f"                elif [[ ' {names} ' == *\" $word \"* ]]; then cmd=$word",
    ]
    if spec.default:
        lines.append(f"                else cmd={spec.default}; positionals=1")
    lines += [
        "                fi ;;",
        "        esac",
        "    done",
        "    if [[ -z $cmd ]]; then",
        "        if [[ $cur == -* ]]; then",
    ]
    default = next((c for c in spec.commands if c.name == spec.default), None)
    if default is not None:
        flags = " ".join(flag for o in default.options for flag in o.flags)
        lines += [
            *_bash_value_case(default.options, fn, "        "),
            f'            mapfile -t COMPREPLY < <(compgen -W {_bash_quote(flags + " " + top_words)} -- "$cur")',
            "        else",
            f'            mapfile -t COMPREPLY < <(compgen -W {_bash_quote(names)} -- "$cur")',
            f'            local pods; pods=$({fn}_kubectl pods "${{kube[@]}}" ${{ns:+--namespace "$ns"}})',
            '            mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -W "$pods" -- "$cur")',
            "        fi",
        ]
    else:
        lines += [
            f'            mapfile -t COMPREPLY < <(compgen -W {_bash_quote(top_words)} -- "$cur")',
            "        else",
            f'            mapfile -t COMPREPLY < <(compgen -W {_bash_quote(names)} -- "$cur")',
            "        fi",
        ]
    lines += ["        return", "    fi", "    case $cmd in"]
    for command in spec.commands:
        flags = " ".join(flag for o in command.options for flag in o.flags)
        lines += [
            f"        {command.name})",
            *_bash_value_case(command.options, fn, "            "),
            f"            options={_bash_quote(flags)}",
            f"            positional={_bash_quote(_positional_word(command.positional))} ;;",
        ]
    lines += [
        "    esac",
        "    if [[ $cur == -* ]]; then",
        '        mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")',
        "    elif ((positionals == 0)) && [[ -n $positional ]]; then",
        f'        {fn}_values "$positional"',
        "    fi",
        "}",
        "",
        f"complete -F {fn} {spec.program}",
        "",
    ]
    return "\n".join(lines)


# zsh -----------------------------------------------------------------------------------------------------------------
def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_described(items: Sequence[tuple[str, str]]) -> str:
    """`_describe`'s NAME:DESCRIPTION entries (a colon in a name escaped)."""
    return " ".join(_zsh_quote(name.replace(":", "\\:") + ":" + text) for name, text in items)


def _zsh_value_case(options: Sequence[Option], function: str, indent: str) -> list[str]:
    lines = [f"{indent}case $prev in"]
    for option in options:
        if option.value is None:
            continue
        pattern = "|".join(option.flags)
        if isinstance(option.value, tuple):
            action = "compadd -- " + " ".join(_zsh_quote(v) for v in option.value) + "; return"
        elif option.value:
            action = f"{function}_values {option.value}; return"
        else:
            action = f"_message {_zsh_quote(option.help or 'value')}; return"
        lines.append(f"{indent}    {pattern}) {action} ;;")
    lines.append(f"{indent}esac")
    return lines


def zsh_script(spec: Spec) -> str:
    fn = spec.function
    names = " ".join(c.name for c in spec.commands)
    every = [o for c in spec.commands for o in c.options]
    commands = _zsh_described([(c.name, c.help) for c in spec.commands])
    top = _zsh_described([(flag, o.help) for o in spec.top_options for flag in o.flags])
    lines = [
        f"#compdef {spec.program}",
        f"# zsh completion for {spec.program}, generated by `{spec.program} completion zsh`.",
        f"#   now:          source <({spec.program} completion zsh)",
        f'#   every shell:  {spec.program} completion zsh > "${{fpath[1]}}/_{spec.program}"',
        "",
        f"{fn}_kubectl() {{  # names of one kind of object, through kubectl when there is one",
        "  (( $+commands[kubectl] )) || return 0",
        "  local kind=$1",
        "  shift",
        '  kubectl "$@" get "$kind" --request-timeout=5s -o \'jsonpath={.items[*].metadata.name}\' 2>/dev/null',
        "}",
        "",
        f"{fn}_values() {{  # uses ns and kube of {fn}",
        "  case $1 in",
        "    file) _files ;;",
        "    dir) _files -/ ;;",
        "    context)",
        "      (( $+commands[kubectl] )) || return 0",
        '      compadd -- ${(f)"$(kubectl "${kube[@]}" config get-contexts -o name 2>/dev/null)"} ;;',
        f'    namespace|node) compadd -- ${{=$({fn}_kubectl "${{1}}s" "${{kube[@]}}")}} ;;',
        f'    pod) compadd -- ${{=$({fn}_kubectl pods "${{kube[@]}}" ${{ns:+--namespace}} ${{ns:+$ns}})}} ;;',
        "    choices:*) compadd -- ${=${1#choices:}} ;;",
        "  esac",
        "}",
        "",
        f"{fn}() {{",
        "  local cur=${words[CURRENT]} prev=${words[CURRENT-1]}",
        '  local cmd="" word before i skip=0 positionals=0 ns="" positional=""',
        "  local -a kube opts",
        "  for ((i = 2; i < CURRENT; i++)); do",
        "    word=${words[i]} before=${words[i-1]}",
        "    case $before in",
        "      -n|--namespace) ns=$word ;;",
        '      --kubeconfig) kube+=(--kubeconfig "$word") ;;',
        '      --context) kube+=(--context "$word") ;;',
        "    esac",
        "    if (( skip )); then skip=0; continue; fi",
        "    case $word in",
        f"      {_valued_pattern(every)}) skip=1 ;;",
        "      -*) ;;",
        "      *)",
        "        if [[ -n $cmd ]]; then (( positionals++ ))",
        f"        elif [[ ' {names} ' == *\" $word \"* ]]; then cmd=$word",
    ]
    if spec.default:
        lines.append(f"        else cmd={spec.default}; positionals=1")
    lines += ["        fi ;;", "    esac", "  done", "  if [[ -z $cmd ]]; then"]
    default = next((c for c in spec.commands if c.name == spec.default), None)
    if default is not None:
        options = _zsh_described([(flag, o.help) for o in default.options for flag in o.flags])
        lines += [
            *_zsh_value_case(default.options, fn, "    "),
            "    if [[ $cur == -* ]]; then",
            f"      opts=({options} {top})",
            "      _describe -t options option opts",
            "    else",
            f"      opts=({commands})",
            "      _describe -t commands command opts",
            f"      {fn}_values pod",
            "    fi",
        ]
    else:
        lines += [
            "    if [[ $cur == -* ]]; then",
            f"      opts=({top})",
            "      _describe -t options option opts",
            "    else",
            f"      opts=({commands})",
            "      _describe -t commands command opts",
            "    fi",
        ]
    lines += ["    return", "  fi", "  case $cmd in"]
    for command in spec.commands:
        options = _zsh_described([(flag, o.help) for o in command.options for flag in o.flags])
        lines += [
            f"    {command.name})",
            *_zsh_value_case(command.options, fn, "      "),
            f"      opts=({options})",
            f"      positional={_zsh_quote(_positional_word(command.positional))} ;;",
        ]
    lines += [
        "  esac",
        "  if [[ $cur == -* ]]; then",
        "    _describe -t options option opts",
        "  elif (( positionals == 0 )) && [[ -n $positional ]]; then",
        f'    {fn}_values "$positional"',
        "  fi",
        "}",
        "",
        f'if [ "$funcstack[1]" = "_{spec.program}" ]; then',
        f'  {fn} "$@"',
        "else",
        f"  compdef {fn} {spec.program}",
        "fi",
        "",
    ]
    return "\n".join(lines)


def script(spec: Spec, shell: str) -> str:
    return bash_script(spec) if shell == "bash" else zsh_script(spec)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    root: argparse.ArgumentParser,
    program: str,
    default: str | None = None,
) -> argparse.ArgumentParser:
    """``root``: the parser whose commands the script completes (complete once this call returns)."""
    parser = subparsers.add_parser(
        "completion",
        help="print a bash or zsh completion script",
        description=(
            f"Print a completion script for {program}. bash: `source <({program} completion bash)`, or save it as"
            f" ~/.local/share/bash-completion/completions/{program}. zsh: `source <({program} completion zsh)`, or"
            f' save it as _{program} in a directory of $fpath (e.g. "${{fpath[1]}}/_{program}") before compinit.'
        ),
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")

    def handler(args: argparse.Namespace) -> int:
        sys.stdout.write(script(spec_of(root, program=program, default=default), args.shell))
        return EXIT_OK

    parser.set_defaults(handler=handler)
    return parser
