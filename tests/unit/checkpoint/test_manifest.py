"""The manifest: contents, canonical digest, serialisation (whole or streamed) and the rename command."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from ai_storage_orchestrator.checkpoint import manifest as m
from ai_storage_orchestrator.checkpoint.manifest import ArtifactFile, HookResult
from ai_storage_orchestrator.conventions import CHECKPOINT_MANIFEST_KIND

POD: dict[str, Any] = {
    "metadata": {"name": "trainer-pod", "namespace": "ml", "uid": "u-1"},
    "spec": {"nodeName": "node-a", "containers": [{"name": "trainer", "image": "i"}, {"name": "done", "image": "i"}]},
    "status": {
        "containerStatuses": [
            {"name": "trainer", "state": {"running": {"startedAt": "2024-05-01T10:00:00Z"}}, "restartCount": 2},
            {
                "name": "done",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2024-05-01T10:05:00Z"}},
            },
        ]
    },
}
DECISIONS = [
    {"name": "trainer", "kind": "container", "action": "migrate", "reason": "running"},
    {"name": "done", "kind": "container", "action": "skip", "reason": "completed, results safe"},
]


def build() -> dict[str, Any]:
    return m.build_manifest(
        migration_id="abc123",
        pod=POD,
        target_node="node-b",
        strategy="checkpoint-restart",
        decisions=DECISIONS,
        location={"volume": "shared", "directory": "/data/.ai-storage/checkpoints/trainer-pod/abc123"},
        hooks=[HookResult("trainer", ("python", "/save.py"), 0, 1.23456, 6, "2024-05-01T10:06:00Z")],
        artifacts=[
            ArtifactFile("trainer", "/scratch", "/scratch", "directory", 0, None, "artifacts/trainer/scratch"),
            ArtifactFile("trainer", "/scratch", "/scratch/a", "file", 3, "aa" * 32, "artifacts/trainer/scratch/a"),
            ArtifactFile("trainer", "/scratch", "/scratch/l", "symlink", 0, None, "artifacts/trainer/scratch/l", "a"),
        ],
        created_at="2024-05-01T10:06:00Z",
        finished_at="2024-05-01T10:06:05Z",
        version="1.2.3",
    )


def test_manifest_contents() -> None:
    manifest = build()
    assert manifest["schemaVersion"] == 1
    assert manifest["kind"] == "ai-storage.io/checkpoint"
    assert manifest["orchestrator"] == {"version": "1.2.3"}
    assert manifest["source"] == {
        "namespace": "ml",
        "pod": "trainer-pod",
        "uid": "u-1",
        "node": "node-a",
        "specDigest": "sha256:" + hashlib.sha256(m.canonical_json(POD["spec"])).hexdigest(),
    }
    assert manifest["containers"] == [
        {
            "name": "trainer",
            "kind": "container",
            "state": "running",
            "exitCode": None,
            "reason": None,
            "startedAt": "2024-05-01T10:00:00Z",
            "finishedAt": None,
            "restartCount": 2,
            "action": "migrate",
            "actionReason": "running",
        },
        {
            "name": "done",
            "kind": "container",
            "state": "terminated",
            "exitCode": 0,
            "reason": "Completed",
            "startedAt": None,
            "finishedAt": "2024-05-01T10:05:00Z",
            "restartCount": 0,
            "action": "skip",
            "actionReason": "completed, results safe",
        },
    ]
    assert manifest["hooks"] == [
        {
            "container": "trainer",
            "command": ["python", "/save.py"],
            "exitCode": 0,
            "durationSeconds": 1.235,
            "outputBytes": 6,
            "startedAt": "2024-05-01T10:06:00Z",
            "timedOut": False,
        }
    ]
    assert manifest["totals"] == {"files": 1, "bytes": 3}
    assert manifest["checksums"] == []
    assert manifest["artifacts"][2]["link"] == "a"
    assert "sha256" not in manifest["artifacts"][0]


def test_spec_digest_is_canonical() -> None:
    reordered = {"containers": POD["spec"]["containers"], "nodeName": "node-a"}
    assert m.spec_digest({"spec": reordered}) == m.spec_digest(POD)
    assert m.canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    assert m.spec_digest({"spec": {**reordered, "nodeName": "node-b"}}) != m.spec_digest(POD)


def test_serialise_round_trip_and_schema_check() -> None:
    data = m.serialise(build())
    assert data.endswith(b"\n")
    assert data == m.serialise(json.loads(data)), "stable: sorted keys"
    assert m.parse(data) == build()
    with pytest.raises(ValueError, match="schema version"):
        m.parse(json.dumps({**build(), "schemaVersion": 2}).encode())
    with pytest.raises(ValueError, match=r"not an ai-storage\.io checkpoint manifest"):
        m.parse(b"[]")


def test_streamed_manifest_is_the_serialised_one() -> None:
    """The manifest is written from a stream of its entries; it must be the very bytes ``serialise`` gives."""
    manifest = build()
    header = {key: value for key, value in manifest.items() if key != "artifacts"}
    chunks = list(m.serialise_streaming(header, iter(manifest["artifacts"])))
    assert len(chunks) == 2 + len(manifest["artifacts"]), "one chunk per entry: nothing accumulates"
    assert b"".join(chunks) == m.serialise(manifest)
    assert json.loads(b"".join(chunks)) == manifest
    empty = {**manifest, "artifacts": []}
    assert b"".join(m.serialise_streaming(header, [])) == m.serialise(empty)
    assert m.serialise(empty) == (json.dumps(empty, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def test_a_name_that_is_not_utf8_is_escaped_and_reads_back() -> None:
    name = b"/scratch/\xff.bin".decode("utf-8", "surrogateescape")  # as the tar follower decodes it
    entry = ArtifactFile("trainer", "/scratch", name, "file", 1, "bb" * 32, "artifacts/trainer" + name)
    data = m.serialise({"kind": CHECKPOINT_MANIFEST_KIND, "schemaVersion": 1, "artifacts": [entry.to_json()]})
    assert m.parse(data)["artifacts"][0]["path"] == name


def test_rename_argv() -> None:
    assert m.rename_argv("/data/.ai-storage/checkpoints/p/abc") == [
        "mv",
        "-f",
        "/data/.ai-storage/checkpoints/p/abc/manifest.json.tmp",
        "/data/.ai-storage/checkpoints/p/abc/manifest.json",
    ]


def _standard(value: object, *, ascii_only: bool = False) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=ascii_only) + "\n").encode()


def test_the_serialised_manifest_is_standard_json_with_sorted_keys_and_two_space_indent() -> None:
    manifest = build()
    manifest["artifacts"].append(
        ArtifactFile("trainer", "/scratch", "/scratch/é", "file", 1, "cc" * 32, "artifacts/trainer/scratch/é").to_json()
    )
    assert m.serialise(manifest) == _standard(manifest)
    assert "é".encode() in m.serialise(manifest), "UTF-8, not escaped"


def test_a_nested_artifacts_key_does_not_confuse_the_stream() -> None:
    manifest = build()
    manifest["location"] = {"artifacts": [], "volume": "shared", "zz": {"artifacts": []}}
    assert m.serialise(manifest) == _standard(manifest)


def test_an_entry_that_is_not_utf8_is_escaped_in_the_standard_way() -> None:
    name = b"/scratch/\xff.bin".decode("utf-8", "surrogateescape")
    entry = ArtifactFile("trainer", "/scratch", name, "file", 1, "bb" * 32, "artifacts/trainer" + name).to_json()
    manifest = {"kind": CHECKPOINT_MANIFEST_KIND, "schemaVersion": 1, "artifacts": [entry]}
    assert m.serialise(manifest) == _standard(manifest, ascii_only=True)


@pytest.mark.parametrize("ascii_name", [True, False])
def test_numbers_that_are_not_numbers_are_refused(ascii_name: bool) -> None:
    name = "/scratch/a" if ascii_name else b"/scratch/\xff".decode("utf-8", "surrogateescape")
    entry = {"path": name, "size": float("nan")}
    with pytest.raises(ValueError, match="JSON compliant"):
        m.serialise({"kind": CHECKPOINT_MANIFEST_KIND, "artifacts": [entry]})
    with pytest.raises(ValueError, match="JSON compliant"):
        m.canonical_json({"x": float("inf")})


def test_header_fields_and_artifact_entries() -> None:
    manifest = build()
    assert (manifest["migrationId"], manifest["createdAt"], manifest["finishedAt"]) == (
        "abc123",
        "2024-05-01T10:06:00Z",
        "2024-05-01T10:06:05Z",
    )
    assert manifest["target"] == {"node": "node-b", "strategy": "checkpoint-restart"}
    assert manifest["location"] == {"volume": "shared", "directory": "/data/.ai-storage/checkpoints/trainer-pod/abc123"}
    assert manifest["artifacts"][1] == {
        "container": "trainer",
        "artifact": "/scratch",
        "path": "/scratch/a",
        "kind": "file",
        "size": 3,
        "sha256": "aa" * 32,
        "stored": "artifacts/trainer/scratch/a",
    }


def test_init_containers_and_containers_without_a_state_are_recorded() -> None:
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "initContainerStatuses": [{"name": "fetch", "state": {"terminated": {"exitCode": 0}}, "restartCount": 1}],
            "containerStatuses": [{"name": "main"}],
        },
    }
    decisions = [{"name": "fetch", "kind": "init"}, {"name": "main", "kind": "container"}, {"name": "gone"}]
    records = m.container_records(pod, decisions)
    assert [(r["name"], r["state"], r["exitCode"], r["restartCount"]) for r in records] == [
        ("fetch", "terminated", 0, 1),
        ("main", "unknown", None, 0),
        ("gone", "unknown", None, 0),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"kind": "other"}', "not an ai-storage.io checkpoint manifest"),
        (b'{"kind": "ai-storage.io/checkpoint", "schemaVersion": 2}', "unsupported manifest schema version 2"),
        (b'{"kind": "ai-storage.io/checkpoint"}', "unsupported manifest schema version None"),
    ],
)
def test_parse_says_why_it_refuses(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match="manifest") as caught:
        m.parse(data)
    assert str(caught.value) == message
