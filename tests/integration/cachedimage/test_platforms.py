"""Images are pulled only onto nodes whose os/arch they have a platform for, as the real registry
lists them; nodes left out are counted apart; an unreachable registry falls back to the labels."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from devtools import sampleimages
from devtools.process import free_port
from drop_operator.runtime import KubeClient
from tests.infra.operator import condition
from tests.infra.registry import RegistryFactory
from tests.infra.waiting import eventually
from tests.integration.cachedimage.conftest import Env, Operator, PodWatch

FAST = {"minDelayBetweenPulls": "0s", "pullTimeout": "10s"}


@pytest_asyncio.fixture
async def operator(kube: KubeClient, env: Env) -> AsyncIterator[Operator]:
    """The node-caching controllers with platform lookups on (every registry here is on 127.0.0.1)."""
    op = Operator(kube, env.namespace, platform_lookup=True)
    await op.start()
    try:
        yield op
    finally:
        await op.stop()


async def test_targets_follow_the_platforms_of_the_image(
    env: Env, operator: Operator, pod_watch: PodWatch, registry_server: RegistryFactory
) -> None:
    reg = registry_server()
    reg.push("samples/arm", ["ok"], sampleimages.arm64_only())
    reg.push("samples/multi", ["ok"], sampleimages.multi_platform())
    amd = [
        await env.add_node(prefix="amd", labels={"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"})
        for _ in range(2)
    ]
    arm = [
        await env.add_node(prefix="arm", labels={"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"})
        for _ in range(2)
    ]
    policy = await env.policy(f"plat-{env.group}", maxConcurrentNodes=4, maxConcurrentPulls=8, **FAST)
    arm_only = await env.image(f"arm-{env.group}", f"{reg.host}/samples/arm", "ok", policy=policy)
    multi = await env.image(f"multi-{env.group}", f"{reg.host}/samples/multi", "ok", policy=policy)
    # Nothing listens on this port: the platforms cannot be known, the labels alone decide.
    unknown = await env.image(f"down-{env.group}", f"127.0.0.1:{free_port()}/samples/x", "ok", policy=policy)

    async def settled(name: str, cached: int, incompatible: int) -> bool:
        status = await env.status(name)
        return (status.get("cachedNodes"), status.get("targetNodes"), status.get("incompatibleNodes")) == (
            cached,
            cached,
            incompatible,
        )

    await eventually(lambda: settled(arm_only, 2, 2), 40, "the arm64-only image cached on both arm64 nodes")
    await eventually(lambda: settled(multi, 4, 0), 40, "the multi-platform image cached on every node")
    await eventually(lambda: settled(unknown, 4, 0), 40, "the image of an unreachable registry on every node")

    pulled = {(image, node) for image, node in pod_watch.creations()}
    assert {node for image, node in pulled if image == arm_only} == set(arm), "no pull pod on an amd64 node"
    assert {node for image, node in pulled if image == multi} == set(amd + arm)

    status = await env.status(arm_only)
    assert status["platforms"] == ["linux/arm64/v8"]
    assert status["failedNodes"] == 0
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Cached")
    assert "2 nodes lack the image's platforms (linux/arm64/v8)" in ready["message"]
    assert (await env.status(multi))["platforms"] == ["linux/amd64", "linux/arm64/v8"]

    status = await env.status(unknown)
    assert status["platforms"] == []
    message = condition(status, "Ready")["message"]
    assert "platforms unknown (ConnectionError" in message and "targeted by labels only" in message

    # A node of the image's platform that joins later is a target at once; another amd64 is not.
    late_arm = await env.add_node(
        prefix="arm", labels={"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}
    )
    await env.add_node(prefix="amd", labels={"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"})
    await eventually(
        lambda: settled(arm_only, 3, 3), 30, f"{late_arm} cached, the new amd64 node counted apart"
    )
