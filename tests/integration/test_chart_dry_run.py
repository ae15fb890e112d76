"""The chart against a real kube-apiserver: what ``helm install`` would send is accepted, and the
RBAC it grants is exactly what the operator needs, as the API server's own authorizer sees it.

A cluster with kubelets is not available here (kind runs in CI); this is what stands in for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from devtools.localcluster import LocalCluster
from devtools.render_manifests import helm_template
from devtools.tools import ToolMissingError, go_tool
from tests.infra.controlplane import unique_name

# Every optional feature whose kind a bare API server serves (ServiceMonitor needs prometheus-operator).
BUILTIN_FEATURES = [
    "--set", "replicaCount=2",
    "--set", "podDisruptionBudget.enabled=true",
    "--set", "networkPolicy.enabled=true",
    "--set", "grafanaDashboard.enabled=true",
]  # fmt: skip


def _render(release: str, namespace: str, *args: str) -> str:
    try:
        go_tool("helm")
    except ToolMissingError as err:
        pytest.fail(str(err), pytrace=False)
    return helm_template(*args, release=release, namespace=namespace)


@dataclass(frozen=True)
class Install:
    namespace: str
    service_account: str


@pytest.fixture(scope="module")
def rbac_install(control_plane: LocalCluster, crds: Path) -> Iterator[Install]:
    """The chart's ServiceAccount and RBAC applied for real in a namespace of their own."""
    namespace = unique_name("chart")
    release = unique_name("rel")
    docs = [d for d in yaml.safe_load_all(_render(release, namespace)) if d]
    rbac = [
        d
        for d in docs
        if d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    ]
    sa = next(d["metadata"]["name"] for d in rbac if d["kind"] == "ServiceAccount")
    control_plane.kubectl("create", "namespace", namespace)
    manifest = yaml.safe_dump_all(rbac)
    control_plane.kubectl("apply", "-f", "-", input=manifest)
    try:
        yield Install(namespace, sa)
    finally:
        control_plane.kubectl(
            "delete", "--ignore-not-found", "--wait=false", "-f", "-", input=manifest, check=False
        )
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_rendered_chart_passes_server_side_dry_run(control_plane: LocalCluster, crds: Path) -> None:
    namespace = unique_name("dry")
    control_plane.kubectl("create", "namespace", namespace)
    try:
        for args in ([], BUILTIN_FEATURES):
            rendered = _render(unique_name("rel"), namespace, *args)
            result = control_plane.kubectl(
                "apply", "--dry-run=server", "-f", "-", input=rendered, check=False
            )
            assert result.returncode == 0, result.stderr
            kinds = {line.split("/")[0] for line in result.stdout.splitlines()}
            assert "deployment.apps" in kinds and "clusterrole.rbac.authorization.k8s.io" in kinds
    finally:
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _can(cluster: LocalCluster, install: Install, *args: str) -> bool:
    """``kubectl auth can-i`` as the chart's ServiceAccount, in its namespace unless args say otherwise."""
    if "-n" not in args and "--all-namespaces" not in args:
        args = (*args, "-n", install.namespace)
    result = cluster.kubectl(
        "auth", "can-i", *args, f"--as=system:serviceaccount:{install.namespace}:{install.service_account}",
        check=False,
    )  # fmt: skip
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


ALLOWED = [
    ("get", "secrets"),
    ("create", "pods"),
    ("list", "pods"),
    ("watch", "pods"),
    ("delete", "pods"),
    ("create", "leases.coordination.k8s.io"),
    ("update", "leases.coordination.k8s.io/drop-operator"),
    ("create", "events.events.k8s.io"),
    ("patch", "events.events.k8s.io"),
    ("create", "events.events.k8s.io", "-n", "default"),
    ("list", "nodes"),
    ("patch", "nodes"),  # warm-up removes warming taints (warmUp.enabled, the default)
    ("watch", "discoverypolicies.drop.corewire.io"),
    ("list", "cachedimagesets.drop.corewire.io"),
    ("get", "pullpolicies.drop.corewire.io"),
    ("create", "cachedimages.drop.corewire.io"),
    ("delete", "cachedimages.drop.corewire.io"),
    ("patch", "discoverypolicies.drop.corewire.io", "--subresource=status"),
    ("update", "cachedimages.drop.corewire.io", "--subresource=status"),
]
DENIED = [
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "secrets"),
    ("get", "secrets", "-n", "default"),
    ("get", "secrets", "-n", "kube-system"),
    ("get", "secrets", "--all-namespaces"),
    ("list", "pods", "--all-namespaces"),
    ("create", "pods", "-n", "default"),
    ("create", "pods", "--subresource=exec"),
    ("update", "leases.coordination.k8s.io/kube-scheduler"),
    ("create", "events.events.k8s.io", "-n", "kube-system"),
    ("create", "events"),
    ("delete", "nodes"),
    ("patch", "discoverypolicies.drop.corewire.io"),
    ("create", "cachedimagesets.drop.corewire.io"),
    ("delete", "pullpolicies.drop.corewire.io"),
    ("create", "serviceaccounts", "--subresource=token"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
]


@pytest.mark.parametrize("request_", ALLOWED, ids=" ".join)
def test_service_account_may_do_what_the_operator_needs(
    control_plane: LocalCluster, rbac_install: Install, request_: tuple[str, ...]
) -> None:
    assert _can(control_plane, rbac_install, *request_)


@pytest.mark.parametrize("request_", DENIED, ids=" ".join)
def test_service_account_may_do_nothing_more(
    control_plane: LocalCluster, rbac_install: Install, request_: tuple[str, ...]
) -> None:
    assert not _can(control_plane, rbac_install, *request_)


def test_without_warm_up_the_operator_may_not_patch_nodes_and_runs_without_it() -> None:
    docs = [d for d in yaml.safe_load_all(_render("rel", "ns", "--set", "warmUp.enabled=false")) if d]
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    node_rules = [r for r in role["rules"] if "nodes" in r.get("resources", ())]
    assert node_rules and all("patch" not in r["verbs"] for r in node_rules)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert "--no-warm-up" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
