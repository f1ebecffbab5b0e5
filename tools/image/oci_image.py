"""OCI image archives without a registry or a container engine: root filesystem directories become the layers of an
image in an OCI image-layout tar that `ctr -n k8s.io images import ARCHIVE` loads into containerd (the real-node
tier's images, tools/nodes/images.sh; the orchestrator's own image, scripts/build.sh).

A layer is deterministic: entries sorted, every mtime fixed, owners and modes kept, user and group names left empty
(the image's own /etc/passwd is what counts), device nodes, FIFOs and sockets skipped (the runtime provides /dev),
hard links kept as links, extended attributes not carried. It is streamed through gzip into a temporary file next to
the archive, so a root filesystem of hundreds of MB never sits in memory. A layer written once (`--layer-only`) can
be reused below the next image's top layer (`--base-layer`): what did not change is not packed again.

    python3 tools/image/oci_image.py ROOTFS ARCHIVE --name aiso.local/pause:3.10 --cmd /pause
    python3 tools/image/oci_image.py --layer-only ROOTFS LAYER.tar.gz          # prints its digest and diff_id
    python3 tools/image/oci_image.py TOP ARCHIVE --base-layer LAYER.tar.gz --name ai-storage-orchestrator:0.1.0 \
        --entrypoint ai-storage-orchestrator --cmd serve --user 10001:10001 --expose 8080/tcp

The containerd name annotation is the fully qualified reference (`docker.io/library/NAME:TAG` for a short name, as
`docker save | ctr images import` would name it): the kubelet asks containerd's CRI for the normalized reference.

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


@dataclass(frozen=True)
class Layer:
    """A gzip layer file: its descriptor (the compressed bytes) and its diff_id (the sha256 of the tar inside)."""

    path: Path
    descriptor: Descriptor
    diff_id: str


def split_name(name: str) -> str:
    """The tag of a full image name: 'aiso.local/pause:3.10' → '3.10'. A name without a tag, or with a digest, is
    refused: the archive must say exactly what the node will be asked to run."""
    repository, colon, tag = name.rpartition(":")
    if "@" in name or not colon or not repository or not tag or "/" in tag:
        raise ValueError(f"image name {name!r} needs the form [registry/]repository:tag")
    return tag


def full_name(name: str) -> str:
    """The reference containerd's CRI looks an image up by: 'ai-storage-orchestrator:0.1.0' →
    'docker.io/library/ai-storage-orchestrator:0.1.0', 'user/app:1' → 'docker.io/user/app:1'; a name whose first
    component is a registry (has a '.' or ':', or is 'localhost') is already one."""
    split_name(name)
    first, slash, rest = name.partition("/")
    if slash and first == "docker.io":
        name = rest
    elif slash and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name if '/' in name else f'library/{name}'}"


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


def pack_layer(rootfs: Path, layer_path: Path, mtime: int = 0) -> Layer:
    """Write the gzip layer of `rootfs` to `layer_path` (overwritten; removed again if writing fails)."""
    if not rootfs.is_dir():
        raise NotADirectoryError(f"root filesystem {rootfs} is not a directory")
    try:
        with open(layer_path, "wb") as layer_file:
            compressed = _HashingWriter(layer_file)
            # mtime=0 and no file name in the gzip header keep the compressed bytes reproducible.
            with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=6, mtime=0) as gz:
                diff_id = _write_layer(rootfs, _HashingWriter(gz), mtime)
    except BaseException:
        layer_path.unlink(missing_ok=True)
        raise
    return Layer(layer_path, Descriptor(LAYER_MEDIA_TYPE, compressed.digest, compressed.size), diff_id)


def read_layer(layer_path: Path) -> Layer:
    """A gzip layer file written before (by `pack_layer` or anything else): its digests, from its bytes."""
    compressed, uncompressed = hashlib.sha256(), hashlib.sha256()
    with open(layer_path, "rb") as layer_file:
        while chunk := layer_file.read(_CHUNK):
            compressed.update(chunk)
        layer_file.seek(0)
        with gzip.GzipFile(fileobj=layer_file, mode="rb") as gz:
            while chunk := gz.read(_CHUNK):
                uncompressed.update(chunk)
        size = layer_file.seek(0, os.SEEK_END)
    digest = f"sha256:{compressed.hexdigest()}"
    return Layer(layer_path, Descriptor(LAYER_MEDIA_TYPE, digest, size), f"sha256:{uncompressed.hexdigest()}")


def _json_descriptor(media_type: str, blob: bytes) -> Descriptor:
    return Descriptor(media_type, f"sha256:{hashlib.sha256(blob).hexdigest()}", len(blob))


def _write_layout(archive: Path, index: bytes, blobs: Sequence[bytes], layers: Sequence[Layer]) -> None:
    with tarfile.open(archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", _json_blob({"imageLayoutVersion": "1.0.0"}))
        _add_bytes(tar, "index.json", index)
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for blob in blobs:
            _add_bytes(tar, _blob_name(f"sha256:{hashlib.sha256(blob).hexdigest()}"), blob)
        written = set()
        for layer in layers:
            if layer.descriptor.digest in written:  # the same layer twice in the stack: one blob
                continue
            written.add(layer.descriptor.digest)
            entry = tarfile.TarInfo(_blob_name(layer.descriptor.digest))
            entry.size, entry.mode, entry.mtime = layer.descriptor.size, 0o644, 0
            with open(layer.path, "rb") as layer_file:
                tar.addfile(entry, layer_file)


@dataclass(frozen=True)
class ImageConfig:
    """What the runtime reads from the image's config: the process and the port it documents."""

    cmd: Sequence[str] = ()
    env: Sequence[str] = ()
    workdir: str = "/"
    entrypoint: Sequence[str] = ()
    user: str = ""
    exposed_ports: Sequence[str] = ()

    def to_json(self) -> dict[str, Any]:
        """The config's `config` object; the optional fields only when set (an image without them keeps its bytes)."""
        if bad := [variable for variable in self.env if "=" not in variable]:
            raise ValueError(f"environment entries need the form NAME=value: {bad}")
        if bad := [port for port in self.exposed_ports if port.partition("/")[2] not in ("tcp", "udp", "sctp")]:
            raise ValueError(f"exposed ports need the form PORT/tcp, PORT/udp or PORT/sctp: {bad}")
        document: dict[str, Any] = {"Env": list(self.env), "Cmd": list(self.cmd), "WorkingDir": self.workdir}
        if self.entrypoint:
            document["Entrypoint"] = list(self.entrypoint)
        if self.user:
            document["User"] = self.user
        if self.exposed_ports:
            document["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        return document


def write_image(
    archive: Path, layers: Sequence[Layer], *, name: str, config: ImageConfig, architecture: str = "amd64"
) -> str:
    """The OCI image-layout tar `archive` (overwritten; removed again if writing fails) of a linux image called
    `name` (full name with tag) made of `layers`, bottom first; returns the manifest digest ('sha256:…')."""
    tag = split_name(name)
    if not layers:
        raise ValueError("an image needs at least one layer")
    config_blob = _json_blob(
        {
            "architecture": architecture,
            "os": "linux",
            "config": config.to_json(),
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        }
    )
    manifest_blob = _json_blob(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": _json_descriptor(CONFIG_MEDIA_TYPE, config_blob).to_json(),
            "layers": [layer.descriptor.to_json() for layer in layers],
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
                    "annotations": {NAME_ANNOTATION: full_name(name), REF_ANNOTATION: tag},
                    "platform": {"architecture": architecture, "os": "linux"},
                }
            ],
        }
    )
    try:
        _write_layout(archive, index_blob, [manifest_blob, config_blob], layers)
    except BaseException:
        archive.unlink(missing_ok=True)
        raise
    return manifest.digest


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
    base_layers: Sequence[Layer] = (),
    entrypoint: Sequence[str] = (),
    user: str = "",
    exposed_ports: Sequence[str] = (),
) -> str:
    """Pack `rootfs` as the top layer, above `base_layers` (bottom first), of a linux image called `name` (full name
    with tag) into the OCI image-layout tar `archive` (overwritten; removed again if writing fails); returns the
    manifest digest ('sha256:…'). The same tree and layers give the same bytes and digest."""
    split_name(name)
    config = ImageConfig(cmd, env, workdir, entrypoint, user, exposed_ports)
    config.to_json()  # refuse a bad configuration before packing
    with tempfile.TemporaryDirectory(prefix=".oci-", dir=archive.parent) as scratch:
        top = pack_layer(rootfs, Path(scratch) / "layer.tar.gz", mtime)
        return write_image(archive, [*base_layers, top], name=name, config=config, architecture=architecture)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 tools/image/oci_image.py",
        description="Pack a root filesystem into the top layer of an OCI image-layout tar (prints the manifest "
        "digest), or into a layer file only (--layer-only: prints the layer's digest and diff_id).",
    )
    parser.add_argument("rootfs", type=Path, help="root filesystem directory (the top layer)")
    parser.add_argument("archive", type=Path, help="OCI archive to write (overwritten), or the layer file")
    parser.add_argument("--layer-only", action="store_true", help="write ROOTFS as a gzip layer file, no image")
    parser.add_argument("--name", help="full image name with tag, e.g. aiso.local/pause:3.10 (required for an image)")
    parser.add_argument(
        "--base-layer",
        action="append",
        default=[],
        type=Path,
        help="gzip layer file below ROOTFS (repeat, bottom first)",
    )
    parser.add_argument(
        "--entrypoint", action="append", default=[], help="one argv element of Entrypoint, repeated in order"
    )
    parser.add_argument(
        "--cmd", action="append", default=[], help="one argv element of Cmd, repeated in order (--cmd=-c for a dash)"
    )
    parser.add_argument("--env", action="append", default=[], help="one NAME=value of Env (repeat)")
    parser.add_argument("--workdir", default="/", help="WorkingDir (default /)")
    parser.add_argument("--user", default="", help="User, e.g. 10001:10001 (default: the runtime's, root)")
    parser.add_argument("--expose", action="append", default=[], help="one PORT/tcp of ExposedPorts (repeat)")
    args = parser.parse_args(argv)
    if not args.layer_only and not args.name:
        parser.error("--name is required to write an image")
    try:
        if args.layer_only:
            layer = pack_layer(args.rootfs, args.archive)
            print(layer.descriptor.digest, layer.diff_id)
            return 0
        digest = write_oci_archive(
            args.rootfs,
            args.archive,
            name=args.name,
            cmd=args.cmd,
            env=args.env,
            workdir=args.workdir,
            base_layers=[read_layer(path) for path in args.base_layer],
            entrypoint=args.entrypoint,
            user=args.user,
            exposed_ports=args.expose,
        )
    except (OSError, ValueError, EOFError, gzip.BadGzipFile) as error:
        print(f"oci_image: {error}", file=sys.stderr)
        return 1
    print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
