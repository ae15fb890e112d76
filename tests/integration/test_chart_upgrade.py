"""Upgrading from the previous chart to the current one, the way docs/install.md says, on a fresh
control plane of its own (so the CRDs are created by Helm's first install, as on a user's cluster).

The previous chart comes from git history (``PREVIOUS_CHART``). With the chart installed, the
examples applied and the operator running on the chart's ServiceAccount, the test runs the
"Upgrade" commands of docs/install.md verbatim against the current chart packaged for release,
then checks that every object is still there with the same UID and spec (nothing lost, no child
recreated), that the CRDs now carry the current schema, and that the operator keeps reconciling.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import examples, release
from devtools.localcluster import LocalCluster, kubectl_binary
from devtools.process import wait_until
from devtools.stack import (
    CHART,
    NAMESPACE,
    RELEASE,
    OperatorProcess,
    helm,
    helm_binary,
    install_chart,
    service_account_kubeconfig,
    start_operator,
)
from devtools.tools import REPO_ROOT
from tests.infra.controlplane import started_cluster

# The chart of the previous release. Until the first release tag exists, the chart on main before
# the release pipeline; afterwards, the last release's tag (e.g. "v0.1.0").
PREVIOUS_CHART = "601c769"
INSTALL_DOC = REPO_ROOT / "docs" / "install.md"
DROP_KINDS = "discoverypolicies,cachedimagesets,cachedimages,pullpolicies"
CHART_KINDS = "serviceaccounts,roles,rolebindings,services,deployments,secrets"
CLUSTER_KINDS = "clusterroles,clusterrolebindings,customresourcedefinitions"
STATIC_SET = {
    "apiVersion": "drop.corewire.io/v1alpha1",
    "kind": "CachedImageSet",
    "metadata": {"name": "upgrade-static"},
    "spec": {
        "pullPolicyRef": {"name": "gentle"},
        "images": ["busybox:1.36", "alpine:3.20", "debian:bookworm"],
    },
}

Obj = dict[str, Any]


def _previous_release(dest: Path) -> Path:
    """``charts/drop-operator`` and the ``drop_operator`` package as of ``PREVIOUS_CHART``, extracted
    under ``dest``: the chart's RBAC grants what that operator needs, not what today's needs."""
    paths = ["charts/drop-operator", "drop_operator"]
    result = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", PREVIOUS_CHART, *paths],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"the previous chart ({PREVIOUS_CHART}) is not in this clone's history: "
            f"{result.stderr.decode().strip()} (run `git fetch --unshallow`)",
            pytrace=False,
        )
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        archive.extractall(dest, filter="data")
    return dest / "charts" / "drop-operator"


def _documented_upgrade() -> str:
    """The first ``sh`` block of docs/install.md's "## Upgrade" section."""
    section = INSTALL_DOC.read_text().split("\n## Upgrade\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "docs/install.md's Upgrade section has no sh block"
    return match.group(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with started_cluster(tmp_path_factory.mktemp("upgrade-cluster")) as cluster:
        yield cluster


def _start_operator(
    cluster: LocalCluster, workdir: Path, name: str, source: Path | None = None
) -> OperatorProcess:
    kubeconfig = service_account_kubeconfig(cluster, workdir / f"{name}.kubeconfig")
    return start_operator(kubeconfig, workdir / f"{name}.log", log_format="console", source=source)


def _objects(cluster: LocalCluster) -> dict[tuple[str, str, str], Obj]:
    """Every drop object and every object the chart made, by (kind, namespace, name)."""
    found: dict[tuple[str, str, str], Obj] = {}
    for kinds, scope in ((DROP_KINDS, []), (CHART_KINDS, [f"--namespace={NAMESPACE}"]), (CLUSTER_KINDS, [])):
        items = json.loads(cluster.kubectl("get", kinds, *scope, "--output=json").stdout)["items"]
        for item in items:
            meta = item["metadata"]
            if item["kind"] in ("ClusterRole", "ClusterRoleBinding") and not meta["name"].startswith(RELEASE):
                continue  # the API server's own
            if item["kind"] == "CustomResourceDefinition" and not meta["name"].endswith(".drop.corewire.io"):
                continue
            if item.get("type") == "helm.sh/release.v1":
                continue  # Helm's record of each revision, rewritten by every upgrade
            found[(item["kind"], meta.get("namespace", ""), meta["name"])] = item
    return found


def _children(cluster: LocalCluster, owner: str) -> dict[str, str]:
    """CachedImage name → UID of the children of CachedImageSet ``owner``."""
    items = json.loads(cluster.kubectl("get", "cachedimages", "--output=json").stdout)["items"]
    return {
        i["metadata"]["name"]: i["metadata"]["uid"]
        for i in items
        if any(ref["name"] == owner for ref in i["metadata"].get("ownerReferences", []))
    }


def test_upgrade_from_the_previous_chart_keeps_every_object_and_child(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    previous = _previous_release(tmp_path / "previous")
    install_chart(cluster.kubeconfig, chart=previous, values={"replicaCount": "0"})
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")

    docs: list[Obj] = examples.load(examples.PULL_POLICY_FILE)
    for name in examples.POLICY_FILES:
        # Sources that refuse at once: the policies exist and report it; no outside access.
        docs += examples.localize(
            examples.load(name), prometheus="http://127.0.0.1:9", registry="http://127.0.0.1:9"
        )
    docs += [d for name in examples.SET_FILES for d in examples.load(name)] + [STATIC_SET]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    # The previous release's operator with the previous chart's RBAC, as on a user's cluster.
    operator = _start_operator(cluster, tmp_path, "operator-before", source=tmp_path / "previous")
    try:
        wait_until(lambda: len(_children(cluster, "upgrade-static")) == 3, 60, "the static set's 3 children")
        before = _objects(cluster)
        assert {kind for kind, _, _ in before} == {
            "DiscoveryPolicy", "CachedImageSet", "CachedImage", "PullPolicy", "Secret", "ServiceAccount",
            "Role", "RoleBinding", "Service", "Deployment", "ClusterRole", "ClusterRoleBinding",
            "CustomResourceDefinition",
        }  # fmt: skip
        # The documented commands, with this test's chart, version, cluster and binaries; the
        # operator keeps running through the upgrade, as the old pod would.
        package = release.package_chart(tmp_path / "dist")
        script = _documented_upgrade().replace("<chart>", shlex.quote(str(package)))
        script = script.replace("<new version>", release.package_version())
        script = script.replace("kubectl -n drop-system rollout status deployment/drop-operator", "")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "kubectl").symlink_to(kubectl_binary())
        (bin_dir / "helm").symlink_to(helm_binary())
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "PATH": f"{bin_dir}:{os.environ['PATH']}",
                "KUBECONFIG": str(cluster.kubeconfig),
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
    finally:
        operator.stop()

    history = json.loads(
        helm(cluster.kubeconfig, "history", RELEASE, f"--namespace={NAMESPACE}", "--output=json").stdout
    )
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]
    assert history[-1]["chart"] == f"drop-operator-{release.package_version()}"

    after = _objects(cluster)
    assert sorted(before.keys() - after.keys()) == [], "objects lost in the upgrade"
    recreated = [key for key in before if before[key]["metadata"]["uid"] != after[key]["metadata"]["uid"]]
    assert recreated == []
    for key, obj in before.items():
        if key[0] in ("DiscoveryPolicy", "CachedImageSet", "CachedImage", "PullPolicy", "Secret"):
            assert after[key].get("spec", after[key].get("data")) == obj.get("spec", obj.get("data")), key

    # The CRDs now have the current chart's schema.
    for path in sorted((CHART / "crds").glob("*.yaml")):
        current = yaml.safe_load(path.read_text())
        served = after[("CustomResourceDefinition", "", current["metadata"]["name"])]
        assert served["spec"]["versions"] == current["spec"]["versions"], path.name

    # The new operator (same ServiceAccount) adopts the children: a new image adds one child and
    # the three from before the upgrade stay as they were.
    children = _children(cluster, "upgrade-static")
    operator = _start_operator(cluster, tmp_path, "operator-after")
    try:
        cluster.kubectl(
            "patch", "cachedimageset", "upgrade-static", "--type=json",
            '--patch=[{"op": "add", "path": "/spec/images/-", "value": "nginx:1.27"}]',
        )  # fmt: skip
        wait_until(lambda: len(_children(cluster, "upgrade-static")) == 4, 60, "a child for the added image")
        assert children.items() <= _children(cluster, "upgrade-static").items()
    finally:
        operator.stop()
