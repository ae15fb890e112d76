"""Paced rollout: 20 nodes x 5 images under maxConcurrentNodes 2 / maxConcurrentPulls 3."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.infra.operator import condition
from tests.infra.podwatch import PodWatch
from tests.infra.waiting import eventually
from tests.integration.cachedimage.conftest import Env, Operator

IMAGES = 5
NODES = 20


async def test_limits_hold_throughout_and_every_image_ends_ready(
    env: Env, operator: Operator, pod_watch: PodWatch
) -> None:
    await env.add_nodes(NODES)
    policy = await env.policy(
        f"paced-{env.group}",
        maxConcurrentNodes=2,
        maxConcurrentPulls=3,
        maxPullsPerNode=1,
        minDelayBetweenPulls="0s",
        pullTimeout="30s",
        failureBackoff={"initial": "1s", "max": "4s"},
    )
    images = [
        await env.image(f"img{i}-{env.group}", f"registry.test/rollout/app{i}", "ok", policy=policy)
        for i in range(IMAGES)
    ]

    async def all_ready() -> bool:
        for name in images:
            status = await env.status(name)
            if condition(status, "Ready").get("status") != "True" or status.get("cachedNodes") != NODES:
                return False
        return True

    await eventually(all_ready, 120, "every image cached on every node", interval=0.5)
    await eventually(lambda: not pod_watch.pods, 20, "finished pull pods deleted")

    assert pod_watch.peak_pool[policy] <= 3, pod_watch.peak_pool
    assert pod_watch.peak_pool[policy] == 3, "the pool limit was never used fully"
    assert max(pod_watch.peak_image.values()) <= 2, pod_watch.peak_image
    assert max(pod_watch.peak_node.values()) <= 1, pod_watch.peak_node
    creations = pod_watch.creations()
    assert len(creations) == IMAGES * NODES
    assert all(len(times) == 1 for times in creations.values()), "a pull pod was created twice"

    status = await env.status(images[0])
    assert status["targetNodes"] == NODES
    assert status["pullingNodes"] == 0 and status["failedNodes"] == 0
    assert status["resolvedDigest"].startswith("sha256:")
    assert status["lastPulledTime"]
    assert condition(status, "Progressing")["status"] == "False"
    assert condition(status, "Degraded")["status"] == "False"
    assert status["observedGeneration"] == 1
    assert REGISTRY.get_sample_value("drop_pulls_in_flight") == 0
    assert (REGISTRY.get_sample_value("drop_image_nodes", {"state": "cached"}) or 0) >= IMAGES * NODES
