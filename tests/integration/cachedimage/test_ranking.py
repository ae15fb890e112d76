"""Pulls are admitted in the order of the images' ranks when they share one pull slot."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from drop_operator.controllers.cachedimage import reconciler as reconciler_module
from drop_operator.controllers.cachedimage.pullpods import ANNOTATION_IMAGE
from drop_operator.controllers.kinds import CACHED_IMAGES
from drop_operator.runtime.resources import Resource
from tests.infra.operator import condition
from tests.infra.podwatch import PodWatch
from tests.infra.waiting import eventually
from tests.integration.cachedimage.conftest import Env, Operator

IMAGES = 30
NODES = 2


async def test_one_slot_goes_to_the_best_ranked_image_until_it_is_cached_everywhere(
    env: Env, operator: Operator, pod_watch: PodWatch
) -> None:
    policy = await env.policy(
        f"one-{env.group}", maxConcurrentPulls=1, minDelayBetweenPulls="0s", pullTimeout="30s"
    )
    ranks = list(range(IMAGES))
    random.Random(13).shuffle(ranks)  # created in no particular order: only the rank may decide
    names = {}
    for rank in ranks:
        name = await env.image(
            f"r{rank:02d}-{env.group}", f"registry.test/ranked/app{rank}", "ok", policy=policy, rank=rank
        )
        names[name] = rank
    # The images exist before their nodes: a pool scaling up is where the order matters.
    await env.add_nodes(NODES)

    async def all_cached() -> bool:
        for name in names:
            status = await env.status(name)
            if status.get("cachedNodes") != NODES or condition(status, "Ready").get("status") != "True":
                return False
        return True

    await eventually(all_cached, 300, "every image cached on every node", interval=1.0)

    order = [names[pod["metadata"]["annotations"][ANNOTATION_IMAGE]] for _, pod in pod_watch.added]
    assert len(order) == IMAGES * NODES, order
    assert order == sorted(order), f"pulls started out of rank order: {order}"
    assert pod_watch.peak_pool[policy] == 1


async def test_a_pull_that_ends_hands_its_slot_over_before_its_image_writes_status(
    env: Env, operator: Operator, pod_watch: PodWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next image in the pool starts while the finished image's status write is still on its way.

    The status write of the image whose pull ended is held until the waiting image's pull pod
    exists, and the waiting image's fallback re-check is pushed out of reach: only the hand-over
    of the finished image's pass can start it.
    """
    monkeypatch.setattr(reconciler_module, "POOL_RECHECK", 600.0)
    assert operator.reconciler is not None
    client = operator.reconciler.client
    release = asyncio.Event()
    held: list[str] = []
    send = client.patch_status

    async def held_when_cached(res: Resource, name: str, body: dict[str, Any], **kw: Any) -> Any:
        if res == CACHED_IMAGES and name == first and (body.get("status") or {}).get("cachedNodes"):
            held.append(name)
            await release.wait()
        return await send(res, name, body, **kw)

    monkeypatch.setattr(client, "patch_status", held_when_cached)
    policy = await env.policy(
        f"handover-{env.group}", maxConcurrentPulls=1, minDelayBetweenPulls="0s", pullTimeout="30s"
    )
    first = await env.image(f"a-{env.group}", "registry.test/handover/first", "ok", policy=policy, rank=0)
    second = await env.image(f"b-{env.group}", "registry.test/handover/second", "ok", policy=policy, rank=1)
    await env.add_nodes(1)

    def started(name: str) -> bool:
        return any(p["metadata"]["annotations"][ANNOTATION_IMAGE] == name for _, p in pod_watch.added)

    try:
        await eventually(lambda: started(second), 60, "the second image's pull started")
        assert held == [first], f"the second image started before the first one's pull ended: {held}"
    finally:
        release.set()

    async def both_cached() -> bool:
        return all([(await env.status(n)).get("cachedNodes") == 1 for n in (first, second)])

    await eventually(both_cached, 120, "both images cached", interval=0.5)
    assert pod_watch.peak_pool[policy] == 1
