"""OCI image archives (tools/image/oci_image.py: the real-node tier's images, scripts/build.sh's): every descriptor
matches its blob, the layers keep what the image needs and nothing host-specific, and the same tree always gives the
same bytes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tools.image import oci_image
from tools.image.oci_image import write_oci_archive

pytestmark = pytest.mark.unit

NAME = "aiso.local/numpy-workload:1"
CMD = ["python3", "-c", "print(1)"]
ENV = ["PATH=/usr/bin:/bin", "PYTHONUNBUFFERED=1"]


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    (root / "empty").mkdir()
    tool = root / "usr" / "bin" / "tool"
    tool.write_bytes(b"#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    (root / "etc" / "hello").write_text("hello\n")
    (root / "etc" / "hello").chmod(0o640)
    os.link(tool, root / "usr" / "bin" / "tool-again")
    (root / "bin").symlink_to("usr/bin")
    (root / "usr" / "bin" / "sh").symlink_to("tool")
    os.mkfifo(root / "etc" / "fifo")
    return root


class Layout:
    """An OCI image-layout tar read back into memory (small test images only)."""

    def __init__(self, archive: Path) -> None:
        with tarfile.open(archive) as tar:
            self.members = [m.name for m in tar.getmembers()]
            self.files = {m.name: self._read(tar, m) for m in tar.getmembers() if m.isfile()}

    @staticmethod
    def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
        handle = tar.extractfile(member)
        assert handle is not None
        return handle.read()

    def json(self, name: str) -> Any:
        return json.loads(self.files[name])

    def blob(self, descriptor: dict[str, Any]) -> bytes:
        """The blob a descriptor names, after checking its digest and size against the bytes."""
        algorithm, _, hex_digest = descriptor["digest"].partition(":")
        assert algorithm == "sha256"
        data = self.files[f"blobs/sha256/{hex_digest}"]
        assert hashlib.sha256(data).hexdigest() == hex_digest
        assert len(data) == descriptor["size"]
        return data


def _build(rootfs: Path, archive: Path) -> str:
    return write_oci_archive(rootfs, archive, name=NAME, cmd=CMD, env=ENV, workdir="/work")


def test_descriptors_match_their_blobs(rootfs: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.oci.tar"
    digest = _build(rootfs, archive)
    layout = Layout(archive)

    assert layout.json("oci-layout") == {"imageLayoutVersion": "1.0.0"}
    index = layout.json("index.json")
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [entry] = index["manifests"]
    assert entry["digest"] == digest
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"] == {
        "io.containerd.image.name": "aiso.local/numpy-workload:1",
        "org.opencontainers.image.ref.name": "1",
    }
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}

    manifest = json.loads(layout.blob(entry))
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"

    config = json.loads(layout.blob(manifest["config"]))
    assert config["architecture"] == "amd64"
    assert config["os"] == "linux"
    assert config["config"] == {"Cmd": CMD, "Env": ENV, "WorkingDir": "/work"}
    uncompressed = gzip.decompress(layout.blob(layer))
    assert config["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(uncompressed).hexdigest()}"]}

    # Exactly the layout: no stray files, every blob referenced.
    blobs = {f"blobs/sha256/{d['digest'].split(':')[1]}" for d in (entry, manifest["config"], layer)}
    assert set(layout.files) == {"oci-layout", "index.json", *blobs}


def _layer_members(archive: Path) -> list[tarfile.TarInfo]:
    layout = Layout(archive)
    manifest = json.loads(layout.blob(layout.json("index.json")["manifests"][0]))
    with tarfile.open(fileobj=io.BytesIO(layout.blob(manifest["layers"][0])), mode="r:gz") as tar:
        return tar.getmembers()


def test_layer_keeps_modes_links_and_owners_in_sorted_order(rootfs: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.oci.tar"
    _build(rootfs, archive)
    members = {m.name: m for m in _layer_members(archive)}

    assert list(members) == [
        "bin",
        "empty",
        "etc",
        "etc/hello",
        "tmp",
        "usr",
        "usr/bin",
        "usr/bin/sh",
        "usr/bin/tool",
        "usr/bin/tool-again",
    ], "sorted, parents first, no FIFO"
    assert members["bin"].issym()
    assert members["bin"].linkname == "usr/bin"
    assert members["usr/bin/sh"].issym()
    assert members["usr/bin/sh"].linkname == "tool"
    assert members["usr/bin/tool"].isfile()
    assert members["usr/bin/tool"].mode == 0o755
    assert members["usr/bin/tool"].size == len(b"#!/bin/sh\necho hi\n")
    assert members["usr/bin/tool-again"].islnk()
    assert members["usr/bin/tool-again"].linkname == "usr/bin/tool"
    assert members["etc/hello"].mode == 0o640
    assert members["tmp"].isdir()
    assert members["tmp"].mode == 0o1777
    for member in members.values():
        assert member.mtime == 0
        assert (member.uid, member.gid) == (os.getuid(), os.getgid())
        assert member.uname == member.gname == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_layer_keeps_numeric_owners(rootfs: Path, tmp_path: Path) -> None:
    os.chown(rootfs / "etc" / "hello", 1234, 5678)
    archive = tmp_path / "image.oci.tar"
    _build(rootfs, archive)
    [hello] = [m for m in _layer_members(archive) if m.name == "etc/hello"]
    assert (hello.uid, hello.gid) == (1234, 5678)


def test_same_tree_gives_the_same_bytes(rootfs: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first.oci.tar", tmp_path / "second.oci.tar"
    digest = _build(rootfs, first)
    os.utime(rootfs / "etc" / "hello", (1_000_000, 1_000_000))  # mtimes are not part of the image
    assert _build(rootfs, second) == digest
    assert first.read_bytes() == second.read_bytes()

    (rootfs / "etc" / "hello").write_text("changed\n")
    assert _build(rootfs, tmp_path / "third.oci.tar") != digest


def test_leaves_only_the_archive(rootfs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _build(rootfs, out / "image.oci.tar")
    assert [p.name for p in out.iterdir()] == ["image.oci.tar"]


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(NotADirectoryError):
        _build(tmp_path / "missing", out / "image.oci.tar")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("name", ["aiso.local/pause", "localhost:5000/pause", "pause@sha256:abc", "pause:"])
def test_refuses_names_without_a_tag(rootfs: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="repository:tag"):
        write_oci_archive(rootfs, tmp_path / "image.oci.tar", name=name, cmd=[], env=[])


def test_tag_after_a_registry_port() -> None:
    assert oci_image.split_name("localhost:5000/pause:3.10") == "3.10"


def test_refuses_env_without_a_value(rootfs: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NAME=value"):
        write_oci_archive(rootfs, tmp_path / "image.oci.tar", name=NAME, cmd=[], env=["PATH"])


def test_cli_prints_the_manifest_digest(rootfs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "image.oci.tar"
    argv = [str(rootfs), str(archive), "--name", NAME, "--workdir", "/work"]
    argv += [f"--cmd={c}" for c in CMD] + [f"--env={e}" for e in ENV]  # "=": "-c" would read as an option
    assert oci_image.main(argv) == 0
    digest = capsys.readouterr().out.strip()
    assert digest == _build(rootfs, tmp_path / "again.oci.tar")


def test_cli_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert oci_image.main([str(tmp_path / "missing"), str(tmp_path / "image.oci.tar"), "--name", NAME]) == 1
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("ai-storage-orchestrator:0.1.0", "docker.io/library/ai-storage-orchestrator:0.1.0"),
        ("user/app:1", "docker.io/user/app:1"),
        ("docker.io/app:1", "docker.io/library/app:1"),
        ("docker.io/library/app:1", "docker.io/library/app:1"),
        ("aiso.local/pause:3.10", "aiso.local/pause:3.10"),
        ("localhost/app:1", "localhost/app:1"),
        ("localhost:5000/app:1", "localhost:5000/app:1"),
    ],
)
def test_containerd_name_is_the_reference_the_kubelet_asks_for(name: str, full: str) -> None:
    assert oci_image.full_name(name) == full


def test_short_name_is_annotated_fully_qualified(rootfs: Path, tmp_path: Path) -> None:
    archive = tmp_path / "image.oci.tar"
    write_oci_archive(rootfs, archive, name="ai-storage-orchestrator:0.1.0", cmd=[], env=[])
    [entry] = Layout(archive).json("index.json")["manifests"]
    assert entry["annotations"] == {
        "io.containerd.image.name": "docker.io/library/ai-storage-orchestrator:0.1.0",
        "org.opencontainers.image.ref.name": "0.1.0",
    }


def test_base_layers_below_the_top_one(rootfs: Path, tmp_path: Path) -> None:
    base = oci_image.pack_layer(rootfs, tmp_path / "base.tar.gz")
    assert oci_image.read_layer(base.path) == base, "a layer file read back has the digests it was written with"
    top = tmp_path / "top"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "hello").write_text("replaced\n")
    archive = tmp_path / "image.oci.tar"
    write_oci_archive(
        top,
        archive,
        name=NAME,
        cmd=["serve", "--port=8080"],
        env=ENV,
        base_layers=[oci_image.read_layer(base.path)],
        entrypoint=["ai-storage-orchestrator"],
        user="10001:10001",
        exposed_ports=["8080/tcp"],
    )
    layout = Layout(archive)
    manifest = json.loads(layout.blob(layout.json("index.json")["manifests"][0]))
    lower, upper = manifest["layers"]
    assert lower == base.descriptor.to_json()
    assert layout.blob(lower) == base.path.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(layout.blob(upper)), mode="r:gz") as tar:
        assert tar.getnames() == ["etc", "etc/hello"]
    config = json.loads(layout.blob(manifest["config"]))
    assert config["config"] == {
        "Entrypoint": ["ai-storage-orchestrator"],
        "Cmd": ["serve", "--port=8080"],
        "Env": ENV,
        "WorkingDir": "/",
        "User": "10001:10001",
        "ExposedPorts": {"8080/tcp": {}},
    }
    diff_ids = [f"sha256:{hashlib.sha256(gzip.decompress(layout.blob(d))).hexdigest()}" for d in (lower, upper)]
    assert config["rootfs"]["diff_ids"] == diff_ids


def test_refuses_an_exposed_port_without_a_protocol(rootfs: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PORT/tcp"):
        write_oci_archive(rootfs, tmp_path / "image.oci.tar", name=NAME, cmd=[], env=[], exposed_ports=["8080"])
    assert list(tmp_path.glob("*.tar*")) == []


def test_cli_layer_only_then_an_image_above_it(
    rootfs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layer = tmp_path / "base.tar.gz"
    assert oci_image.main(["--layer-only", str(rootfs), str(layer)]) == 0
    digest, diff_id = capsys.readouterr().out.split()
    assert oci_image.read_layer(layer).descriptor.digest == digest
    assert oci_image.read_layer(layer).diff_id == diff_id

    archive = tmp_path / "image.oci.tar"
    argv = [str(rootfs / "etc"), str(archive), "--name", "app:1", "--base-layer", str(layer)]
    argv += ["--entrypoint", "app", "--cmd=serve", "--user", "10001:10001", "--expose", "8080/tcp"]
    assert oci_image.main(argv) == 0
    layout = Layout(archive)
    manifest = json.loads(layout.blob(layout.json("index.json")["manifests"][0]))
    assert manifest["layers"][0]["digest"] == digest
    assert len(manifest["layers"]) == 2


def test_cli_needs_a_name_for_an_image(rootfs: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        oci_image.main([str(rootfs), str(tmp_path / "image.oci.tar")])


def test_cli_reports_a_layer_file_that_is_not_gzip(
    rootfs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not gzip")
    argv = [str(rootfs), str(tmp_path / "image.oci.tar"), "--name", NAME, "--base-layer", str(broken)]
    assert oci_image.main(argv) == 1
    assert "oci_image:" in capsys.readouterr().err
    assert not (tmp_path / "image.oci.tar").exists()
