"""Warm-up on a real node: the warming taint goes only once the gating images are really in the
node's containerd store, and a workload that does not tolerate the taint is scheduled only then."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from devtools import sampleimages
from devtools.realnodes import HELPER_NOOP_PATH, RealNodes
from drop_operator.controllers import cachedimage, warmup
from drop_operator.controllers.cachedimage import CachedImageReconciler
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime import ApiError, KubeClient, Manager
from drop_operator.runtime.resources import NODES, PODS
from tests.infra.operator import InProcessOperator
from tests.infra.waiting import eventually
from tests.integration.realnodes.conftest import RealEnv, unique_repo

Obj = dict[str, Any]
WARMING = "drop.corewire.io/warming"
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _setup(manager: Manager, settings: OperatorSettings) -> CachedImageReconciler:
    warmup.setup(manager, settings)
    return cachedimage.setup(manager, settings)


@pytest_asyncio.fixture
async def warm_operator(
    real_kube: KubeClient, real_env: RealEnv, nodes: RealNodes
) -> AsyncIterator[InProcessOperator[CachedImageReconciler]]:
    settings = OperatorSettings(
        namespace=real_env.namespace, operator_image=nodes.helper_image, noop_path=HELPER_NOOP_PATH, workers=4
    )
    op = InProcessOperator(real_kube, _setup, settings)
    await op.start()
    try:
        yield op
    finally:
        await op.stop()


def _tainted(node: Obj) -> bool:
    return any(t.get("key") == WARMING for t in node["spec"].get("taints") or ())


async def test_real_node_keeps_its_warming_taint_until_the_images_are_in_its_store(
    real_kube: KubeClient,
    real_env: RealEnv,
    nodes: RealNodes,
    warm_operator: InProcessOperator[CachedImageReconciler],
) -> None:
    node = nodes.nodes[0]
    public = real_env.registries.public
    references = []
    for i in range(2):
        repo = unique_repo(f"samples/warm{i}")
        public.push(repo, ["v1"], sampleimages.unique(repo))
        references.append(f"{public.host}/{repo}:v1")
        await real_env.image(
            repo.replace("/", "-"),
            f"{public.host}/{repo}",
            "v1",
            policy=await real_env.policy(repo.replace("/", "-"), minDelayBetweenPulls="0"),
            warmUp={"maxWait": "1h"},
        )
    # The node as a pool registers it: with the warming taint (here put on the running node).
    before = (await real_kube.get(NODES, node.name))["spec"].get("taints") or []
    await real_kube.patch(
        NODES, node.name, {"spec": {"taints": [*before, {"key": WARMING, "effect": "NoSchedule"}]}}
    )
    try:
        workload = "workload"
        await real_kube.create(
            PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": workload, "namespace": real_env.namespace},
                "spec": {
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchFields": [
                                            {"key": "metadata.name", "operator": "In", "values": [node.name]}
                                        ]
                                    }
                                ]
                            }
                        }
                    },
                    "restartPolicy": "Never",
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "work",
                            "image": nodes.helper_image,
                            "command": [HELPER_NOOP_PATH],
                            "securityContext": RESTRICTED,
                        }
                    ],
                },
            },
            namespace=real_env.namespace,
        )

        async def warm() -> bool:
            obj = await real_kube.get(NODES, node.name)
            pod = await real_kube.get(PODS, workload, namespace=real_env.namespace)
            store = node.images()
            if _tainted(obj):
                assert not pod["spec"].get("nodeName"), "the workload was scheduled onto a warming node"
                return False
            # Read after the taint was seen gone: the store only gains these images.
            missing = [r for r in references if r not in store]
            assert not missing, f"taint left {node.name} before {missing} were in its store"
            return True

        await eventually(warm, 180, "the warming taint removed from the real node", interval=0.5)

        async def scheduled() -> str | None:
            pod = await real_kube.get(PODS, workload, namespace=real_env.namespace)
            return pod["spec"].get("nodeName")

        assert await eventually(scheduled, 60, "the workload scheduled") == node.name
    finally:
        with contextlib.suppress(ApiError):
            obj = await real_kube.get(NODES, node.name)
            if _tainted(obj):
                keep = [t for t in obj["spec"]["taints"] if t.get("key") != WARMING]
                await real_kube.patch(NODES, node.name, {"spec": {"taints": keep}})
