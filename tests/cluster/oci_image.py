"""OCI image archives without a registry: a root filesystem directory becomes a one-layer image in an OCI
image-layout tar that `ctr -n k8s.io images import ARCHIVE` loads into containerd (the real-node tier).

The layer is deterministic: entries sorted, every mtime fixed, owners and modes kept, user and group names left empty
(the image's own /etc/passwd is what counts), device nodes, FIFOs and sockets skipped (the runtime provides /dev),
hard links kept as links, extended attributes not carried. The layer is streamed through gzip into a temporary file
next to the archive, so a root filesystem of hundreds of MB never sits in memory.

    python -m tests.cluster.oci_image ROOTFS ARCHIVE --name aiso.local/pause:3.10 --cmd /pause

Stdlib only, so any python3 can run it without the project's virtual environment.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


class _HashingWriter(io.RawIOBase):
    """Write-only stream that counts and sha256-hashes what passes through it to `sink`."""

    def __init__(self, sink: io.BufferedIOBase) -> None:
        super().__init__()
        self._sink = sink
        self._sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._sha256.update(view)
        self.size += view.nbytes
        self._sink.write(view)
        return view.nbytes

    @property
    def digest(self) -> str:
        return f"sha256:{self._sha256.hexdigest()}"


def split_name(name: str) -> str:
    """The tag of a full image name: 'aiso.local/pause:3.10' → '3.10'. A name without a tag, or with a digest, is
    refused: the archive must say exactly what the node will be asked to run."""
    repository, colon, tag = name.rpartition(":")
    if "@" in name or not colon or not repository or not tag or "/" in tag:
        raise ValueError(f"image name {name!r} needs the form [registry/]repository:tag")
    return tag


def _entries(root: Path, device: int, relative: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """Every path below `root` (not `root` itself), depth first, names sorted at each level, parents before their
    children; symbolic links are not followed, and a directory on another file system than `device` (a /proc left
    mounted in a chroot) is listed but not entered."""
    directory = root / relative if relative else root
    for name in sorted(os.listdir(directory)):
        path = f"{relative}/{name}" if relative else name
        info = os.lstat(root / path)
        yield path, info
        if stat.S_ISDIR(info.st_mode) and info.st_dev == device:
            yield from _entries(root, device, path)


def _tar_info(path: str, info: os.stat_result, mtime: int) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(path)
    entry.mode = stat.S_IMODE(info.st_mode)
    entry.uid, entry.gid = info.st_uid, info.st_gid
    entry.uname = entry.gname = ""
    entry.mtime = mtime
    return entry


def _write_layer(rootfs: Path, sink: _HashingWriter, mtime: int) -> str:
    """Tar `rootfs` into `sink` (uncompressed); returns the diff_id, the sha256 of exactly those bytes."""
    first_link: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, info in _entries(rootfs, os.lstat(rootfs).st_dev):
            entry = _tar_info(path, info, mtime)
            if stat.S_ISDIR(info.st_mode):
                entry.type = tarfile.DIRTYPE
                tar.addfile(entry)
            elif stat.S_ISLNK(info.st_mode):
                entry.type = tarfile.SYMTYPE
                entry.linkname = os.readlink(rootfs / path)
                tar.addfile(entry)
            elif stat.S_ISREG(info.st_mode):
                key = (info.st_dev, info.st_ino)
                if info.st_nlink > 1 and key in first_link:
                    entry.type = tarfile.LNKTYPE
                    entry.linkname = first_link[key]
                    tar.addfile(entry)
                    continue
                if info.st_nlink > 1:
                    first_link[key] = path
                entry.size = info.st_size
                with open(rootfs / path, "rb") as content:
                    tar.addfile(entry, content)
            # Device nodes, FIFOs and sockets are left out: the container runtime provides /dev.
    return sink.digest


def _json_blob(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    entry = tarfile.TarInfo(name)
    entry.size, entry.mode, entry.mtime = len(data), 0o644, 0
    tar.addfile(entry, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    entry = tarfile.TarInfo(name)
    entry.type, entry.mode, entry.mtime = tarfile.DIRTYPE, 0o755, 0
    tar.addfile(entry)


def _blob_name(digest: str) -> str:
    algorithm, _, hex_digest = digest.partition(":")
    return f"blobs/{algorithm}/{hex_digest}"


def _pack_layer(rootfs: Path, layer_path: Path, mtime: int) -> tuple[Descriptor, str]:
    """The gzip layer of `rootfs` in `layer_path`: its descriptor and its diff_id."""
    with open(layer_path, "wb") as layer_file:
        compressed = _HashingWriter(layer_file)
        # mtime=0 and no file name in the gzip header keep the compressed bytes reproducible.
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=6, mtime=0) as gz:
            diff_id = _write_layer(rootfs, _HashingWriter(gz), mtime)
    return Descriptor(LAYER_MEDIA_TYPE, compressed.digest, compressed.size), diff_id


def _json_descriptor(media_type: str, blob: bytes) -> Descriptor:
    return Descriptor(media_type, f"sha256:{hashlib.sha256(blob).hexdigest()}", len(blob))


def _write_layout(archive: Path, index: bytes, blobs: Sequence[bytes], layer: Descriptor, layer_path: Path) -> None:
    with tarfile.open(archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", _json_blob({"imageLayoutVersion": "1.0.0"}))
        _add_bytes(tar, "index.json", index)
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for blob in blobs:
            _add_bytes(tar, _blob_name(f"sha256:{hashlib.sha256(blob).hexdigest()}"), blob)
        entry = tarfile.TarInfo(_blob_name(layer.digest))
        entry.size, entry.mode, entry.mtime = layer.size, 0o644, 0
        with open(layer_path, "rb") as layer_file:
            tar.addfile(entry, layer_file)


def write_oci_archive(
    rootfs: Path,
    archive: Path,
    *,
    name: str,
    cmd: Sequence[str],
    env: Sequence[str],
    workdir: str = "/",
    architecture: str = "amd64",
    mtime: int = 0,
) -> str:
    """Pack `rootfs` as a one-layer linux image called `name` (full name with tag) into the OCI image-layout tar
    `archive` (overwritten; removed again if writing fails); returns the manifest digest ('sha256:…'). The same tree
    gives the same bytes and digest."""
    tag = split_name(name)
    if bad := [variable for variable in env if "=" not in variable]:
        raise ValueError(f"environment entries need the form NAME=value: {bad}")
    if not rootfs.is_dir():
        raise NotADirectoryError(f"root filesystem {rootfs} is not a directory")
    with tempfile.TemporaryDirectory(prefix=".oci-", dir=archive.parent) as scratch:
        layer_path = Path(scratch) / "layer.tar.gz"
        layer, diff_id = _pack_layer(rootfs, layer_path, mtime)
        config_blob = _json_blob(
            {
                "architecture": architecture,
                "os": "linux",
                "config": {"Env": list(env), "Cmd": list(cmd), "WorkingDir": workdir},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            }
        )
        manifest_blob = _json_blob(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "config": _json_descriptor(CONFIG_MEDIA_TYPE, config_blob).to_json(),
                "layers": [layer.to_json()],
            }
        )
        manifest = _json_descriptor(MANIFEST_MEDIA_TYPE, manifest_blob)
        index_blob = _json_blob(
            {
                "schemaVersion": 2,
                "mediaType": INDEX_MEDIA_TYPE,
                "manifests": [
                    {
                        **manifest.to_json(),
                        "annotations": {NAME_ANNOTATION: name, REF_ANNOTATION: tag},
                        "platform": {"architecture": architecture, "os": "linux"},
                    }
                ],
            }
        )
        try:
            _write_layout(archive, index_blob, [manifest_blob, config_blob], layer, layer_path)
        except BaseException:
            archive.unlink(missing_ok=True)
            raise
    return manifest.digest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.cluster.oci_image",
        description="Pack a root filesystem into a one-layer OCI image-layout tar; prints the manifest digest.",
    )
    parser.add_argument("rootfs", type=Path, help="root filesystem directory")
    parser.add_argument("archive", type=Path, help="OCI archive to write (overwritten)")
    parser.add_argument("--name", required=True, help="full image name with tag, e.g. aiso.local/pause:3.10")
    parser.add_argument(
        "--cmd", action="append", default=[], help="one argv element of Cmd, repeated in order (--cmd=-c for a dash)"
    )
    parser.add_argument("--env", action="append", default=[], help="one NAME=value of Env (repeat)")
    parser.add_argument("--workdir", default="/", help="WorkingDir (default /)")
    args = parser.parse_args(argv)
    try:
        digest = write_oci_archive(
            args.rootfs, args.archive, name=args.name, cmd=args.cmd, env=args.env, workdir=args.workdir
        )
    except (OSError, ValueError) as error:
        print(f"oci_image: {error}", file=sys.stderr)
        return 1
    print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
