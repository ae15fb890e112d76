"""The node-caching reconciler in-process against the session's control plane, kwok and kube-scheduler.

kwok runs with the lifecycle in ``tests/data/kwok/pull-pods.yaml``: a pull pod succeeds, fails with
a chosen kubelet reason, or hangs, according to its image tag and node name. Each test gets its own
namespace for pull pods and its own node group label (nodes are cluster-wide and outlive tests), and
an :class:`Operator` it can stop and restart. :class:`PodWatch` follows the test namespace's pods
at the API server (a watch of its own, not the operator's cache) and keeps the highest number of
pulls ever in flight at once per pool, image and node.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from devtools.localcluster import KWOK_NODE_ANNOTATION, LocalCluster
from devtools.tools import REPO_ROOT
from drop_operator.controllers import cachedimage, pullpolicy
from drop_operator.controllers.cachedimage import CachedImageReconciler
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime import ApiError, KubeClient, Manager
from drop_operator.runtime.resources import NAMESPACES, NODES, PODS
from tests.infra.operator import InProcessOperator, running_fixture
from tests.infra.podwatch import PodWatch

Obj = dict[str, Any]
STAGES = REPO_ROOT / "tests" / "data" / "kwok" / "pull-pods.yaml"
GROUP_LABEL = "drop.test/group"
HOLD_NOT_READY = "drop.test/hold-not-ready"


@pytest.fixture(scope="session")
def pull_cluster(control_plane: LocalCluster, crds: Path) -> LocalCluster:
    """The control plane with kwok (re)started on the pull-pod lifecycle."""
    if "kube-scheduler" not in control_plane.processes:
        pytest.fail("the local control plane runs no kube-scheduler: pull pods would never be bound")
    control_plane.stop_kwok()
    control_plane.processes.pop("kwok", None)
    control_plane.start_kwok([STAGES])
    return control_plane


@dataclass
class Env:
    """Names one test owns: its pull-pod namespace and its node group."""

    kube: KubeClient
    namespace: str
    group: str
    nodes: list[str] = field(default_factory=list)

    async def add_node(
        self,
        name: str | None = None,
        *,
        prefix: str = "n",
        taints: list[Obj] | None = None,
        hold_not_ready: bool = False,
        labels: dict[str, str] | None = None,
    ) -> str:
        name = name or f"{prefix}-{self.group}-{len(self.nodes)}"
        annotations = {KWOK_NODE_ANNOTATION: "fake"}
        if hold_not_ready:
            annotations[HOLD_NOT_READY] = "true"
        await self.kube.create(
            NODES,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {GROUP_LABEL: self.group, "type": "kwok", **(labels or {})},
                    "annotations": annotations,
                },
                "spec": {"taints": taints or []},
            },
        )
        self.nodes.append(name)
        return name

    async def add_nodes(self, count: int, **kw: Any) -> list[str]:
        return [await self.add_node(**kw) for _ in range(count)]

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
        return name

    async def image(self, name: str, image: str, tag: str, *, policy: str | None = None, **spec: Any) -> str:
        body_spec: Obj = {"image": image, "tag": tag, "nodeSelector": {GROUP_LABEL: self.group}, **spec}
        if policy:
            body_spec["pullPolicyRef"] = {"name": policy}
        await self.kube.create(
            CACHED_IMAGES,
            {
                "apiVersion": CACHED_IMAGES.api_version,
                "kind": "CachedImage",
                "metadata": {"name": name},
                "spec": body_spec,
            },
        )
        return name

    async def status(self, name: str) -> Obj:
        status: Obj = (await self.kube.get(CACHED_IMAGES, name)).get("status") or {}
        return status

    async def pods(self) -> list[Obj]:
        items, _ = await self.kube.list(PODS, namespace=self.namespace)
        return items


@pytest_asyncio.fixture
async def env(kube: KubeClient, pull_cluster: LocalCluster) -> AsyncIterator[Env]:
    group = uuid.uuid4().hex[:8]
    namespace = f"pulls-{group}"
    await kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    e = Env(kube, namespace, group)
    try:
        yield e
    finally:
        # Cluster-scoped leftovers of this test would be targets of nothing (own group label) but
        # still cost the shared kwok work; remove them.
        for node in e.nodes:
            with contextlib.suppress(ApiError):
                await kube.delete(NODES, node)
        with contextlib.suppress(ApiError):
            await kube.delete(NAMESPACES, namespace)


def setup(manager: Manager, settings: OperatorSettings) -> CachedImageReconciler:
    """The node-caching reconciler and the PullPolicy status controller that counts its images."""
    reconciler = cachedimage.setup(manager, settings)
    pullpolicy.setup(manager, settings)
    return reconciler


class Operator(InProcessOperator[CachedImageReconciler]):
    """The node-caching controllers in a Manager of their own (no leader election, no servers)."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        *,
        platform_lookup: bool = False,
        operator_image_pull_secrets: tuple[str, ...] = (),
    ) -> None:
        # Images here are named on hosts that exist nowhere (registry.test): asking their registry
        # for platforms would only send DNS queries off the machine. The platform tests turn it on.
        settings = OperatorSettings(
            namespace=namespace,
            operator_image="drop-operator:test",
            workers=4,
            platform_lookup=platform_lookup,
            operator_image_pull_secrets=operator_image_pull_secrets,
        )
        super().__init__(client, setup, settings)
        self.namespace = namespace


operator = running_fixture("operator", lambda kube, env: Operator(kube, env.namespace))
pod_watch = running_fixture("pod_watch", lambda kube, env: PodWatch(kube, env.namespace))


def names(items: Iterable[Obj]) -> list[str]:
    return sorted(i["metadata"]["name"] for i in items)
