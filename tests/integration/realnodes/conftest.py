"""The node-caching reconciler against real nodes: a control plane of its own with two kubelets on
containerd, a public and a private (token-auth) registry with the sample images, and the operator
in-process with the helper image the nodes pull from the cluster's node registry.

The truth is read from the nodes themselves (containerd's store through ``ctr``, and the kubelet's
``node.status.images``), not from the product's status.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from devtools.localcluster import LocalCluster
from devtools.realnodes import HELPER_NOOP_PATH, REAL_NODE_LABEL, RealNode, RealNodes
from devtools.registry import RegistryServer, start_registry
from drop_operator.controllers.cachedimage import CachedImageReconciler, setup
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime import ApiError, KubeClient, Resource
from drop_operator.runtime.resources import NAMESPACES, NODES, SECRETS
from tests.infra.controlplane import apply_crds, started_cluster
from tests.infra.operator import InProcessOperator, running_fixture
from tests.infra.podwatch import PodWatch

Obj = dict[str, Any]
PRIVATE_USER = ("puller", "pull-secret-value")


@dataclass
class Registries:
    """The sample images' registries: ``public`` (no auth) and ``private`` (token auth, no
    anonymous pulls), both trusted by the nodes over plain HTTP on 127.0.0.1."""

    public: RegistryServer
    private: RegistryServer

    def stop(self) -> None:
        self.public.stop()
        self.private.stop()


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A control plane of its own (kwok-free) with two real nodes and drop's CRDs."""
    with started_cluster(tmp_path_factory.mktemp("real-cluster"), real_nodes=2) as cluster:
        apply_crds(cluster)
        yield cluster


@pytest.fixture(scope="session")
def nodes(real_cluster: LocalCluster) -> RealNodes:
    assert real_cluster.nodes is not None
    return real_cluster.nodes


@pytest.fixture(scope="session")
def registries(nodes: RealNodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    work = tmp_path_factory.mktemp("sample-registries")
    public = start_registry(work / "public", version=2)
    private = start_registry(work / "private", auth="token", users=dict([PRIVATE_USER]), anonymous_pull=False)
    regs = Registries(public, private)
    for reg in (public, private):
        nodes.trust(reg.host)
    try:
        yield regs
    finally:
        regs.stop()


@pytest_asyncio.fixture
async def real_kube(real_cluster: LocalCluster) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(str(real_cluster.kubeconfig), connect_timeout=5, read_timeout=30)
    try:
        yield client
    finally:
        await client.close()


@dataclass
class RealEnv:
    """One test's pull namespace (Pod Security "restricted" enforced) and its objects."""

    kube: KubeClient
    namespace: str
    nodes: RealNodes
    registries: Registries
    created: list[tuple[Resource, str]] = field(default_factory=list)

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes.nodes]

    async def policy(self, name: str, **spec: Any) -> str:
        await self.kube.create(
            PULL_POLICIES,
            {
                "apiVersion": PULL_POLICIES.api_version,
                "kind": "PullPolicy",
                "metadata": {"name": name},
                "spec": spec,
            },
        )
        self.created.append((PULL_POLICIES, name))
        return name

    async def image(self, name: str, image: str, tag: str, *, policy: str | None = None, **spec: Any) -> str:
        """A CachedImage of ``image:tag`` that targets the real nodes."""
        body: Obj = {"image": image, "tag": tag, "nodeSelector": dict([REAL_NODE_LABEL]), **spec}
        if policy:
            body["pullPolicyRef"] = {"name": policy}
        await self.kube.create(
            CACHED_IMAGES,
            {
                "apiVersion": CACHED_IMAGES.api_version,
                "kind": "CachedImage",
                "metadata": {"name": name},
                "spec": body,
            },
        )
        self.created.append((CACHED_IMAGES, name))
        return name

    async def status(self, name: str) -> Obj:
        status: Obj = (await self.kube.get(CACHED_IMAGES, name)).get("status") or {}
        return status

    async def pull_secret(self, name: str, registry: RegistryServer, user: tuple[str, str]) -> str:
        """A ``kubernetes.io/dockerconfigjson`` Secret for ``registry`` in the pull namespace."""
        auth = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        config = {"auths": {registry.host: {"username": user[0], "password": user[1], "auth": auth}}}
        await self.kube.create(
            SECRETS,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": self.namespace},
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
            },
            namespace=self.namespace,
        )
        return name

    async def reported_images(self, node: RealNode) -> set[str]:
        """Every image name the kubelet reports in ``node.status.images``."""
        obj = await self.kube.get(NODES, node.name)
        return {
            name for image in obj.get("status", {}).get("images") or [] for name in image.get("names", [])
        }


@pytest_asyncio.fixture
async def real_env(real_kube: KubeClient, nodes: RealNodes, registries: Registries) -> AsyncIterator[RealEnv]:
    namespace = f"real-pulls-{uuid.uuid4().hex[:8]}"
    await real_kube.create(
        NAMESPACES,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        },
    )
    leftovers, _ = await real_kube.list(CACHED_IMAGES)
    assert not leftovers, (
        f"CachedImages of an earlier test still exist: {[i['metadata']['name'] for i in leftovers]}"
    )
    env = RealEnv(real_kube, namespace, nodes, registries)
    try:
        yield env
    finally:
        # Every test shares the two nodes: a CachedImage left behind would keep pulling in the
        # next test's operator and count against its limits.
        for resource, name in reversed(env.created):
            with contextlib.suppress(ApiError):
                await real_kube.delete(resource, name)
        with contextlib.suppress(ApiError):
            await real_kube.delete(NAMESPACES, namespace)


class RealOperator(InProcessOperator[CachedImageReconciler]):
    """The node-caching reconciler with the helper image the real nodes can pull."""

    def __init__(self, client: KubeClient, namespace: str, helper_image: str) -> None:
        super().__init__(
            client,
            setup,
            OperatorSettings(
                namespace=namespace, operator_image=helper_image, noop_path=HELPER_NOOP_PATH, workers=4
            ),
        )


real_operator = running_fixture(
    "real_operator",
    lambda real_kube, real_env, nodes: RealOperator(real_kube, real_env.namespace, nodes.helper_image),
)
real_pods = running_fixture("real_pods", lambda real_kube, real_env: PodWatch(real_kube, real_env.namespace))


def unique_repo(prefix: str) -> str:
    """A repository name no other test uses (images are cluster-wide on the nodes' stores)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
