"""Runtime benchmarks: informer event throughput, cache memory, per-key reconcile overhead, client CPU.

Prints numbers; asserts nothing. No server is involved by default: events are fed straight into the
informer's event path (decode -> store -> indexes -> handler -> workqueue), so the figures are the
runtime's own cost per event, not the network's or the API server's; watch lines go through the
client's own decoder.

``--requests N`` also starts a local API server (etcd and kube-apiserver, no other component) and
sends N creates, N merge patches and N GETs of ~2 KiB ConfigMaps through :class:`KubeClient`, 16
at a time: the figure is this process's CPU per request (the server's CPU is its own process's).

    python benchmarks/runtime_bench.py [--objects 10000] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from devtools.localcluster import LocalCluster
from drop_operator.runtime import Informer, KubeClient, Resource, Result
from drop_operator.runtime.client import _decode_event
from drop_operator.runtime.controller import Controller
from drop_operator.runtime.resources import CONFIG_MAPS, NAMESPACES
from drop_operator.runtime.workqueue import WorkQueue

WIDGET = Resource("bench.example.com", "v1alpha1", "CachedThing", "cachedthings", namespaced=False)


def realistic_cr(i: int) -> dict[str, Any]:
    """A cluster-scoped CR shaped like a CachedImage child: ~2 KiB of JSON incl. managedFields."""
    name = f"registry-example-com-team-app-{i:06d}-{i * 7919 % 100000:05x}"
    return {
        "apiVersion": f"{WIDGET.group}/{WIDGET.version}",
        "kind": WIDGET.kind,
        "metadata": {
            "name": name,
            "uid": f"2f0c6d4e-{i:04x}-4b8a-9c1e-{i:012x}",
            "resourceVersion": str(100000 + i),
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {
                "drop.corewire.io/cachedimageset": "production-images",
                "app.kubernetes.io/managed-by": "drop",
            },
            "ownerReferences": [
                {
                    "apiVersion": "drop.corewire.io/v1alpha1",
                    "kind": "CachedImageSet",
                    "name": "production-images",
                    "uid": "8a1f3c2e-1111-4b8a-9c1e-000000000001",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "drop-operator",
                    "operation": "Apply",
                    "apiVersion": "drop.corewire.io/v1alpha1",
                    "time": "2026-01-01T00:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:spec": {"f:image": {}, "f:tag": {}, "f:pullPolicyRef": {}, "f:nodeSelector": {}}
                    },
                },
                {
                    "manager": "drop-operator",
                    "operation": "Update",
                    "apiVersion": "drop.corewire.io/v1alpha1",
                    "time": "2026-01-01T00:05:00Z",
                    "fieldsType": "FieldsV1",
                    "subresource": "status",
                    "fieldsV1": {"f:status": {"f:conditions": {}, "f:nodes": {}, "f:observedGeneration": {}}},
                },
            ],
        },
        "spec": {
            "image": f"registry.example.com/team/app-{i}",
            "tag": f"1.{i % 50}.{i % 7}",
            "pullPolicyRef": "default",
            "nodeSelector": {"kubernetes.io/os": "linux"},
        },
        "status": {
            "observedGeneration": 3,
            "nodes": {"desired": 120, "cached": 118, "pulling": 1, "failed": 1},
            "failures": [{"node": "node-17", "reason": "ErrImagePull", "message": "manifest unknown"}],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "Pulling",
                    "message": "118 of 120 nodes have the image",
                    "observedGeneration": 3,
                    "lastTransitionTime": "2026-01-01T00:05:00Z",
                }
            ],
        },
    }


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def new_informer() -> Informer:
    return Informer(None, WIDGET)  # type: ignore[arg-type]  # never started: no client needed


async def bench_throughput(n: int) -> None:
    lines = [json.dumps({"type": "ADDED", "object": realistic_cr(i)}).encode() for i in range(n)]
    updates = []
    for i in range(n):
        obj = realistic_cr(i)
        obj["metadata"]["resourceVersion"] = str(500000 + i)
        updates.append(json.dumps({"type": "MODIFIED", "object": obj}).encode())
    informer = new_informer()
    queue = WorkQueue("bench-throughput")
    owner_index = "owner"
    informer.add_index(owner_index, lambda o: [r["name"] for r in o["metadata"].get("ownerReferences", [])])
    informer.add_handler(
        on_add=lambda o: queue.add(o["metadata"]["name"]),
        on_update=lambda old, new: queue.add(new["metadata"]["name"]),
    )
    for label, batch in (("ADDED", lines), ("MODIFIED", updates)):
        started = time.perf_counter()
        for line in batch:
            informer._apply(json.loads(line))
        elapsed = time.perf_counter() - started
        print(
            f"informer {label:8s}: {n / elapsed:10.0f} events/s  ({elapsed / n * 1e6:.1f} µs/event incl. JSON decode)"
        )
    assert len(informer.by_index(owner_index, "production-images")) == n
    queue.shutdown()


def bench_memory(n: int) -> None:
    payloads = [json.dumps(realistic_cr(i)) for i in range(n)]
    size = sum(len(p) for p in payloads) / n
    gc.collect()
    before = rss_bytes()
    informer = new_informer()
    for p in payloads:
        informer._apply({"type": "ADDED", "object": json.loads(p)})
    gc.collect()
    after = rss_bytes()
    per_10k = (after - before) / n * 10_000
    print(f"cache memory    : {per_10k / 2**20:10.1f} MiB RSS per 10 000 objects ({size:.0f} B JSON each)")


def bench_watch_decode(n: int) -> None:
    lines = [json.dumps({"type": "MODIFIED", "object": realistic_cr(i)}).encode() for i in range(n)]
    started = time.process_time()
    for line in lines:
        _decode_event(WIDGET, line)
    elapsed = time.process_time() - started
    print(f"watch decode    : {elapsed / n * 1e6:10.1f} µs CPU/event ({len(lines[0])} B lines)")


def config_map(i: int, namespace: str) -> dict[str, Any]:
    """A ConfigMap as nested as a CachedImage's writes: CR metadata, its spec and status as data."""
    cr = realistic_cr(i)
    meta = {k: cr["metadata"][k] for k in ("name", "labels", "ownerReferences")}
    data = {
        f"{part}.{key}": json.dumps(value) for part in ("spec", "status") for key, value in cr[part].items()
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**meta, "namespace": namespace},
        "data": data,
    }


