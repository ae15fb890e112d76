"""Sample images for real nodes, built by :mod:`devtools.ociimage` and pushed to a local registry.

Each one stands for a kind of image that users cache and that has broken image pre-pullers:

* :func:`scratch`: no shell, no ``true``, one data file: only a pull pod that brings its own
  no-op binary can "run" it;
* :func:`multi_platform`: an index for ``linux/amd64`` and ``linux/arm64`` (the node picks its own);
* :func:`arm64_only`: an index whose only platform is ``linux/arm64`` (an amd64 node cannot run it);
* :func:`large`: several layers of incompressible data, tens of MB, so a pull takes measurable time;
* :func:`unique`: a small image whose content depends on a name, for many distinct images fast.

Content is deterministic (seeded), so digests are the same in every run.
"""

from __future__ import annotations

import random

from devtools.ociimage import Image, Index, build_image, build_index, layer

__all__ = ["arm64_only", "large", "multi_platform", "scratch", "unique"]

MIB = 1024 * 1024


def scratch(content: bytes = b"drop-operator scratch sample\n") -> Image:
    """An image with a single data file and nothing to execute."""
    return build_image([layer({"etc/drop-sample": content})])


def unique(name: str) -> Image:
    """A tiny image whose digest is a function of ``name``."""
    return build_image([layer({"etc/drop-sample": f"{name}\n".encode()})])


def multi_platform(name: str = "multi") -> Index:
    """An index of two images, ``linux/amd64`` and ``linux/arm64`` (variant ``v8``)."""
    return build_index(
        [
            build_image([layer({"etc/platform": f"{name} linux/amd64\n".encode()})], architecture="amd64"),
            build_image(
                [layer({"etc/platform": f"{name} linux/arm64/v8\n".encode()})],
                architecture="arm64",
                variant="v8",
            ),
        ]
    )


def arm64_only(name: str = "arm64") -> Index:
    """An index whose only image is ``linux/arm64`` (variant ``v8``)."""
    return build_index(
        [
            build_image(
                [layer({"etc/platform": f"{name} linux/arm64/v8\n".encode()})],
                architecture="arm64",
                variant="v8",
            )
        ]
    )


def large(total_mib: int = 30, layers: int = 3, seed: str = "large") -> Image:
    """``layers`` layers of random (incompressible) data adding up to ``total_mib`` MiB."""
    rng = random.Random(seed)
    size = total_mib * MIB // layers
    return build_image([layer({f"data/part-{i}.bin": rng.randbytes(size)}) for i in range(layers)])
