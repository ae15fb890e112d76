"""Warm-up benchmark: how long a new real node stays tainted while it pulls its gating images,
against the time the same pulls take one by one with ``ctr images pull``, in one run.

Two real nodes: ``real-node-0`` registers with the warming taint (as a node pool's new node does)
and is the only target of 30 CachedImages with ``warmUp`` (the demo's number of popular images,
small unique images in the node registry); ``real-node-1`` has its own containerd store and takes
the floor: ``ctr images pull`` of the same 30 references one after the other. The node-caching
and warm-up controllers run in-process. Measured from the moment the operator starts (the node
is already tainted, the images exist) until the taint is gone, for two PullPolicies: the demo's
example ``gentle`` (1 pull per node, 2 s between pull starts) and the same with no delay.

Run: ``python benchmarks/warmup_bench.py`` (needs ``task tools``; root, for containerd).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools import sampleimages  # noqa: E402
from devtools.localcluster import LocalCluster  # noqa: E402
from devtools.realnodes import HELPER_NOOP_PATH, RealNode, RealNodes  # noqa: E402
from drop_operator.controllers import cachedimage, warmup  # noqa: E402
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES  # noqa: E402
from drop_operator.controllers.settings import OperatorSettings  # noqa: E402
from drop_operator.runtime import KubeClient, Manager  # noqa: E402
from drop_operator.runtime.logging import configure_logging  # noqa: E402
from drop_operator.runtime.resources import NAMESPACES, NODES  # noqa: E402

IMAGES = 30
NAMESPACE = "drop-system"
WARMING = "drop.corewire.io/warming"
GENTLE: dict[str, Any] = {  # examples/pullpolicy-gentle.yaml
    "maxConcurrentPulls": 5,
    "maxPullsPerNode": 1,
    "maxConcurrentNodes": 2,
    "minDelayBetweenPulls": "2s",
    "pullTimeout": "10m",
}
POLICIES = {"gentle": GENTLE, "no-delay": {**GENTLE, "minDelayBetweenPulls": "0s"}}


def push_images(real: RealNodes, label: str) -> list[str]:
    assert real.registry is not None
    refs = []
    for i in range(IMAGES):
        repo = f"warm/{label}-{i}"
        real.registry.push(repo, ["v1"], sampleimages.unique(f"{label}-{i}"))
        refs.append(f"{real.registry.host}/{repo}:v1")
    return refs


def floor(node: RealNode, refs: list[str]) -> float:
    started = time.monotonic()
    for ref in refs:
        node.ctr("images", "pull", "--plain-http", ref, timeout=300)
    return time.monotonic() - started


async def taint(client: KubeClient, node: str) -> None:
    obj = await client.get(NODES, node)
    taints = [t for t in obj["spec"].get("taints") or [] if t["key"] != WARMING]
    taints.append({"key": WARMING, "effect": "NoSchedule"})
    await client.patch(NODES, node, {"spec": {"taints": taints}})


async def tainted(client: KubeClient, node: str) -> bool:
    obj = await client.get(NODES, node)
    return any(t["key"] == WARMING for t in obj["spec"].get("taints") or [])


async def warm_up(client: KubeClient, real: RealNodes, name: str, refs: list[str]) -> float:
    node = real.nodes[0].name
    await taint(client, node)
    await client.create(
        PULL_POLICIES,
        {
            "apiVersion": PULL_POLICIES.api_version,
            "kind": "PullPolicy",
            "metadata": {"name": name},
            "spec": POLICIES[name],
        },
    )
    for i, ref in enumerate(refs):
        image, _, tag = ref.rpartition(":")
        await client.create(
            CACHED_IMAGES,
            {
                "apiVersion": CACHED_IMAGES.api_version,
                "kind": "CachedImage",
                "metadata": {"name": f"{name}-{i}"},
                "spec": {
                    "image": image,
                    "tag": tag,
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "pullPolicyRef": {"name": name},
                    "warmUp": {"taintKey": WARMING, "maxWait": "1h"},
                },
            },
        )
    manager = Manager(client, namespace=NAMESPACE, leader_election=False, metrics_addr="0", probe_addr="0")
    settings = OperatorSettings(
        namespace=NAMESPACE, operator_image=real.helper_image, noop_path=HELPER_NOOP_PATH, workers=4
    )
    cachedimage.setup(manager, settings)
    warmup.setup(manager, settings)
    started = time.monotonic()
    task = asyncio.get_running_loop().create_task(manager.run())
    try:
        while await tainted(client, node):
            if time.monotonic() - started > 900:
                raise TimeoutError("the node was still tainted after 900 s")
            await asyncio.sleep(0.2)
        return time.monotonic() - started
    finally:
        manager.stop()
        await task
        for i in range(len(refs)):
            await client.delete(CACHED_IMAGES, f"{name}-{i}")


async def run(cluster: LocalCluster) -> None:
    real = cluster.nodes
    assert real is not None
    client = await KubeClient.connect(str(cluster.kubeconfig))
    try:
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        )
        # The helper image is on a node pool's image once per node; pull it before timing.
        real.nodes[0].ctr("images", "pull", "--plain-http", real.helper_image)
        for name in POLICIES:
            refs = push_images(real, name)
            floor_s = await asyncio.to_thread(floor, real.nodes[1], refs)
            warm_s = await warm_up(client, real, name, refs)
            stored = real.nodes[0].images()
            missing = [ref for ref in refs if ref not in stored]
            assert not missing, f"taint removed but {len(missing)} images are not in the store"
            print(
                f"policy {name}: {IMAGES} gating images; node warm (taint removed) after {warm_s:.1f} s; "
                f"the same pulls one by one with ctr: {floor_s:.1f} s; ratio {warm_s / floor_s:.1f}"
            )
    finally:
        await client.close()


def main() -> None:
    configure_logging(level="warning", fmt="console")
    with tempfile.TemporaryDirectory(prefix="drop-warmup-") as tmp:
        cluster = LocalCluster(Path(tmp) / "cluster", real_nodes=2)
        try:
            cluster.start()
            crds = str(ROOT / "manifests" / "crds")
            cluster.kubectl("apply", "--server-side", "-f", crds)
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)
            asyncio.run(run(cluster))
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
