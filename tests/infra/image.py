"""pytest plugin: the operator image, built once per session from the repository's Dockerfile with
podman against Debian bases (:mod:`devtools.image`) and pushed to a local registry on 127.0.0.1.

Building is the slow part (cold: the Debian bases, about 2.5 min, then the build, about 1 min;
warm: seconds), so every test that needs the image shares this one build, and a build of the same
sources (:func:`devtools.image.source_key`) is reused, by the e2e suite too. A missing podman or
mmdebstrap fails the session with the command that installs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devtools import image
from devtools.registry import RegistryServer, start_registry
from devtools.release import package_version
from tests.infra.process import fail_if_missing

__all__ = ["PushedImage", "operator_image"]

REPOSITORY = "drop-operator"


@dataclass(frozen=True)
class PushedImage:
    """The built image (``built``), and where it is in the registry: ``reference`` is
    ``127.0.0.1:<port>/drop-operator:<version>``, ``digest`` its manifest digest."""

    built: image.BuiltImage
    registry: RegistryServer
    reference: str
    digest: str

    @property
    def tag(self) -> str:
        return self.reference.rpartition(":")[2]


@pytest.fixture(scope="session")
def operator_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushedImage]:
    built = fail_if_missing(image.build, reuse=True)
    print(f"\noperator image {built.id[:12]} ({built.arch}): {built.size / 1e6:.0f} MB")
    registry = fail_if_missing(start_registry, tmp_path_factory.mktemp("image-registry"))
    try:
        reference = f"{registry.host}/{REPOSITORY}:{package_version()}"
        yield PushedImage(built, registry, reference, image.push(built.id, reference))
    finally:
        registry.stop()
