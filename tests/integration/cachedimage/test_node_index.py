"""Node events reconcile only the images they concern, and pulls follow exactly those images."""

from __future__ import annotations

from typing import Any

from drop_operator.runtime.resources import NODES
from tests.infra.podwatch import PodWatch
from tests.infra.waiting import eventually
from tests.integration.cachedimage.conftest import Env, Operator

FAST = {"minDelayBetweenPulls": "0s", "pullTimeout": "10s", "maxConcurrentNodes": 5, "maxConcurrentPulls": 10}


class NodeEvents:
    """Records which images each node event concerned, as the operator's node index said."""

    def __init__(self, operator: Operator) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        index = operator.reconciler.index
        original = index.update

        def spy(node: dict[str, Any], *, deleted: bool = False) -> set[str]:
            keys = original(node, deleted=deleted)
            self.calls.append((node["metadata"]["name"], sorted(keys)))
            return keys

        index.update = spy  # type: ignore[method-assign]

    def concerning(self, node: str) -> list[list[str]]:
        return [keys for name, keys in self.calls if name == node]


async def test_a_node_gaining_a_label_gets_pulls_of_exactly_the_images_selecting_it(
    env: Env, operator: Operator, pod_watch: PodWatch
) -> None:
    events = NodeEvents(operator)
    policy = await env.policy(f"label-{env.group}", **FAST)
    gpu = await env.image(
        f"gpu-{env.group}", "registry.test/label/gpu", "ok", policy=policy, nodeSelector=_sel(env, "gpu")
    )
    cpu = await env.image(
        f"cpu-{env.group}", "registry.test/label/cpu", "ok", policy=policy, nodeSelector=_sel(env, "cpu")
    )
    await env.add_node(labels={"pool": "gpu"})
    await env.add_node(labels={"pool": "cpu"})

    async def cached(name: str, count: int) -> bool:
        status = await env.status(name)
        return status.get("cachedNodes") == count and status.get("targetNodes") == count

    await eventually(lambda: cached(gpu, 1), 30, "the gpu image on its one node")
    await eventually(lambda: cached(cpu, 1), 30, "the cpu image on its one node")

    plain = await env.add_node()  # selected by neither image
    await eventually(lambda: events.concerning(plain), 10, "the new node seen by the operator")
    # a change of nothing targeting looks at: no image is concerned
    await env.kube.patch(NODES, plain, {"metadata": {"annotations": {"drop.test/note": "hello"}}})
    await env.kube.patch(NODES, plain, {"metadata": {"labels": {"unrelated": "yes"}}})
    await eventually(lambda: len(events.concerning(plain)) >= 2, 10, "the label change seen")
    assert all(keys == [] for keys in events.concerning(plain)), events.concerning(plain)

    await env.kube.patch(NODES, plain, {"metadata": {"labels": {"pool": "gpu"}}})
    await eventually(lambda: cached(gpu, 2), 20, "the relabelled node pulled the gpu image")
    assert [gpu] in events.concerning(plain)
    assert all(cpu not in keys for keys in events.concerning(plain))
    pulled_on_plain = {image for (image, node) in pod_watch.creations() if node == plain}
    assert pulled_on_plain == {gpu}
    status = await env.status(cpu)
    assert status.get("targetNodes") == 1 and status.get("cachedNodes") == 1


def _sel(env: Env, pool: str) -> dict[str, str]:
    return {"drop.test/group": env.group, "pool": pool}
