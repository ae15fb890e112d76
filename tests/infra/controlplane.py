"""The real control plane as pytest fixtures: one etcd + kube-apiserver + kube-controller-manager
per test session, kwok started on first use.

Tests share the cluster, so each test names its objects uniquely (see ``unique_name``).
A missing binary fails the session with the command that builds it, never a skip.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from devtools.localcluster import LocalCluster
from devtools.tools import REPO_ROOT, ToolMissingError

CRD_DIR = REPO_ROOT / "manifests" / "crds"


@contextlib.contextmanager
def started_cluster(
    workdir: Path,
    *,
    real_nodes: int = 0,
    controller_manager: bool = True,
    users: Sequence[str] = (),
    extra_args: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[LocalCluster]:
    """A control plane of its own in ``workdir`` (with ``real_nodes`` real nodes; the other
    arguments as :class:`LocalCluster` takes them), stopped on exit; a missing binary fails the test."""
    cluster = LocalCluster(
        workdir,
        with_controller_manager=controller_manager,
        real_nodes=real_nodes,
        users=users,
        extra_args=extra_args or {},
    )
    try:
        cluster.start()
    except ToolMissingError as err:
        cluster.stop()
        pytest.fail(str(err), pytrace=False)
    except BaseException:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A running control plane with an admin kubeconfig (``.kubeconfig``) and ``.kubectl()``."""
    with started_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kwok(control_plane: LocalCluster) -> LocalCluster:
    """The control plane with kwok managing Nodes annotated ``kwok.x-k8s.io/node: fake``."""
    try:
        control_plane.start_kwok()
    except ToolMissingError as err:
        pytest.fail(str(err), pytrace=False)
    return control_plane


@pytest.fixture(scope="session")
def crds(control_plane: LocalCluster) -> Path:
    """drop's CRDs applied and Established."""
    return apply_crds(control_plane)


def apply_crds(cluster: LocalCluster) -> Path:
    """Apply drop's CRDs to ``cluster`` and wait until they are Established."""
    cluster.kubectl("apply", "--server-side", "-f", str(CRD_DIR))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRD_DIR))
    return CRD_DIR


def unique_name(prefix: str) -> str:
    """A DNS-1123 name no other test in the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
