"""Cost of one CachedImage pass's node work against the cluster's size, without a cluster.

Synthetic nodes, each listing ``--listed`` images in ``status.images`` (the kubelet reports up to 50),
one image targeting every node, half of them cached already. For each cluster size it times, in
CPU seconds per pass:

* **scan**: what a pass did before the node index: select the targets among every node
  (:func:`~drop_operator.controllers.cachedimage.nodes.select_targets`), split them by platform, and
  classify every target (:func:`~drop_operator.controllers.cachedimage.decide.classify_nodes`);
* **indexed**: a pass after one node event: the index applies the event
  (:meth:`~drop_operator.controllers.cachedimage.targetindex.TargetIndex.update`), the image's
  :class:`~drop_operator.controllers.cachedimage.pending.Track` takes the changed node, and only
  :meth:`~drop_operator.controllers.cachedimage.pending.Track.check`'s nodes are classified.

The ratio of the two at each size, and each one's growth from the smallest size, are printed.

Run: ``python benchmarks/targeting_bench.py [--sizes 200 2000 10000] [--listed 50]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drop_operator.controllers.cachedimage.decide import classify_nodes  # noqa: E402
from drop_operator.controllers.cachedimage.nodes import select_targets, split_by_platform  # noqa: E402
from drop_operator.controllers.cachedimage.pacing import Pacing  # noqa: E402
from drop_operator.controllers.cachedimage.pending import Track  # noqa: E402
from drop_operator.controllers.cachedimage.state import ImageState  # noqa: E402
from drop_operator.controllers.cachedimage.targetindex import TargetIndex  # noqa: E402

REFERENCE = "registry.test/bench/app:1"
PACING = Pacing.default()


def make_node(i: int, listed: int, *, label: str = "a") -> dict[str, Any]:
    return {
        "metadata": {"name": f"node-{i:05d}", "labels": {"kubernetes.io/os": "linux", "tier": label}},
        "spec": {"taints": []},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "images": [
                {"names": [f"registry.test/other/img{j}:{i % 7}"], "sizeBytes": 10_000_000 + j}
                for j in range(listed)
            ],
        },
    }


def per_pass(fn: Any, *, at_least: float = 0.3) -> float:
    """CPU seconds per call of ``fn``, over at least ``at_least`` CPU seconds."""
    calls, start = 0, time.process_time()
    while True:
        fn()
        calls += 1
        spent = time.process_time() - start
        if spent >= at_least and calls >= 3:
            return spent / calls


def measure(size: int, listed: int) -> tuple[float, float]:
    nodes = {f"node-{i:05d}": make_node(i, listed) for i in range(size)}
    state = ImageState("uid", REFERENCE)
    when = datetime.fromtimestamp(1_000_000, tz=UTC)
    for name in list(nodes)[: size // 2]:
        state.record_success(name, when, None)
    now = 1_000_100.0

    def scan() -> None:
        targets, _ = split_by_platform(select_targets(nodes.values(), {}, []), None)
        classify_nodes(
            targets,
            state,
            pulling=set(),
            reference=REFERENCE,
            image_pull_policy="IfNotPresent",
            pacing=PACING,
            now=now,
        )

    index = TargetIndex()
    for node in nodes.values():
        index.update(node)
    key, members = index.register("img", {}, [], [REFERENCE])
    track = Track(state, key, None)
    track.rebuild(members, index.nodes, index.keys)
    flip = [0]

    def indexed() -> None:
        flip[0] ^= 1  # one node event: a label change on one node
        index.update(make_node(7, listed, label="b" if flip[0] else "a"))
        dirty = index.take_dirty("img")
        track.apply_dirty(dirty, members, index.nodes, index.keys)
        check = track.check(
            dirty, fresh=PACING.max_concurrent_nodes + PACING.max_concurrent_pulls, warming=()
        )
        classify_nodes(
            {n: index.nodes[n] for n in check},
            state,
            pulling=set(),
            reference=REFERENCE,
            image_pull_policy="IfNotPresent",
            pacing=PACING,
            now=now,
        )
        track.refresh(check, index.keys)

    return per_pass(scan), per_pass(indexed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000, 10000])
    parser.add_argument("--listed", type=int, default=50, help="images each node lists in status.images")
    args = parser.parse_args()
    print(f"{'nodes':>7} {'scan ms/pass':>13} {'indexed ms/pass':>16} {'scan/indexed':>13}")
    base: tuple[float, float] | None = None
    for size in args.sizes:
        scan, indexed = measure(size, args.listed)
        base = base or (scan, indexed)
        print(
            f"{size:>7} {1000 * scan:>13.2f} {1000 * indexed:>16.3f} {scan / indexed:>13.0f}"
            f"   (growth from {args.sizes[0]} nodes: scan x{scan / base[0]:.1f}, indexed x{indexed / base[1]:.1f})"
        )


if __name__ == "__main__":
    main()
