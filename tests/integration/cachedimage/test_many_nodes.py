"""Beyond version 1's 5 000-node cap: the migration and a restart re-pull no node already recorded.

6 000 Node objects that no kwok manages (cheap: nothing simulates them; they never become Ready,
so the image tolerates every taint to target them) carry the knowledge to test, plus three kwok
nodes that really pull. The image starts with a version-1 annotation listing the 6 000, as an
older operator would have left it (it capped its writes at 5 000; its reader never did).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time

import pytest

from drop_operator.controllers.common import nodecache
from drop_operator.controllers.kinds import CACHED_IMAGES
from drop_operator.runtime import ApiError, KubeClient
from drop_operator.runtime.resources import CONFIG_MAPS, NODES
from tests.infra.podwatch import PodWatch
from tests.infra.waiting import eventually
from tests.integration.cachedimage.conftest import GROUP_LABEL, Env, Operator

SYNTHETIC = int(os.environ.get("DROP_TEST_SYNTHETIC", "6000"))
"""Past version 1's 5 000; ``DROP_TEST_SYNTHETIC`` sets another count (12 000 fits a v1 annotation)."""
SYNTHETIC_LABEL = "drop.test/synthetic"


def v1_annotation(reference: str, nodes: list[str], when: float) -> str:
    """The cached-nodes annotation as version 1 wrote it (``<key>:<base-36 minutes>`` entries)."""
    minute, digits, stamp = int(when // 60), "0123456789abcdefghijklmnopqrstuvwxyz", ""
    while minute:
        minute, digit = divmod(minute, 36)
        stamp = digits[digit] + stamp
    ref = hashlib.sha1(reference.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"v1;{ref};" + ",".join(f"{nodecache.node_key(n)}:{stamp}" for n in nodes)


async def create_nodes(kube: KubeClient, names: list[str], group: str) -> None:
    gate = asyncio.Semaphore(32)

    async def one(name: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {GROUP_LABEL: group, SYNTHETIC_LABEL: group}},
        }
        async with gate:
            await kube.create(NODES, body)

    await asyncio.gather(*(one(n) for n in names))


async def record_of(kube: KubeClient, namespace: str, image: str) -> dict[str, float] | None:
    obj = await kube.get(CACHED_IMAGES, image)
    try:
        cm = await kube.get(CONFIG_MAPS, nodecache.record_name(obj["metadata"]["uid"]), namespace=namespace)
    except ApiError as err:
        if err.not_found:
            return None
        raise
    reference = f"{obj['spec']['image']}:{obj['spec']['tag']}"
    return nodecache.decode(reference, nodecache.record_payload(cm))


@pytest.mark.slow
@pytest.mark.timeout(900)  # creating the nodes alone takes a minute or two on 2 shared cores
async def test_a_restart_beyond_the_old_cap_pulls_only_the_nodes_never_recorded(
    env: Env, pod_watch: PodWatch
) -> None:
    synthetic = [f"s{i}-{env.group}" for i in range(SYNTHETIC)]
    try:
        await create_nodes(env.kube, synthetic, env.group)
        fresh = await env.add_nodes(3)
        reference = "registry.test/many/app:ok"
        policy = await env.policy(f"many-{env.group}", maxConcurrentNodes=3, minDelayBetweenPulls="0s")
        name = f"many-{env.group}"
        await env.kube.create(
            CACHED_IMAGES,
            {
                "apiVersion": CACHED_IMAGES.api_version,
                "kind": "CachedImage",
                "metadata": {
                    "name": name,
                    "annotations": {nodecache.ANNOTATION: v1_annotation(reference, synthetic, time.time())},
                },
                "spec": {
                    "image": "registry.test/many/app",
                    "tag": "ok",
                    "nodeSelector": {GROUP_LABEL: env.group},
                    # Every taint: the node lifecycle controller marks nodes without a kubelet
                    # not-ready, then unreachable, and they must stay targets throughout.
                    "tolerations": [{"operator": "Exists"}],
                    "pullPolicyRef": {"name": policy},
                },
            },
        )
        everyone = {nodecache.node_key(n) for n in [*synthetic, *fresh]}

        first = Operator(env.kube, env.namespace)
        await first.start()
        try:

            async def migrated() -> bool:
                obj = await env.kube.get(CACHED_IMAGES, name)
                record = await record_of(env.kube, env.namespace, name)
                return (
                    record is not None
                    and set(record) == everyone
                    and nodecache.ANNOTATION not in (obj["metadata"].get("annotations") or {})
                    and (obj.get("status") or {}).get("cachedNodes") == len(everyone)
                )

            await eventually(migrated, 90, "the three fresh nodes pulled, the record written", interval=0.5)
        finally:
            await first.stop()
        # Version 1's knowledge (all synthetic nodes) was used: only the three fresh nodes were pulled.
        assert {node for _, node in pod_watch.creations()} == set(fresh)

        second = Operator(env.kube, env.namespace)
        await second.start()
        try:
            reconciler = second.reconciler
            assert reconciler is not None
            await eventually(lambda: name in reconciler.passed, 60, "a pass of the restarted operator")
            state = reconciler.states.get(name)
            assert state is not None and len(state.cached) == len(everyone)
            status = await env.status(name)
            assert status.get("cachedNodes") == len(everyone) and status.get("pullingNodes") == 0
        finally:
            await second.stop()
        # The restart read the record: not one pull pod more.
        assert {node for _, node in pod_watch.creations()} == set(fresh)
        assert len(pod_watch.added) == 3
        record = await record_of(env.kube, env.namespace, name)
        assert record is not None and set(record) == everyone

        # The record is owned by the image: the garbage collector deletes it with the image (it
        # learns new kinds on its discovery resync, 30 s, so a fresh cluster is slow).
        records, _ = await env.kube.list(
            CONFIG_MAPS, namespace=env.namespace, label_selector=nodecache.RECORD_SELECTOR
        )
        assert len(records) == 1
        await env.kube.delete(CACHED_IMAGES, name)

        async def record_gone() -> bool:
            left, _ = await env.kube.list(
                CONFIG_MAPS, namespace=env.namespace, label_selector=nodecache.RECORD_SELECTOR
            )
            return not left

        await eventually(record_gone, 90, "the record garbage-collected with its image", interval=0.5)
    finally:
        with contextlib.suppress(ApiError):
            await env.kube.request(
                "DELETE", NODES.path(), query=[("labelSelector", f"{SYNTHETIC_LABEL}={env.group}")]
            )
