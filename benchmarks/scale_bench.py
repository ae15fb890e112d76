"""Scale benchmark: many kwok nodes x images, one operator process, from nothing to all cached.

On one local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
with the pull-pod stages of the caching tests: a pull "takes" 0.3-1.1 s), the operator runs as a
process (``python -m drop_operator run``, or ``--go-operator PATH``). In order:

1. the operator starts on the empty cluster: **RSS idle**;
2. ``--nodes`` kwok Nodes are created directly (concurrent requests) and become schedulable:
   **RSS with the nodes cached** and the operator's requests while they appeared;
3. one PullPolicy and ``--images`` CachedImages are created; the clock stops when every image
   reports every node cached. Printed: **time to converge** against the pacing lower bound
   (pairs x mean pull-pod lifetime / concurrency), **operator CPU per (image, node) pair**,
   **API requests and writes per pair** and **peak requests per second** (1 s buckets; API
   server's audit log, the operator's own user only), **peak RSS**, duplicate pull pods, and the
   **size of the largest CachedImage** as the API server returns it (JSON, the form etcd stores
   custom resources in), for the projection in ``docs/scale.md``.

The default size runs in a few minutes on 2 cores (``task bench``); the sizes in the docs:

    python benchmarks/scale_bench.py                          # 500 nodes x 4 images
    python benchmarks/scale_bench.py --nodes 2000 --images 50 # 100 000 pairs (see docs/scale.md)

kwok renews each node's Lease; at 2000 nodes the default 40 s lease alone is ~200 writes/s on
the API server, so leases last ``--lease-seconds`` (default 600) here and the node lifecycle
controller's grace period is stretched to match. New Nodes are not given the not-ready taint
(admission plugin ``TaintNodesByCondition`` off): lifting it took the node lifecycle controller
minutes for 2000 nodes here. The operator still targets a node only once it reports Ready.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import harness
from harness import (
    AuditLog,
    OperatorUnderTest,
    Pacing,
    apply_crds,
    breakdown,
    create_kwok_nodes,
    create_namespace,
    new_cluster,
)

from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES
from drop_operator.runtime import Informer, KubeClient
from drop_operator.runtime.logging import configure_logging
from drop_operator.runtime.resources import CONFIG_MAPS, NODES


async def run(op: OperatorUnderTest, workdir: Path, args: argparse.Namespace) -> None:
    nodes, count = args.nodes, args.images
    pacing = Pacing(args.max_concurrent_nodes, args.max_concurrent_pulls, args.max_pulls_per_node)
    lease = args.lease_seconds
    cluster = new_cluster(
        workdir,
        controller_manager=True,
        extra_args={
            # New Nodes get no not-ready taint: the node lifecycle controller lifts it at a few
            # nodes per second on this machine, which would time the controller, not the operator.
            # The operator still waits for each node's Ready condition.
            "kube-apiserver": ["--disable-admission-plugins=ServiceAccount,TaintNodesByCondition"],
            "kwok": [f"--node-lease-duration-seconds={lease}"],
            "kube-controller-manager": [f"--node-monitor-grace-period={lease + 60}s"],
        },
    )
    audit = AuditLog(workdir / "audit.log")
    pulls = harness.PullLog()
    began = time.monotonic()
    with cluster:
        apply_crds(cluster, op.dialect.crds)
        cluster.start_kwok([harness.pull_pod_stages(workdir)])
        client = await KubeClient.connect(str(cluster.kubeconfig))
        pods: Informer | None = None
        try:
            await create_namespace(client)
            running = await asyncio.to_thread(op.start, cluster, workdir / "operator.log")
            await asyncio.sleep(3.0)
            rss_idle = running.rss_mib()

            nodes_start = time.time()
            await create_kwok_nodes(client, nodes, within=max(600.0, nodes * 0.5))
            nodes_ready = time.time()
            await audit.quiet(nodes_start, writes_only=False)
            rss_nodes = running.rss_mib()
            node_requests = audit.between(nodes_start)

            await client.create(PULL_POLICIES, op.dialect.pull_policy("scale", pacing))
            pods = pulls.watch(client)
            await pods.wait_synced(60)
            result = await harness.roll_out(
                client, op, running, audit, images=count, nodes=nodes, policy="scale", within=args.timeout
            )
            start, done, cpu, requests = result.start, result.done, result.cpu, result.requests
            await audit.quiet(done)
            rss_end, rss_peak = running.rss_mib(), running.peak_rss_mib()
            sizes = [len(json.dumps(o, separators=(",", ":"))) for o in (await client.list(CACHED_IMAGES))[0]]
            # Per-node records kept outside the CachedImage, if the operator keeps any there.
            records = [
                len(json.dumps(o, separators=(",", ":")))
                for o in (await client.list(CONFIG_MAPS, namespace=harness.NAMESPACE))[0]
            ]
            node_size = len(json.dumps(await client.get(NODES, "node-00000"), separators=(",", ":")))
            running.stop()
        finally:
            if pods is not None:
                await pods.stop()
            await client.close()

    pairs = nodes * count
    wall = done - start
    mean = pulls.mean_pull_seconds()
    concurrency = pacing.concurrency(nodes, count)
    bound = pairs * mean / concurrency
    writes = sum(1 for r in requests if r.write)
    print(f"operator                  {op.name}")
    print(
        f"nodes x images            {nodes} x {count} = {pairs} pairs ({pulls.pulled_pairs()} pulled by pods)"
    )
    print(f"pacing                    {pacing} -> {concurrency} pulls in flight")
    print(
        f"nodes schedulable after   {nodes_ready - nodes_start:.1f} s (created directly, 32 requests at a time)"
    )
    print(f"requests while nodes came {len(node_requests)} ({breakdown(node_requests) or 'none'})")
    print(f"time to converge          {wall:.1f} s")
    print(
        f"pacing lower bound        {bound:.1f} s ({pairs} x {mean:.2f} s / {concurrency}); ratio {wall / bound:.2f}"
    )
    print(
        f"operator CPU              {cpu:.1f} s = {1000 * cpu / pairs:.2f} ms per pair ({100 * cpu / wall:.0f} % of one core)"
    )
    print(
        f"API requests              {len(requests)} = {len(requests) / pairs:.2f} per pair ({writes / pairs:.2f} writes)"
    )
    print(
        f"request rate              peak {harness.peak_rate(requests):.0f}/s, mean {len(requests) / wall:.0f}/s"
    )
    print(f"  by verb and resource    {breakdown(requests)}")
    print(
        f"RSS                       idle {rss_idle:.0f} MiB, with {nodes} nodes {rss_nodes:.0f} MiB, "
        f"after the rollout {rss_end:.0f} MiB, peak {rss_peak:.0f} MiB"
    )
    print(f"RSS per node cached       {1024 * (rss_nodes - rss_idle) / nodes:.1f} KiB")
    print(f"RSS per pair after        {1024 * 1024 * (rss_end - rss_nodes) / pairs:.0f} B")
    print(f"duplicate pull pods       {pulls.duplicates()}")
    print(
        f"CachedImage size (JSON)   max {max(sizes)} B, mean {sum(sizes) / len(sizes):.0f} B; a Node {node_size} B"
    )
    if records:
        print(f"ConfigMaps in {harness.NAMESPACE}   {len(records)}, largest {max(records)} B (JSON)")
    print(
        f"benchmark took            {time.monotonic() - began:.0f} s, load average {harness.load_average():.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--max-concurrent-pulls", type=int, default=100)
    parser.add_argument("--max-concurrent-nodes", type=int, default=50)
    parser.add_argument("--max-pulls-per-node", type=int, default=2)
    parser.add_argument("--lease-seconds", type=int, default=600, help="kwok node Lease duration")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for convergence")
    parser.add_argument(
        "--go-operator", type=Path, metavar="PATH", help="run corewire/drop's manager instead"
    )
    parser.add_argument("--go-crds", type=Path, metavar="DIR", help="its CRDs (default: PATH/../crds)")
    args = parser.parse_args()
    configure_logging(level="warning")
    op = (
        OperatorUnderTest.go(args.go_operator.expanduser(), args.go_crds)
        if args.go_operator
        else OperatorUnderTest.ours()
    )
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        asyncio.run(run(op, Path(tmp), args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
