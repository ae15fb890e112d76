"""Real-pull benchmark: the same kind of images onto two real nodes through the product, against the
floor of pulling them straight into each node's containerd with ``ctr images pull``, in one run.

One local control plane with two real nodes (containerd + kubelet), a plain-HTTP registry on
127.0.0.1 holding ``2 x ROUNDS`` sets of ``IMAGES`` images (``LAYERS`` layers of incompressible
data, ``MIB`` MiB each image, no layer shared between images), and the node-caching reconciler
in-process with the helper image. Each round:

* floor: ``ctr images pull --plain-http`` of one set, one image after the other on each node, both
  nodes at once (what ``maxPullsPerNode: 1`` allows the product);
* product: CachedImages of the *other* set (containerd shares content between namespaces, so the
  product never gets the floor's blobs for free) under a PullPolicy of 1 pull per node and no
  delay, from creation until every image reports both nodes cached.

Printed per round: both wall times, their ratio, and the per-pull overhead of the pod path
((product - floor) / pulls per node: scheduling, sandbox, init container, status round trips).
Run: ``python benchmarks/realpull_bench.py`` (needs ``task tools``; root, for containerd).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools import sampleimages  # noqa: E402
from devtools.localcluster import LocalCluster  # noqa: E402
from devtools.realnodes import HELPER_NOOP_PATH, REAL_NODE_LABEL, RealNode, RealNodes  # noqa: E402
from devtools.registry import RegistryServer, start_registry  # noqa: E402
from drop_operator.controllers.cachedimage import setup  # noqa: E402
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES  # noqa: E402
from drop_operator.controllers.settings import OperatorSettings  # noqa: E402
from drop_operator.runtime import KubeClient, Manager  # noqa: E402
from drop_operator.runtime.logging import configure_logging  # noqa: E402
from drop_operator.runtime.resources import NAMESPACES  # noqa: E402

IMAGES = 6
MIB = 16
LAYERS = 2
ROUNDS = 2
NAMESPACE = "drop-system"
POLICY: dict[str, Any] = {
    "maxConcurrentPulls": 2,
    "maxPullsPerNode": 1,
    "maxConcurrentNodes": 2,
    "minDelayBetweenPulls": "0s",
    "pullTimeout": "5m",
}


def push_set(registry: RegistryServer, label: str) -> list[str]:
    refs = []
    for i in range(IMAGES):
        repo = f"bench/{label}-{i}"
        registry.push(repo, ["v1"], sampleimages.large(MIB, LAYERS, seed=f"{label}-{i}"))
        refs.append(f"{registry.host}/{repo}:v1")
    return refs


def floor(nodes: list[RealNode], refs: list[str]) -> float:
    def pull_all(node: RealNode) -> None:
        for ref in refs:
            node.ctr("images", "pull", "--plain-http", ref, timeout=300)

    started = time.monotonic()
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(pull_all, nodes))
    return time.monotonic() - started


async def product(client: KubeClient, refs: list[str], label: str, nodes: int) -> float:
    names = []
    started = time.monotonic()
    for i, ref in enumerate(refs):
        image, _, tag = ref.rpartition(":")
        name = f"{label}-{i}"
        await client.create(
            CACHED_IMAGES,
            {
                "apiVersion": CACHED_IMAGES.api_version,
                "kind": "CachedImage",
                "metadata": {"name": name},
                "spec": {
                    "image": image,
                    "tag": tag,
                    "nodeSelector": dict([REAL_NODE_LABEL]),
                    "pullPolicyRef": {"name": "bench"},
                },
            },
        )
        names.append(name)
    while True:
        done = 0
        for name in names:
            status = (await client.get(CACHED_IMAGES, name)).get("status") or {}
            done += status.get("cachedNodes") == nodes
        if done == len(names):
            return time.monotonic() - started
        if time.monotonic() - started > 900:
            raise TimeoutError(f"only {done}/{len(names)} images cached after 900 s")
        await asyncio.sleep(0.2)


async def run(cluster: LocalCluster, registry: RegistryServer) -> None:
    assert cluster.nodes is not None
    client = await KubeClient.connect(str(cluster.kubeconfig))
    try:
        await measure(client, cluster.nodes, registry)
    finally:
        await client.close()


async def measure(client: KubeClient, real: RealNodes, registry: RegistryServer) -> None:
    nodes = real.nodes
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )
    await client.create(
        PULL_POLICIES,
        {
            "apiVersion": PULL_POLICIES.api_version,
            "kind": "PullPolicy",
            "metadata": {"name": "bench"},
            "spec": POLICY,
        },
    )
    manager = Manager(client, namespace=NAMESPACE, leader_election=False, metrics_addr="0", probe_addr="0")
    settings = OperatorSettings(
        namespace=NAMESPACE, operator_image=real.helper_image, noop_path=HELPER_NOOP_PATH, workers=4
    )
    setup(manager, settings)
    task = asyncio.get_running_loop().create_task(manager.run())
    # Warm the helper image on both nodes first: it is pulled once per node in a cluster's life,
    # and the floor has no such step.
    warm = push_set(registry, "warm")[:1]
    await product(client, warm, "warm", len(nodes))

    ratios, overheads = [], []
    for r in range(ROUNDS):
        floor_refs = push_set(registry, f"floor{r}")
        product_refs = push_set(registry, f"product{r}")
        floor_s = await asyncio.to_thread(floor, nodes, floor_refs)
        product_s = await product(client, product_refs, f"product{r}", len(nodes))
        ratio = product_s / floor_s
        overhead = (product_s - floor_s) / IMAGES
        ratios.append(ratio)
        overheads.append(overhead)
        print(
            f"round {r + 1}: {IMAGES} images x {MIB} MiB onto {len(nodes)} real nodes: "
            f"product {product_s:.2f} s, floor (ctr images pull) {floor_s:.2f} s, "
            f"ratio {ratio:.2f}, overhead per pull {overhead:.2f} s"
        )
    print(
        f"ratio to the floor: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}; "
        f"overhead per pull: min {min(overheads):.2f} s, median {statistics.median(overheads):.2f} s"
    )
    manager.stop()
    await task


def main() -> None:
    configure_logging(level="warning", fmt="console")
    with tempfile.TemporaryDirectory(prefix="drop-realpull-") as tmp:
        cluster = LocalCluster(Path(tmp) / "cluster", real_nodes=2)
        registry: RegistryServer | None = None
        try:
            t = time.monotonic()
            cluster.start()
            print(f"control plane and 2 real nodes ready in {time.monotonic() - t:.1f} s")
            crds = str(ROOT / "manifests" / "crds")
            cluster.kubectl("apply", "--server-side", "-f", crds)
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)
            registry = start_registry(Path(tmp) / "registry", version=2)
            assert cluster.nodes is not None
            cluster.nodes.trust(registry.host)
            asyncio.run(run(cluster, registry))
        finally:
            cluster.stop()
            if registry is not None:
                registry.stop()


if __name__ == "__main__":
    main()
