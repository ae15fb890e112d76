"""OCI images built in Python, without Docker: layers from files, an image config, a manifest, and an
index for several platforms.

Follows the OCI image spec v1.1 (``image-layout``/``manifest``/``image-index``/``config``): a layer
is a gzip-compressed tar whose ``diff_id`` (the digest of the *uncompressed* tar) goes into the
config's ``rootfs.diff_ids``; the manifest names the config and the compressed layers by digest and
size; an index lists one manifest per ``platform``. Pushing is :meth:`RegistryServer.push
<devtools.registry.RegistryServer.push>` (the distribution API).

Builds are reproducible: tar entries carry fixed owners and a fixed mtime, and gzip writes no
timestamp, so the same files give the same digests in every run. The standard library's ``tarfile``
and ``gzip`` do the formats; no PyPI package builds image indexes (``oras`` pushes single-manifest
artifacts only).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER_GZIP",
    "OCI_MANIFEST",
    "Blob",
    "File",
    "Image",
    "Index",
    "build_image",
    "build_index",
    "layer",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

_EPOCH = 0  # fixed mtime for reproducible layers


@dataclass(frozen=True)
class Blob:
    """Content-addressed bytes: ``digest`` is ``sha256:<hex>`` of ``data``."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """The OCI content descriptor of this blob (``mediaType``, ``digest``, ``size``)."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class File:
    """One regular file of a layer: its bytes and mode (``0o755`` for programs)."""

    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Layer:
    """A compressed layer and the ``diff_id`` of its uncompressed tar."""

    blob: Blob
    diff_id: str


def layer(files: Mapping[str, File | bytes]) -> Layer:
    """A gzip tar layer holding ``files`` (paths relative to ``/``; parent directories are added).

    Entries are owned by 0:0 with mtime 0, sorted by path, so equal input gives an equal digest.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path in sorted(files):
            clean = path.strip("/")
            parts = clean.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in dirs:
                    dirs.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _EPOCH
                    tar.addfile(info)
            entry = files[path]
            content = entry if isinstance(entry, File) else File(entry)
            info = tarfile.TarInfo(clean)
            info.size, info.mode, info.mtime = len(content.data), content.mode, _EPOCH
            tar.addfile(info, io.BytesIO(content.data))
    tar_bytes = raw.getvalue()
    compressed = gzip.compress(tar_bytes, compresslevel=6, mtime=0)
    return Layer(Blob(OCI_LAYER_GZIP, compressed), "sha256:" + hashlib.sha256(tar_bytes).hexdigest())


@dataclass(frozen=True)
class Image:
    """One image manifest with its config and layers, for one platform."""

    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    platform: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> list[Blob]:
        """Everything a registry must hold before the manifest can be put."""
        return [self.config, *self.layers]


@dataclass(frozen=True)
class Index:
    """An image index: one manifest per platform."""

    manifest: Blob
    images: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def build_image(
    layers: Sequence[Layer],
    *,
    os: str = "linux",
    architecture: str = "amd64",
    variant: str | None = None,
    entrypoint: Sequence[str] = (),
    user: str = "",
    labels: Mapping[str, str] | None = None,
) -> Image:
    """An image of ``layers`` (bottom first) for ``os``/``architecture`` (GOOS/GOARCH names)."""
    platform = {"os": os, "architecture": architecture}
    if variant:
        platform["variant"] = variant
    exec_config: dict[str, Any] = {}
    if entrypoint:
        exec_config["Entrypoint"] = list(entrypoint)
    if user:
        exec_config["User"] = user
    if labels:
        exec_config["Labels"] = dict(labels)
    config = Blob(
        OCI_CONFIG,
        _json(
            {
                **platform,
                "created": "1970-01-01T00:00:00Z",
                "config": exec_config,
                "rootfs": {"type": "layers", "diff_ids": [item.diff_id for item in layers]},
                "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "devtools.ociimage"}]
                * len(layers),
            }
        ),
    )
    blobs = tuple(item.blob for item in layers)
    manifest = Blob(
        OCI_MANIFEST,
        _json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [blob.descriptor() for blob in blobs],
            }
        ),
    )
    return Image(manifest, config, blobs, platform)


def build_index(images: Sequence[Image]) -> Index:
    """An index of ``images``, each listed with its ``platform``."""
    manifest = Blob(
        OCI_INDEX,
        _json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [image.manifest.descriptor(platform=dict(image.platform)) for image in images],
            }
        ),
    )
    return Index(manifest, tuple(images))
