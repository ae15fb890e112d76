"""Warming taints go exactly when the gating images are cached, or after maxWait; workloads wait."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import REGISTRY

from drop_operator.controllers.common import nodecache, parse_time
from drop_operator.controllers.kinds import CACHED_IMAGES
from drop_operator.runtime import ApiError, KubeClient
from drop_operator.runtime.resources import CONFIG_MAPS, EVENTS, NODES, PODS
from tests.infra.waiting import eventually
from tests.integration.cachedimage.conftest import GROUP_LABEL, Env
from tests.integration.warmup.conftest import WARMING, WARMING_TAINT, Operator

Obj = dict[str, Any]


def tainted(node: Obj) -> bool:
    return any(t.get("key") == WARMING for t in node["spec"].get("taints") or ())


async def cached_on(env: Env, image: str, node: str) -> bool:
    """Whether the image's record (its ConfigMap, read at the API server) lists the node."""
    obj = await env.kube.get(CACHED_IMAGES, image)
    reference = f"{obj['spec']['image']}:{obj['spec']['tag']}"
    try:
        record = await env.kube.get(
            CONFIG_MAPS, nodecache.record_name(obj["metadata"]["uid"]), namespace=env.namespace
        )
    except ApiError as err:
        if err.not_found:
            return False
        raise
    return nodecache.node_key(node) in nodecache.decode(reference, nodecache.record_payload(record))


async def warming_node(env: Env, name: str) -> str:
    return await env.add_node(name, taints=[WARMING_TAINT], labels={"kubernetes.io/hostname": name})


async def workload(kube: KubeClient, env: Env, node: str) -> str:
    name = f"work-{node}"
    await kube.create(
        PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": env.namespace},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": node, GROUP_LABEL: env.group},
                "containers": [{"name": "c", "image": "registry.test/workload:ok"}],
            },
        },
    )
    return name


async def node_events(kube: KubeClient, node: str) -> list[Obj]:
    items, _ = await kube.list(EVENTS, namespace="default")
    return [e for e in items if (e.get("regarding") or {}).get("name") == node]


async def test_taint_goes_once_every_gating_image_is_cached_and_workloads_wait_for_it(
    kube: KubeClient, env: Env, operator: Operator
) -> None:
    images = [
        await env.image(f"gate{i}-{env.group}", f"registry.test/warm/app{i}", "ok", warmUp={"maxWait": "10m"})
        for i in range(2)
    ]
    plain = await env.image(f"plain-{env.group}", "registry.test/warm/plain", "ok")
    nodes = [await warming_node(env, f"warm{i}-{env.group}") for i in range(2)]
    pods = [await workload(kube, env, n) for n in nodes]

    untainted_seen: set[str] = set()

    async def all_warm() -> bool:
        # Read the node first: the images' annotations only grow, so an untainted node whose images
        # are not all cached afterwards means the taint went too early.
        for node in nodes:
            if not tainted(await kube.get(NODES, node)):
                for image in images:
                    assert await cached_on(env, image, node), f"taint left {node} before {image} was cached"
                untainted_seen.add(node)
        return untainted_seen == set(nodes)

    await eventually(all_warm, 120, "every warming taint removed", interval=0.2)

    for pod in pods:
        node = await eventually(lambda p=pod: _node_of(kube, env, p), 60, f"{pod} scheduled")
        assert node in nodes
    # The image without warmUp never tolerated the taint: it pulled only after the node was warm.
    plain_status = await eventually(
        lambda: _cached_everywhere(env, plain, len(nodes)), 60, "the plain image cached after warm-up"
    )
    assert plain_status["warmingNodes"] == 0
    for image in images:
        status = await env.status(image)
        assert status["warmingNodes"] == 0 and status["cachedNodes"] == len(nodes)
    events = await eventually(lambda: node_events(kube, nodes[0]), 20, "a WarmedUp event on the node")
    assert any(e["reason"] == "WarmedUp" and "2 gating images" in e["note"] for e in events), events
    assert (
        REGISTRY.get_sample_value("drop_node_warm_up_duration_seconds_count", {"outcome": "Warm"}) or 0
    ) >= 2


async def _node_of(kube: KubeClient, env: Env, pod: str) -> str | None:
    return (await kube.get(PODS, pod, namespace=env.namespace))["spec"].get("nodeName")


async def _cached_everywhere(env: Env, image: str, count: int) -> Obj | None:
    status = await env.status(image)
    return status if status.get("cachedNodes") == count else None


async def test_workload_stays_pending_while_the_node_warms(
    kube: KubeClient, env: Env, operator: Operator
) -> None:
    gate = await env.image(f"hang-{env.group}", "registry.test/warm/slow", "hang", warmUp={"maxWait": "10m"})
    node = await warming_node(env, f"held-{env.group}")
    pod = await workload(kube, env, node)

    async def warming_counted() -> bool:
        return (await env.status(gate)).get("warmingNodes") == 1

    await eventually(warming_counted, 30, "the gating image counts the warming node")
    assert REGISTRY.get_sample_value("drop_nodes_warming") == 1
    # The pull hangs: nothing makes the node warm; it stays held (sampled for a few seconds).
    for _ in range(20):
        assert tainted(await kube.get(NODES, node))
        assert await _node_of(kube, env, pod) is None
        await asyncio.sleep(0.25)
    # A user removes the taint by hand: the operator leaves the node alone (never puts it back).
    await kube.patch(NODES, node, {"spec": {"taints": []}})
    await eventually(lambda: _node_of(kube, env, pod), 30, "the workload scheduled once the taint is gone")
    assert not tainted(await kube.get(NODES, node))


async def test_max_wait_releases_a_node_whose_pull_keeps_failing(
    kube: KubeClient, env: Env, operator: Operator
) -> None:
    await env.image(f"fail-{env.group}", "registry.test/warm/missing", "fail", warmUp={"maxWait": "15s"})
    node = await env.add_node(taints=[WARMING_TAINT])
    created = (await kube.get(NODES, node))["metadata"]["creationTimestamp"]

    async def released() -> float | None:
        return None if tainted(await kube.get(NODES, node)) else time.time()

    at = await eventually(released, 90, "the warming taint removed after maxWait", interval=0.2)
    assert at - parse_time(created).timestamp() >= 15 - 1, "released before maxWait"
    events = await eventually(lambda: node_events(kube, node), 20, "an event on the node")
    timed_out = [e for e in events if e["reason"] == "WarmUpTimedOut"]
    assert timed_out and f"fail-{env.group}" in timed_out[0]["note"], events
