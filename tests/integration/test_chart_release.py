"""The release workflow's chart steps, run here against a real registry and API server: the chart
packaged at the release version (``python -m devtools.release chart``, the code the workflow runs),
pushed as an OCI artifact with ``helm push``, and installed from there with ``helm install oci://``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devtools import release
from devtools.localcluster import LocalCluster
from devtools.stack import helm, install_chart
from tests.infra.controlplane import unique_name
from tests.infra.registry import RegistryFactory

Obj = dict[str, object]


@pytest.fixture
def oci_install(
    control_plane: LocalCluster, registry_server: RegistryFactory, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The chart pushed to a local registry and installed from it; helm's names for what it did."""
    registry = registry_server()
    image_repository = f"{registry.host}/drop-operator"
    package = release.package_chart(tmp_path / "dist", image_repository=image_repository)
    digest = release.push_chart(package, f"oci://{registry.host}/charts", plain_http=True)
    name, namespace = unique_name("oci"), unique_name("oci")
    install_chart(
        control_plane.kubeconfig,
        release=name,
        namespace=namespace,
        chart=f"oci://{registry.host}/charts/drop-operator",
        extra_args=[f"--version={release.package_version()}", "--plain-http"],
        values={"leaderElection.leaseName": name},
    )
    try:
        yield {
            "release": name,
            "namespace": namespace,
            "image_repository": image_repository,
            "digest": digest,
            "package": str(package),
        }
    finally:
        helm(control_plane.kubeconfig, "uninstall", name, f"--namespace={namespace}", "--wait")
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_chart_installs_from_the_oci_registry_at_the_release_version(
    control_plane: LocalCluster, oci_install: dict[str, str]
) -> None:
    version = release.package_version()
    assert Path(oci_install["package"]).name == f"drop-operator-{version}.tgz"
    assert oci_install["digest"].startswith("sha256:")

    listed = json.loads(
        helm(
            control_plane.kubeconfig, "list", f"--namespace={oci_install['namespace']}", "--output=json"
        ).stdout
    )
    assert [(r["name"], r["chart"], r["app_version"], r["status"]) for r in listed] == [
        (oci_install["release"], f"drop-operator-{version}", version, "deployed")
    ]

    # The packaged chart's default image is where the release pushed the image, at the same version.
    deployment = json.loads(
        control_plane.kubectl(
            "get", "deployment", f"--namespace={oci_install['namespace']}",
            f"--selector=app.kubernetes.io/instance={oci_install['release']}", "--output=json",
        ).stdout
    )["items"]  # fmt: skip
    (container,) = deployment[0]["spec"]["template"]["spec"]["containers"]
    want = f"{oci_install['image_repository']}:{version}"
    assert container["image"] == want
    assert {e["name"]: e.get("value") for e in container["env"]}["OPERATOR_IMAGE"] == want


def test_repository_chart_keeps_its_plain_default_image(tmp_path: Path) -> None:
    package = release.package_chart(tmp_path)
    values = yaml.safe_load(helm(tmp_path / "none", "show", "values", str(package)).stdout)
    assert values["image"] == {"repository": "drop-operator", "tag": "", "pullPolicy": "IfNotPresent"}
