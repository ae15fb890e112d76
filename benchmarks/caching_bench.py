"""Node-caching benchmark: kwok nodes x images under one PullPolicy, from nothing to all Ready.

By default 100 nodes x 30 images, every image targeting every node. ``--nodes``/``--images`` change
the sizes; ``--groups G`` labels the nodes round-robin into G groups and gives image i the node
selector of group i mod G, so a large cluster can be measured with the same number of pulls as a small
one (``--nodes 2000 --groups 10`` pulls as many images per image as ``--nodes 200``, in a cluster ten
times larger). ``--profile FILE`` runs the whole operator under cProfile and prints its top functions.

One local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
with ``tests/data/kwok/pull-pods.yaml``: a pull "takes" 0.3-0.8 s), the node-caching reconciler
in-process. Printed:

* wall time from the images' creation until every image is Ready on all nodes;
* the pacing lower bound: pulls x mean pull duration / effective concurrency, where the mean is the
  operator's own ``drop_pull_duration_seconds`` (pod creation to result, so scheduling is in it) and
  the concurrency is min(maxConcurrentPulls, nodes x maxPullsPerNode, images x maxConcurrentNodes);
  and the ratio of the two (1.0 would be a perfectly packed schedule);
* slot reuse: from the operator's cache seeing a pull end to the request creating the pull that
  takes its slot (the operator's own reaction, apart from the API server's and kwok's latency);
* operator API requests per completed pull (the operator's client only; the benchmark polls with
  its own), and which requests they were;
* operator CPU seconds (also per pull) and peak RSS (the benchmark's own polling is small and
  included).

Run: ``python benchmarks/caching_bench.py [--nodes N] [--images M] [--groups G]`` (needs ``task tools``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import re
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collections import Counter  # noqa: E402

from prometheus_client import REGISTRY  # noqa: E402

from devtools.localcluster import KWOK_NODE_ANNOTATION, LocalCluster  # noqa: E402
from drop_operator.controllers.cachedimage import setup  # noqa: E402
from drop_operator.controllers.cachedimage.pullpods import is_active  # noqa: E402
from drop_operator.controllers.cachedimage.wiring import POD_SELECTOR  # noqa: E402
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES  # noqa: E402
from drop_operator.controllers.settings import OperatorSettings  # noqa: E402
from drop_operator.runtime import KubeClient, Manager  # noqa: E402
from drop_operator.runtime.logging import configure_logging  # noqa: E402
from drop_operator.runtime.resources import NAMESPACES, NODES, PODS  # noqa: E402

POLICY: dict[str, Any] = {
    "maxConcurrentNodes": 5,
    "maxConcurrentPulls": 20,
    "maxPullsPerNode": 1,
    "minDelayBetweenPulls": "0s",
    "pullTimeout": "2m",
}
NAMESPACE = "drop-system"
STAGES = ROOT / "tests" / "data" / "kwok" / "pull-pods.yaml"
GROUP_LABEL = "bench.drop.test/group"


class RequestLog:
    """Counts the requests sent through one client, by method and kind of path (names stripped)."""

    def __init__(self, client: KubeClient) -> None:
        self.counts: Counter[str] = Counter()
        self.pod_creations: list[float] = []
        send = client._send

        async def counted(method: str, path: str, **kw: Any) -> Any:
            kind = f"{method} {_path_kind(path)}"
            self.counts[kind] += 1
            if kind == "POST /namespaces/*/pods":
                self.pod_creations.append(time.monotonic())
            return await send(method, path, **kw)

        client._send = counted  # type: ignore[method-assign]

    def total(self) -> int:
        return sum(self.counts.values())


def reaction_times(ends: list[float], starts: list[float], slots: int) -> list[float]:
    """Seconds from the operator's cache seeing the i-th pull end to the pull that took its slot.

    With every slot busy, the (slots + i)-th pod creation can only follow the i-th end; the
    difference is the operator's own reaction, without the API server's or kwok's latency.
    """
    ends, starts = sorted(ends), sorted(starts)
    return [starts[slots + i] - end for i, end in enumerate(ends) if slots + i < len(starts)]


def _path_kind(path: str) -> str:
    path = path.split("?", 1)[0]
    path = re.sub(r"/namespaces/[^/]+", "/namespaces/*", path)
    parts = path.strip("/").split("/")
    # .../<plural>/<name>[/<subresource>] -> .../<plural>/*[/<subresource>]
    for i, part in enumerate(parts):
        if part in ("pods", "events", "cachedimages", "nodes", "pullpolicies", "leases") and i + 1 < len(
            parts
        ):
            parts[i + 1] = "*"
    return "/" + "/".join(parts[-3:])


async def run(args: argparse.Namespace, cluster: LocalCluster) -> None:
    nodes_count, images_count, groups = args.nodes, args.images, args.groups
    policy = {**POLICY, "maxConcurrentNodes": args.max_concurrent_nodes}
    bench = await KubeClient.connect(str(cluster.kubeconfig))
    await bench.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})

    async def create_node(i: int) -> None:
        await bench.create(
            NODES,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"node-{i:04d}",
                    "labels": {GROUP_LABEL: str(i % groups)},
                    "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                },
            },
        )

    for start in range(0, nodes_count, 50):
        await asyncio.gather(*(create_node(i) for i in range(start, min(start + 50, nodes_count))))

    async def schedulable() -> int:
        items, _ = await bench.list(NODES)
        return sum(1 for n in items if not (n.get("spec") or {}).get("taints"))

    for _ in range(480):  # bounded: the node lifecycle controller untaints Ready nodes within seconds
        if await schedulable() >= nodes_count:
            break
        await asyncio.sleep(0.5)
    else:
        raise TimeoutError("nodes never became schedulable")
    await bench.create(
        PULL_POLICIES,
        {
            "apiVersion": PULL_POLICIES.api_version,
            "kind": "PullPolicy",
            "metadata": {"name": "bench"},
            "spec": policy,
        },
    )

    client = await KubeClient.connect(str(cluster.kubeconfig))
    sent = RequestLog(client)
    manager = Manager(client, namespace=NAMESPACE, leader_election=False, metrics_addr="0", probe_addr="0")
    # The images are named on a host that exists nowhere: no platform lookups.
    setup(manager, OperatorSettings(namespace=NAMESPACE, workers=4, platform_lookup=False))
    ends: list[float] = []

    def pull_ended(old: dict[str, Any], new: dict[str, Any]) -> None:
        if is_active(old) and not is_active(new):
            ends.append(time.monotonic())

    manager.informer(PODS, namespace=NAMESPACE, label_selector=POD_SELECTOR).add_handler(on_update=pull_ended)
    task = asyncio.get_running_loop().create_task(manager.run())
    for _ in range(600):
        if manager.started_controllers:
            break
        await asyncio.sleep(0.1)

    targets = [sum(1 for n in range(nodes_count) if n % groups == i % groups) for i in range(images_count)]
    profiler = cProfile.Profile() if args.profile else None
    cpu0, req0, t0 = time.process_time(), sent.total(), time.monotonic()
    before = Counter(sent.counts)
    if profiler is not None:
        profiler.enable()
    for i in range(images_count):
        spec: dict[str, Any] = {
            "image": f"registry.test/bench/app{i}",
            "tag": "ok",
            "pullPolicyRef": {"name": "bench"},
        }
        if groups > 1:
            spec["nodeSelector"] = {GROUP_LABEL: str(i % groups)}
        await bench.create(
            CACHED_IMAGES,
            {
                "apiVersion": CACHED_IMAGES.api_version,
                "kind": "CachedImage",
                "metadata": {"name": f"bench-{i:02d}"},
                "spec": spec,
            },
        )
    while True:
        items, _ = await bench.list(CACHED_IMAGES)
        done = sum(
            1
            for o in items
            if (o.get("status") or {}).get("cachedNodes") == targets[int(o["metadata"]["name"].split("-")[1])]
        )
        if done == images_count:
            break
        await asyncio.sleep(0.25)
    elapsed = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    if profiler is not None:
        profiler.disable()
    requests = sent.total() - req0
    by_kind = Counter(sent.counts)
    by_kind.subtract(before)
    manager.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await client.close()
    await bench.close()

    pulls = sum(targets)
    count = REGISTRY.get_sample_value("drop_pull_duration_seconds_count", {"result": "pulled"}) or 0
    total = REGISTRY.get_sample_value("drop_pull_duration_seconds_sum", {"result": "pulled"}) or 0
    mean = total / count if count else float("nan")
    concurrency = min(
        policy["maxConcurrentPulls"],
        nodes_count * policy["maxPullsPerNode"],
        images_count * policy["maxConcurrentNodes"],
    )
    bound = pulls * mean / concurrency
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"nodes x images            {nodes_count} x {images_count}, {groups} node group(s) = {pulls} pulls ({int(count)} recorded)"
    )
    print(f"policy                    {policy}")
    print(f"wall time                 {elapsed:.1f} s")
    print(f"mean pull duration        {mean:.2f} s (pod creation to recorded result)")
    print(f"pacing lower bound        {bound:.1f} s  ({pulls} x {mean:.2f} s / {concurrency})")
    print(f"ratio wall / bound        {elapsed / bound:.2f}")
    reactions = sorted(reaction_times(ends, sent.pod_creations, concurrency))
    if reactions:
        median, p90 = reactions[len(reactions) // 2], reactions[int(len(reactions) * 0.9)]
        mean_reaction = sum(reactions) / len(reactions)
        print(
            f"slot reuse (pull end seen -> next pull pod requested): mean {1000 * mean_reaction:.0f} ms, "
            f"median {1000 * median:.0f} ms, p90 {1000 * p90:.0f} ms"
        )
    print(f"API requests per pull     {requests / pulls:.2f}  ({requests:.0f} requests by the operator)")
    for kind, n in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        if n:
            print(f"    {n / pulls:6.3f} /pull  {n:6d}  {kind}")
    print(
        f"operator CPU              {cpu:.1f} s  ({100 * cpu / elapsed:.0f} % of one core), {1000 * cpu / pulls:.2f} ms per pull"
    )
    print(f"peak RSS (process)        {peak_rss_mib:.0f} MiB")
    if profiler is not None:
        profiler.dump_stats(args.profile)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--groups", type=int, default=1, help="node groups; image i selects group i mod G")
    parser.add_argument("--max-concurrent-nodes", type=int, default=POLICY["maxConcurrentNodes"])
    parser.add_argument("--profile", metavar="FILE", help="cProfile the operator; stats to FILE")
    args = parser.parse_args()
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
            asyncio.run(run(args, cluster))
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
