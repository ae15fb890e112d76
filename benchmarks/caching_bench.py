"""Node-caching benchmark: 100 kwok nodes x 30 images under one PullPolicy, from nothing to all Ready.

One local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
with ``tests/data/kwok/pull-pods.yaml``: a pull "takes" 0.3-0.8 s), the node-caching reconciler
in-process. Printed:

* wall time from the images' creation until every image is Ready on all nodes;
* the pacing lower bound: pulls x mean pull duration / effective concurrency, where the mean is the
  operator's own ``drop_pull_duration_seconds`` (pod creation to result, so scheduling is in it) and
  the concurrency is min(maxConcurrentPulls, nodes x maxPullsPerNode, images x maxConcurrentNodes);
  and the ratio of the two (1.0 would be a perfectly packed schedule);
* operator API requests per completed pull (``rest_client_requests_total`` of this process);
* operator CPU seconds and peak RSS (the benchmark's own polling is small and included).

Run: ``python benchmarks/caching_bench.py`` (needs ``task tools``).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import REGISTRY  # noqa: E402

from devtools.localcluster import KWOK_NODE_ANNOTATION, LocalCluster  # noqa: E402
from drop_operator.controllers.cachedimage import setup  # noqa: E402
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES  # noqa: E402
from drop_operator.controllers.settings import OperatorSettings  # noqa: E402
from drop_operator.runtime import KubeClient, Manager  # noqa: E402
from drop_operator.runtime.logging import configure_logging  # noqa: E402
from drop_operator.runtime.resources import NAMESPACES, NODES  # noqa: E402

NODES_COUNT = 100
IMAGES_COUNT = 30
POLICY: dict[str, Any] = {
    "maxConcurrentNodes": 5,
    "maxConcurrentPulls": 20,
    "maxPullsPerNode": 1,
    "minDelayBetweenPulls": "0s",
    "pullTimeout": "2m",
}
NAMESPACE = "drop-system"
STAGES = ROOT / "tests" / "data" / "kwok" / "pull-pods.yaml"


def requests_total() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "rest_client_requests":
            total += sum(s.value for s in metric.samples if s.name == "rest_client_requests_total")
    return total


async def run(cluster: LocalCluster) -> None:
    client = await KubeClient.connect(str(cluster.kubeconfig))
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )
    for i in range(NODES_COUNT):
        await client.create(
            NODES,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": f"node-{i:03d}", "annotations": {KWOK_NODE_ANNOTATION: "fake"}},
            },
        )

    async def schedulable() -> int:
        items, _ = await client.list(NODES)
        return sum(1 for n in items if not (n.get("spec") or {}).get("taints"))

    for _ in range(240):  # bounded: the node lifecycle controller untaints Ready nodes within seconds
        if await schedulable() >= NODES_COUNT:
            break
        await asyncio.sleep(0.5)
    else:
        raise TimeoutError("nodes never became schedulable")
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
    # The images are named on a host that exists nowhere: no platform lookups.
    setup(manager, OperatorSettings(namespace=NAMESPACE, workers=4, platform_lookup=False))
    task = asyncio.get_running_loop().create_task(manager.run())
    for _ in range(300):
        if manager.started_controllers:
            break
        await asyncio.sleep(0.1)

    cpu0, req0, t0 = time.process_time(), requests_total(), time.monotonic()
    for i in range(IMAGES_COUNT):
        await client.create(
            CACHED_IMAGES,
            {
                "apiVersion": CACHED_IMAGES.api_version,
                "kind": "CachedImage",
                "metadata": {"name": f"bench-{i:02d}"},
                "spec": {
                    "image": f"registry.test/bench/app{i}",
                    "tag": "ok",
                    "pullPolicyRef": {"name": "bench"},
                },
            },
        )
    polls = 0
    while True:
        polls += 1
        items, _ = await client.list(CACHED_IMAGES)
        done = sum(1 for o in items if (o.get("status") or {}).get("cachedNodes") == NODES_COUNT)
        if done == IMAGES_COUNT:
            break
        await asyncio.sleep(1.0)
    elapsed = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    requests = requests_total() - req0 - polls
    manager.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await client.close()

    pulls = NODES_COUNT * IMAGES_COUNT
    count = REGISTRY.get_sample_value("drop_pull_duration_seconds_count", {"result": "pulled"}) or 0
    total = REGISTRY.get_sample_value("drop_pull_duration_seconds_sum", {"result": "pulled"}) or 0
    mean = total / count if count else float("nan")
    concurrency = min(
        POLICY["maxConcurrentPulls"],
        NODES_COUNT * POLICY["maxPullsPerNode"],
        IMAGES_COUNT * POLICY["maxConcurrentNodes"],
    )
    bound = pulls * mean / concurrency
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"nodes x images            {NODES_COUNT} x {IMAGES_COUNT} = {pulls} pulls ({int(count)} recorded)")
    print(f"policy                    {POLICY}")
    print(f"wall time                 {elapsed:.1f} s")
    print(f"mean pull duration        {mean:.2f} s (pod creation to recorded result)")
    print(f"pacing lower bound        {bound:.1f} s  ({pulls} x {mean:.2f} s / {concurrency})")
    print(f"ratio wall / bound        {elapsed / bound:.2f}")
    print(f"API requests per pull     {requests / pulls:.2f}  ({requests:.0f} requests by the operator)")
    print(f"operator CPU              {cpu:.1f} s  ({100 * cpu / elapsed:.0f} % of one core)")
    print(f"peak RSS (process)        {peak_rss_mib:.0f} MiB")


def main() -> None:
    configure_logging(level="warning")
    with tempfile.TemporaryDirectory(prefix="drop-caching-bench-") as tmp:
        cluster = LocalCluster(Path(tmp))
        try:
            cluster.start()
            cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "manifests" / "crds"))
            cluster.kubectl(
                "wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "manifests" / "crds")
            )
            cluster.start_kwok([STAGES])
            asyncio.run(run(cluster))
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