async def bench_requests(kubeconfig: Path, n: int, concurrency: int = 16) -> None:
    namespace = "bench-requests"
    async with await KubeClient.connect(str(kubeconfig)) as client:
        await client.create(
            NAMESPACES,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        )
        bodies = [config_map(i, namespace) for i in range(n)]
        gate = asyncio.Semaphore(concurrency)

        async def limited(coro: Any) -> Any:
            async with gate:
                return await coro

        def patch(i: int) -> Any:
            name = bodies[i]["metadata"]["name"]
            body = {
                "metadata": {"annotations": {"bench/round": "1"}},
                "data": {"status.nodes": f'{{"cached": {i}}}'},
            }
            return client.patch(CONFIG_MAPS, name, body, namespace)

        rounds = (
            ("create", lambda i: client.create(CONFIG_MAPS, bodies[i])),
            ("merge patch", patch),
            ("get", lambda i: client.get(CONFIG_MAPS, bodies[i]["metadata"]["name"], namespace)),
        )
        for label, call in rounds:
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(limited(call(i)) for i in range(n)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"{label:16s}: {cpu / n * 1e6:10.0f} µs client CPU/request ({n / wall:.0f} req/s)")


async def bench_reconcile(n: int, workers: int) -> None:
    done = 0
    finished = asyncio.Event()

    async def reconcile(key: str) -> Result | None:
        nonlocal done
        done += 1
        if done == n:
            finished.set()
        return None

    ctrl = Controller(f"bench-{workers}", reconcile, workers=workers)
    ctrl.start()
    started = time.perf_counter()
    for i in range(n):
        ctrl.enqueue(f"key-{i}")
    await asyncio.wait_for(finished.wait(), 120)
    elapsed = time.perf_counter() - started
    await ctrl.shutdown(1)
    print(
        f"reconcile ({workers} w) : {elapsed / n * 1e6:10.1f} µs/key overhead, empty reconciler ({n / elapsed:.0f} keys/s)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=0, help="requests per verb to a local API server")
    args = parser.parse_args()
    bench_memory(args.objects)
    await bench_throughput(args.objects)
    bench_watch_decode(args.objects)
    if args.requests:
        with (
            tempfile.TemporaryDirectory(prefix="drop-runtime-bench-") as tmp,
            LocalCluster(Path(tmp), with_controller_manager=False) as cluster,
        ):
            await bench_requests(cluster.kubeconfig, args.requests)
    for workers in (1, 4):
        await bench_reconcile(args.objects * 2, workers)


if __name__ == "__main__":
    asyncio.run(main())
