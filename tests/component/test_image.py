"""The operator image, built from the repository's Dockerfile (podman, Debian bases from packages),
pushed to a real registry and pulled back: what a node would get.

The same Dockerfile builds with the upstream bases in CI (``.github/workflows/ci.yml``, both
architectures); here only linux/amd64 can be built, the arm64 drop-noop is checked in
``test_noop_binary.py``.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import image
from devtools.release import package_version
from tests.infra.image import REPOSITORY, PushedImage

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def _get(url: str, accept: str = "*/*") -> tuple[bytes, str]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read(), response.headers.get("Docker-Content-Digest", "")


@pytest.fixture(scope="module")
def config(operator_image: PushedImage) -> dict[str, Any]:
    """The image config as the registry serves it (manifest by tag, then its config blob)."""
    base = f"{operator_image.registry.url}/v2/{REPOSITORY}"
    body, digest = _get(f"{base}/manifests/{operator_image.tag}", MANIFEST_TYPES)
    assert digest == operator_image.digest
    manifest = json.loads(body)
    blob, _ = _get(f"{base}/blobs/{manifest['config']['digest']}")
    result: dict[str, Any] = json.loads(blob)
    return result


@pytest.fixture(scope="module")
def pulled(operator_image: PushedImage) -> Iterator[str]:
    """The pushed reference pulled back into podman's store (untagged again afterwards)."""
    podman = str(image.podman())
    subprocess.run(
        [podman, "pull", "--quiet", "--tls-verify=false", operator_image.reference],
        check=True,
        capture_output=True,
        timeout=300,
    )
    try:
        yield operator_image.reference
    finally:
        # Only this name: `podman untag IMAGE` alone would remove every name of the image.
        subprocess.run(
            [podman, "untag", operator_image.reference, operator_image.reference],
            check=False,
            capture_output=True,
        )


def _run(reference: str, *args: str, entrypoint: str | None = None, volume: Path | None = None) -> str:
    """``podman run`` as the chart runs the pod: non-root, read-only root filesystem, no network."""
    command = [str(image.podman()), "run", "--rm", "--read-only", "--network=none", *image.podman_run_args()]
    command += ["--user=65532:65532", "--cap-drop=ALL", "--security-opt=no-new-privileges"]
    if entrypoint:
        command.append(f"--entrypoint={entrypoint}")
    if volume:
        command.append(f"--volume={volume}:/drop")
    result = subprocess.run(
        [*command, reference, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_registry_serves_a_linux_amd64_image_with_the_release_labels(
    operator_image: PushedImage, config: dict[str, Any]
) -> None:
    assert (
        (config["os"], config["architecture"]) == ("linux", operator_image.built.arch) == ("linux", "amd64")
    )
    settings = config["config"]
    assert settings["User"] == "65532:65532"
    assert settings["Entrypoint"] == ["drop-operator"] and settings["Cmd"] == ["run"]
    labels = settings["Labels"]
    assert labels["org.opencontainers.image.version"] == package_version()
    assert len(labels["org.opencontainers.image.revision"]) == 40


def test_pulled_image_runs_the_operator_on_a_read_only_root(pulled: str) -> None:
    assert _run(pulled, "--version").strip().endswith(package_version())
    assert "usage: drop-operator" in _run(pulled, "run", "--help")


def test_every_operator_module_imports_in_the_image(pulled: str) -> None:
    # `--help` loads little; this catches a dependency the image lacks (pip and setuptools are gone).
    script = (
        "import importlib, pkgutil, drop_operator\n"
        "names = [m.name for m in pkgutil.walk_packages(drop_operator.__path__, 'drop_operator.')]\n"
        "for name in names:\n"
        "    if not name.endswith('.__main__'):\n"
        "        importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    assert int(_run(pulled, "-c", script, entrypoint="/opt/venv/bin/python")) > 20


def test_drop_noop_installs_itself_for_a_pull_pod_and_runs_from_there(pulled: str, tmp_path: Path) -> None:
    # As in a pull pod: the init container copies drop-noop into a shared emptyDir (here a host
    # directory any uid may write), then another container runs the copy.
    shared = tmp_path / "drop"
    shared.mkdir()
    shared.chmod(0o777)
    _run(pulled, "--install", "/drop/noop", entrypoint="/usr/local/bin/drop-noop", volume=shared)
    installed = shared / "noop"
    assert installed.stat().st_mode & 0o777 == 0o755
    _run(pulled, "sleep", "infinity", entrypoint="/drop/noop", volume=shared)
