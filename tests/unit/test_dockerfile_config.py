"""The image scripts/build.sh packs without a container engine runs what the Dockerfile's image runs: the final stage's
runtime configuration, read by tools/image/dockerfile_config.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.image.dockerfile_config import final_stage_options, main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_projects_dockerfile() -> None:
    assert final_stage_options((ROOT / "Dockerfile").read_text()) == [
        "--entrypoint=ai-storage-orchestrator",
        "--cmd=serve",
        "--cmd=--host=0.0.0.0",
        "--cmd=--port=8080",
        "--cmd=--auth=kubernetes",
        "--cmd=--tls-cert-file=/tls/tls.crt",
        "--cmd=--tls-key-file=/tls/tls.key",
        "--env=PYTHONDONTWRITEBYTECODE=1",
        "--env=PIP_DISABLE_PIP_VERSION_CHECK=1",
        "--user=10001:10001",
        "--workdir=/",
        "--expose=8080/tcp",
    ]


def test_only_the_final_stage_counts() -> None:
    text = """# comment
FROM base AS build
ENV BUILD_ONLY=1
WORKDIR /src
CMD ["build"]
FROM base
ENV A=1 \\
    B="two words"
# a comment between
WORKDIR /app
WORKDIR sub
EXPOSE 8080 9090/udp
USER app
ENTRYPOINT ["run"]
"""
    assert final_stage_options(text) == [
        "--entrypoint=run",
        "--env=A=1",
        "--env=B=two words",
        "--user=app",
        "--workdir=/app/sub",
        "--expose=8080/tcp",
        "--expose=9090/udp",
    ]


def test_a_later_entrypoint_resets_cmd() -> None:
    assert final_stage_options('FROM b\nCMD ["a"]\nENTRYPOINT ["e"]\n') == ["--entrypoint=e", "--workdir=/"]
    assert final_stage_options('FROM b\nENTRYPOINT ["e"]\nCMD ["a"]\n') == ["--entrypoint=e", "--cmd=a", "--workdir=/"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ENV A=1\n", "no FROM"),
        ("FROM b\nCMD run it\n", "exec form"),
        ('FROM b\nENTRYPOINT ["a", 1]\n', "exec form"),
        ("FROM b\nENV A 1\n", "NAME=value"),
        ("FROM b\nENV A=$B\n", "substitution"),
        ('FROM b\nLABEL a="b"\n', "LABEL"),
        ("FROM b\nVOLUME /data\n", "VOLUME"),
        ("FROM b\nHEALTHCHECK NONE\n", "HEALTHCHECK"),
    ],
)
def test_refuses_what_it_cannot_carry(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        final_stage_options(text)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text('FROM b\nCMD ["-c"]\n')
    assert main([str(dockerfile)]) == 0
    assert capsys.readouterr().out.splitlines() == ["--cmd=-c", "--workdir=/"]
    dockerfile.write_text("FROM b\nCMD -c\n")
    assert main([str(dockerfile)]) == 1
    assert "exec form" in capsys.readouterr().err
    assert main([]) == 2
