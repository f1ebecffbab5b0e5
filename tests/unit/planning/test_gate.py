"""The gate of a pre-warmed target: what it adds to the pod, what it takes from a pod moved twice, when a move cannot
pre-warm, and which images a node proves it lacks. The gate's script itself runs under a real `sh` here."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ai_storage_orchestrator.controller.invariant import containers_stopped
from ai_storage_orchestrator.controller.planning.gate import (
    GATE_CONTAINER,
    GATE_DEADLINE_ENV,
    GATE_DIGEST_ENV,
    GATE_SCRIPT,
    GATE_VOLUME,
    KNOCK_COMMAND,
    KNOCK_MOUNT,
    KNOCK_VOLUME,
    NODE_STATUS_MAX_IMAGES,
    OWNED_GATE_MARGIN_SECONDS,
    gate_container,
    gate_running,
    gated,
    missing_images,
    new_token,
    owned_gate_deadline,
    prewarm_blocker,
    released,
    token_digest,
    with_gate,
    without_gate,
)
from ai_storage_orchestrator.conventions import HANDOFF_ANNOTATION

JSON = dict[str, Any]


def _pod(**container: Any) -> JSON:
    trainer = {"name": "trainer", "image": "trainer:1", **container}
    return {
        "metadata": {"name": "p", "annotations": {}},
        "spec": {"containers": [trainer, {"name": "m", "image": "m:1"}]},
    }


def test_the_gate_runs_first_in_the_first_containers_image_and_holds_only_the_hash() -> None:
    token = new_token("abc")
    pod = with_gate(
        _pod(imagePullPolicy="Never", securityContext={"runAsUser": 1000, "privileged": True}), token_digest(token)
    )
    gate = pod["spec"]["initContainers"][0]
    assert (gate["name"], gate["image"], gate["imagePullPolicy"]) == (GATE_CONTAINER, "trainer:1", "Never")
    assert gate["env"] == [{"name": GATE_DIGEST_ENV, "value": token_digest(token)}]
    assert gate["securityContext"]["runAsUser"] == 1000
    assert "privileged" not in gate["securityContext"], "only identity fields are copied, never privileges"
    assert gate["securityContext"]["allowPrivilegeEscalation"] is False
    annotation, knock = pod["spec"]["volumes"][-2:]
    assert annotation["name"] == GATE_VOLUME
    assert HANDOFF_ANNOTATION in annotation["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"]
    assert knock == {"name": KNOCK_VOLUME, "emptyDir": {}}
    mounts = {m["name"]: m for m in gate["volumeMounts"]}
    assert mounts[GATE_VOLUME]["readOnly"] is True
    assert mounts[KNOCK_VOLUME]["mountPath"] == KNOCK_MOUNT
    assert all(KNOCK_VOLUME not in str(c) for c in pod["spec"]["containers"]), "only the gate sees the knock"
    assert token not in str(pod)
    assert token.startswith("abc.")
    assert len(token) == len("abc.") + 32
    assert gated(pod)
    assert not gated(_pod())


def test_a_pod_moved_twice_loses_the_earlier_gate_and_its_hand_off() -> None:
    pod = with_gate(_pod(), "d")
    pod["metadata"]["annotations"][HANDOFF_ANNOTATION] = "t"
    plain = without_gate(pod)
    assert "initContainers" not in plain["spec"]
    assert [v["name"] for v in plain["spec"].get("volumes") or []] == []
    assert HANDOFF_ANNOTATION not in plain["metadata"]["annotations"]
    assert released(pod, "t")
    assert not released(plain, "t")


@pytest.mark.parametrize(
    ("strategy", "rwo", "blocked"),
    [
        ("checkpoint-restart", [], None),
        ("checkpoint-restart", ["data"], "volume(s) data can be mounted read-write on one node at a time"),
        ("make-before-break", [], "make-before-break: the target starts beside the source anyway"),
    ],
)
def test_when_a_move_can_pre_warm(strategy: str, rwo: list[str], blocked: str | None) -> None:
    assert prewarm_blocker(strategy=strategy, read_write_once=rwo) == blocked


def test_gate_running_reads_the_gates_own_status() -> None:
    pod = with_gate(_pod(), "d")
    assert not gate_running(pod)
    pod["status"] = {"initContainerStatuses": [{"name": GATE_CONTAINER, "state": {"waiting": {"reason": "x"}}}]}
    assert not gate_running(pod)
    pod["status"]["initContainerStatuses"][0]["state"] = {"running": {"startedAt": "t"}}
    assert gate_running(pod)


def _node(*names: str) -> JSON:
    return {"metadata": {"name": "n"}, "status": {"images": [{"names": [name]} for name in names]}}


def test_missing_images_counts_only_what_a_complete_list_proves_and_never_pull() -> None:
    pod = _pod(imagePullPolicy="Never")
    assert missing_images(pod, _node("docker.io/library/other:1")) == ["trainer:1"]
    assert missing_images(pod, _node("docker.io/library/trainer:1")) == []
    assert missing_images(pod, _node()) == [], "a node that reports no images proves nothing"
    full = _node(*(f"i{n}:1" for n in range(NODE_STATUS_MAX_IMAGES)))
    assert missing_images(pod, full) == [], "a list of the kubelet's maximum length may be cut"
    assert missing_images(_pod(), _node("docker.io/library/other:1")) == [], "IfNotPresent may pull it"
    assert missing_images(pod, None) == []


WAIT_SECONDS = 0.5  # how long a test gives a gate that should stay shut (an open one exits in milliseconds)


def _dirs(tmp_path: Path, content: str | None) -> tuple[Path, Path]:
    annotation, knock = tmp_path / "annotation", tmp_path / "knock"
    annotation.mkdir(parents=True, exist_ok=True)
    knock.mkdir(exist_ok=True)
    if content is not None:
        (annotation / "handoff").write_text(content)
    return annotation, knock


def _start_gate(
    annotation: Path, knock: Path, digest: str, *, open_at: int | None = None, path: str | None = None
) -> subprocess.Popen[str]:
    env = {**os.environ, GATE_DIGEST_ENV: digest}
    if open_at is not None:
        env[GATE_DEADLINE_ENV] = str(open_at)
    if path is not None:
        env["PATH"] = path
    argv = ["sh", "-c", GATE_SCRIPT, GATE_CONTAINER, str(annotation), str(knock)]
    # Its own process group: the clean-up ends its helper too, as a container's end would.
    return subprocess.Popen(argv, env=env, text=True, stdout=subprocess.DEVNULL, start_new_session=True)


def _knock(knock: Path, token: str) -> subprocess.CompletedProcess[str]:
    """The knock's own command, the token on stdin as the knocker sends it."""
    argv = [part.replace(KNOCK_MOUNT, str(knock)) for part in KNOCK_COMMAND]
    return subprocess.run(argv, input=f"{token}\n", text=True, capture_output=True, check=False, timeout=5)


