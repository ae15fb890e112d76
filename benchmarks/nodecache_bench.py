"""Cached-nodes benchmark: the stored record and the memory at 10 000 nodes x 500 images.

No servers; synthetic node names. Printed:

* bytes of one image's record at 10 000 nodes: binary (what etcd stores for a ConfigMap's
  binaryData), base64 (on the wire), and version 1's annotation text for comparison (which was cut
  at 5 000 nodes), for pulls sharing minutes (a rollout: 100 pulls a minute) and for the worst case
  (every node pulled in a minute of its own);
* encode and decode time of one such record, and the time to rebuild the memory of all 500 images
  from their records (what a restart does);
* memory per (node, image) fact by tracemalloc: the compact sets at the full 10 000 x 500, against
  version 1's ``dict[str, float]`` per image as its decoder built it (measured on 50 images).

Run: ``python benchmarks/nodecache_bench.py``.
"""

from __future__ import annotations

import base64
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drop_operator.controllers.common import nodecache  # noqa: E402
from drop_operator.controllers.common.nodeset import CachedNodes  # noqa: E402
from tests.infra.legacy import v1_text  # noqa: E402

NODES = 10_000
IMAGES = 500
T0 = 1_700_000_000
REF = "registry.example/team/app:1.2.3"


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()  # CPU time: the machine may be shared
        work()
        best = min(best, time.process_time() - start)
    return best


def traced(build: Callable[[], object]) -> tuple[object, int]:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        made = build()
        return made, tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def main() -> None:
    keys = [nodecache.node_key(f"ip-10-{i // 250}-{i % 250}.compute.internal") for i in range(NODES)]
    rollout = {k: float(T0 + (i // 100) * 60) for i, k in enumerate(keys)}
    scattered = {k: float(T0 - i * 128 * 60) for i, k in enumerate(keys)}

    print(f"record of one image at {NODES} nodes")
    for label, pulled in (("rollout (100 pulls/min)", rollout), ("worst (own minute each)", scattered)):
        data = nodecache.encode(REF, pulled)
        wire = len(base64.b64encode(data))
        print(
            f"  {label:26s} binary {len(data):7d} B ({len(data) / NODES:.2f} B/node)   base64 {wire:7d} B"
            f"   v1 text {len(v1_text(REF, pulled)):7d} B (v1 kept 5000 nodes)"
        )
    limit_nodes = (nodecache.MAX_RECORD_BYTES - 5) // (len(nodecache.encode(REF, rollout)) / NODES)
    print(f"  bound {nodecache.MAX_RECORD_BYTES} B: ~{limit_nodes:.0f} nodes at the rollout's density")

    sets = CachedNodes(rollout.items())
    data = nodecache.encode(REF, sets)
    enc = best_of(5, lambda: nodecache.encode(REF, sets))
    dec = best_of(5, lambda: CachedNodes.from_pairs(nodecache.pairs(REF, data)))
    print(f"encode {NODES} nodes          {enc * 1000:7.1f} ms CPU")
    print(f"decode {NODES} nodes          {dec * 1000:7.1f} ms CPU (into the compact set)")

    records = [nodecache.encode(f"{REF}-{i}", rollout) for i in range(IMAGES)]

    def load() -> list[CachedNodes]:
        return [CachedNodes.from_pairs(nodecache.pairs(f"{REF}-{i}", r)) for i, r in enumerate(records)]

    start = time.process_time()
    memory = load()
    loaded = time.process_time() - start
    facts = sum(len(s) for s in memory)
    del memory
    print(
        f"restart: {IMAGES} records -> memory {loaded:7.2f} s CPU ({facts} facts;"
        f" etcd holds {IMAGES * len(records[0]) / 2**20:.1f} MiB of records)"
    )
    _, used = traced(load)
    print(
        f"memory, compact sets        {used / facts:7.2f} B per (node, image) fact, {used / 2**20:7.1f} MiB total"
    )
    # Version 1's memory: per image the dict its decoder built (own key strings and floats).
    sample = 50
    text = v1_text(REF, rollout)
    _, used_dicts = traced(lambda: [nodecache.decode(REF, text) for _ in range(sample)])
    per_dict_fact = used_dicts / (sample * NODES)
    print(
        f"memory, dict[str, float]    {per_dict_fact:7.2f} B per fact (measured on {sample} images;"
        f" {per_dict_fact * NODES * IMAGES / 2**20:.0f} MiB at {IMAGES})"
    )
    print(f"ratio dict / compact        {per_dict_fact / (used / facts):7.1f}x")


if __name__ == "__main__":
    main()
