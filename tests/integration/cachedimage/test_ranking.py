"""Pulls are admitted in the order of the images' ranks when they share one pull slot."""

from __future__ import annotations

import random

from drop_operator.controllers.cachedimage.pullpods import ANNOTATION_IMAGE
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