def _exit_code(gate: subprocess.Popen[str], seconds: float = WAIT_SECONDS) -> int:
    """The gate's exit code, or 124 (as `timeout` says it) when it still waits after `seconds`; never left running."""
    try:
        return gate.wait(seconds)
    except subprocess.TimeoutExpired:
        return 124
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(gate.pid, signal.SIGKILL)
        gate.wait()


def _door_made(knock: Path, gate: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 5
    while not (knock / "door").is_fifo():
        assert gate.poll() is None, "the gate ended before it made its door"
        assert time.monotonic() < deadline, "the gate never made its door"
        time.sleep(0.005)


def _run_gate(
    tmp_path: Path, digest: str, content: str | None, *, open_at: int | None = None, knocked: str | None = None
) -> int:
    annotation, knock = _dirs(tmp_path, content)
    gate = _start_gate(annotation, knock, digest, open_at=open_at)
    if knocked is not None:
        _door_made(knock, gate)
        assert _knock(knock, knocked).returncode == 0
    return _exit_code(gate)


@pytest.mark.tools
@pytest.mark.skipif(sys.platform != "linux", reason="the gate runs in a Linux container")
def test_the_gate_script_opens_only_for_the_token(tmp_path: Path) -> None:
    token = new_token("m1")
    assert _run_gate(tmp_path, token_digest(token), token) == 0
    assert _run_gate(tmp_path, token_digest(token), "m1.forged") == 124, "still waiting"
    assert _run_gate(tmp_path, token_digest(token), "") == 124


@pytest.mark.tools
@pytest.mark.skipif(sys.platform != "linux", reason="the gate runs in a Linux container")
def test_a_knock_with_the_token_opens_the_gate_and_a_forged_one_does_not(tmp_path: Path) -> None:
    token = new_token("m1")
    assert _run_gate(tmp_path / "a", token_digest(token), None, knocked="m1.forged") == 124
    assert _run_gate(tmp_path / "b", token_digest(token), "m1.forged", knocked=token) == 0
    assert _run_gate(tmp_path / "c", token_digest(token), None, knocked=token[:-1]) == 124, "cut short"


@pytest.mark.tools
@pytest.mark.skipif(sys.platform != "linux", reason="the gate runs in a Linux container")
def test_a_forged_knock_leaves_the_door_open_to_the_next_one(tmp_path: Path) -> None:
    token = new_token("m1")
    annotation, knock = _dirs(tmp_path, None)
    gate = _start_gate(annotation, knock, token_digest(token))
    _door_made(knock, gate)
    assert _knock(knock, "m1.forged").returncode == 0
    assert _knock(knock, token).returncode == 0, "the knock ends with its own exit, before the gate's"
    assert _exit_code(gate) == 0


@pytest.mark.tools
@pytest.mark.skipif(sys.platform != "linux", reason="the gate runs in a Linux container")
def test_a_knock_opened_before_the_hand_off_waits_for_its_token_and_never_holds_the_door(tmp_path: Path) -> None:
    """The knocker opens its exec ahead of the hand-off: until the token comes the command only waits on stdin, so
    the annotation still opens the gate meanwhile, and the token, once written, opens it at once."""
    token = new_token("m1")
    argv = [part.replace(KNOCK_MOUNT, str(tmp_path / "b" / "knock")) for part in KNOCK_COMMAND]
    annotation, knock = _dirs(tmp_path / "a", None)
    gate = _start_gate(annotation, knock, token_digest(token))
    _door_made(knock, gate)
    waiting = subprocess.Popen(
        [part.replace(KNOCK_MOUNT, str(knock)) for part in KNOCK_COMMAND], stdin=subprocess.PIPE, text=True
    )
    (annotation / "handoff").write_text(token)
    assert _exit_code(gate) == 0, "a knock waiting for its token does not hold the door"
    waiting.kill()
    waiting.wait()

    annotation, knock = _dirs(tmp_path / "b", None)
    gate = _start_gate(annotation, knock, token_digest(token))
    _door_made(knock, gate)
    early = subprocess.Popen(argv, stdin=subprocess.PIPE, text=True)
    with pytest.raises(subprocess.TimeoutExpired):
        gate.wait(0.2)  # shut while the knock waits for its token
    early.communicate(f"{token}\n", timeout=5)
    assert early.returncode == 0
    assert _exit_code(gate) == 0


@pytest.mark.tools
@pytest.mark.skipif(sys.platform != "linux", reason="the gate runs in a Linux container")
def test_sigterm_ends_a_held_gate_at_once(tmp_path: Path) -> None:
    """As a container's first process the gate would ignore SIGTERM without its trap: a deleted held pod would wait
    out its grace period."""
    annotation, knock = _dirs(tmp_path, None)
    gate = _start_gate(annotation, knock, token_digest(new_token("m1")))
    _door_made(knock, gate)
    gate.terminate()
    assert _exit_code(gate) == 143


@pytest.mark.tools
@pytest.mark.skipif(sys.platform != "linux", reason="the gate runs in a Linux container")
def test_without_mkfifo_the_gate_polls_and_the_knock_writes_its_file(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("sh", "sha256sum", "sleep", "date", "rm", "cat", "mv", "printf"):
        found = shutil.which(name)
        assert found is not None, name
        (tools / name).symlink_to(found)
    token = new_token("m1")
    annotation, knock = _dirs(tmp_path, None)
    gate = _start_gate(annotation, knock, token_digest(token), path=str(tools))
    assert _exit_code(gate, 0.2) == 124
    assert not (knock / "door").exists()
    gate = _start_gate(annotation, knock, token_digest(token), path=str(tools))
    assert _knock(knock, token).returncode == 0
    assert (knock / "token").read_text() == token
    assert _exit_code(gate) == 0


@pytest.mark.tools
@pytest.mark.skipif(sys.platform != "linux", reason="the gate runs in a Linux container")
def test_a_gate_in_an_image_without_sha256sum_ends_at_once_rather_than_hold_for_ever(tmp_path: Path) -> None:
    """It could never check a token: held, its pod would never start after the source went. Ended, it is a gate
    that cannot run, seen before the source is touched (the move goes on without pre-warming)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("sh", "sleep", "date", "rm", "cat", "mv", "printf", "mkfifo", "kill"):
        found = shutil.which(name)
        assert found is not None, name
        (tools / name).symlink_to(found)
    annotation, knock = _dirs(tmp_path, None)
    gate = _start_gate(annotation, knock, token_digest(new_token("m1")), path=str(tools))
    assert _exit_code(gate) == 127
    # A captured pod's gate still opens at its own deadline: its pod starts then, as with a token it could check.
    gate = _start_gate(annotation, knock, token_digest(new_token("m1")), open_at=int(time.time()), path=str(tools))
    assert _exit_code(gate) == 0


@pytest.mark.tools
@pytest.mark.skipif(sys.platform != "linux", reason="the gate runs in a Linux container")
def test_a_gate_with_a_deadline_opens_by_itself_then_and_not_before(tmp_path: Path) -> None:
    token = new_token("m1")
    now = int(time.time())
    assert _run_gate(tmp_path, token_digest(token), None, open_at=now - 1) == 0
    assert _run_gate(tmp_path, token_digest(token), None, open_at=now + 3600) == 124, "still waiting"
    assert _run_gate(tmp_path, token_digest(token), token, open_at=now + 3600) == 0, "the token still opens"


def test_an_owned_capture_opens_at_the_latest_after_the_source_grace_period_and_a_margin() -> None:
    assert owned_gate_deadline(1000.5, 10) == 1000 + 10 + OWNED_GATE_MARGIN_SECONDS
    assert owned_gate_deadline(1000.0, None) == 1000 + 30 + OWNED_GATE_MARGIN_SECONDS, "the pod default"
    gate = gate_container({"image": "x"}, "d", open_at=1234)
    assert {"name": GATE_DEADLINE_ENV, "value": "1234"} in gate["env"]
    assert [e["name"] for e in gate_container({"image": "x"}, "d")["env"]] == [GATE_DIGEST_ENV]


def _terminating(*states: JSON) -> JSON:
    statuses = [{"name": f"c{i}", "state": state} for i, state in enumerate(states)]
    return {"metadata": {"name": "s", "deletionTimestamp": "t"}, "status": {"containerStatuses": statuses}}


@pytest.mark.parametrize(
    ("pod", "stopped"),
    [
        (_terminating({"terminated": {"exitCode": 143}}, {"terminated": {"exitCode": 0}}), True),
        (_terminating({"terminated": {"exitCode": 143}}, {"running": {}}), False),
        (_terminating({"terminated": {"exitCode": 143}}, {}), False),
        (
            {"metadata": {"name": "s"}, "status": {"containerStatuses": [{"name": "c", "state": {"terminated": {}}}]}},
            False,
        ),
    ],
    ids=["all-stopped", "one-running", "one-unreported", "not-terminating"],
)
def test_a_source_counts_as_stopped_only_terminating_with_no_container_running(pod: JSON, stopped: bool) -> None:
    assert containers_stopped(pod) is stopped
