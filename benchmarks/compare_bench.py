"""drop-operator side by side with the Go operator of the same API (corewire/drop).

Opt-in: ``--go-operator PATH`` names a corewire/drop manager binary (built by
``hack/build-go-operator.sh``, its CRDs in ``crds/`` beside it). Without it only drop-operator
runs, which still prints every row and its floor. Each operator runs in turn, as a process, on a
fresh local control plane per scenario (same sizes, same kwok stages), ``--runs`` times (default 2);
printed: each run's figures, then min and median per operator beside the floor, as markdown.

Scenarios (``--scenarios``, default all):

* ``imageset``: a CachedImageSet listing 1000 static images appears (no nodes). Writes on
  CachedImages and CachedImageSets per child (floor 2: one create, one first status), the set's
  status writes (floor 1), and the time until every child exists with a status and the set counts
  them all.
* ``coldstart``: idle RSS (operator started on an empty cluster); then 5000 CachedImages exist
  before the operator starts: time from process start until each has a status for its
  generation, requests, and RSS with them cached. Floors: a bare Python interpreter and a Go
  program that only waits.
* ``rollout``: 50 kwok nodes x 20 images under one PullPolicy (5 nodes per image, 20 pulls in
  flight; drop-operator's per-node limit set to 20 so it does not bind, as the Go operator has
  none): wall time until every CachedImage reports every node cached, against the pacing lower
  bound (pulls x mean pull-pod lifetime / concurrency); operator CPU; requests per pull (floor 2:
  create and delete the pod); duplicate pull pods (pods beyond the first per image and node).

Requests are counted from the API server's audit log for the operator's own user, CPU and RSS
from ``/proc`` of its process (see ``harness.py``). Field mapping: ``docs/comparison.md``.

``--python PATH`` runs drop-operator (this checkout's code) and the bare-interpreter floor with
another interpreter. For RSS, use a virtualenv with only the runtime dependencies, which is what
the image ships (``python -m venv V && V/bin/pip install .``): a development environment loads
more at start (``.pth`` hooks of its tools; structlog imports ``rich`` when it is installed), so
it reads about 5 MiB higher on the bare interpreter and 2 MiB on the idle operator.

    python benchmarks/compare_bench.py [--python V/bin/python] \
        [--go-operator ~/.cache/drop-operator/tools/drop-go-<commit>/manager]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import harness
from harness import (
    AuditLog,
    OperatorUnderTest,
    Pacing,
    Request,
    apply_crds,
    breakdown,
    create_kwok_nodes,
    create_namespace,
    gather_limited,
    new_cluster,
    observed,
    wait_for,
)

from drop_operator.controllers.kinds import CACHED_IMAGE_SETS, CACHED_IMAGES, PULL_POLICIES
from drop_operator.runtime import Informer, KubeClient
from drop_operator.runtime.logging import configure_logging

IDLE_SETTLE = 5.0
CR_RESOURCES = frozenset({"cachedimages", "cachedimagesets"})


@dataclass(frozen=True)
class Sizes:
    set_images: int
    cold_images: int
    nodes: int
    images: int
    pacing: Pacing


Metrics = dict[str, float]


def cr_writes(requests: list[Request]) -> list[Request]:
    return [r for r in requests if r.write and r.resource.split("/")[0] in CR_RESOURCES]


async def imageset(op: OperatorUnderTest, workdir: Path, sizes: Sizes) -> Metrics:
    n, name = sizes.set_images, "bench-set"
    cluster = new_cluster(workdir, controller_manager=False)
    audit = AuditLog(workdir / "audit.log")
    with cluster:
        apply_crds(cluster, op.dialect.crds)
        client = await KubeClient.connect(str(cluster.kubeconfig))
        children = Informer(client, CACHED_IMAGES, label_selector=f"{op.dialect.set_label()}={name}")
        sets = Informer(client, CACHED_IMAGE_SETS)
        try:
            await create_namespace(client)
            running = await asyncio.to_thread(op.start, cluster, workdir / "operator.log")
            for informer in (children, sets):
                informer.start()
                await informer.wait_synced(60)
            await asyncio.sleep(2.0)
            refs = [(f"registry.test/set/app-{i}", f"v{i}") for i in range(n)]
            start = time.time()
            await client.create(CACHED_IMAGE_SETS, op.dialect.image_set(name, refs))

            def settled() -> bool:
                items = children.list()
                owner = sets.get(name) or {}
                return (
                    len(items) >= n and all(observed(o) for o in items) and op.dialect.set_managed(owner) >= n
                )

            done = await wait_for(settled, 900, f"{n} children with a status")
            await audit.quiet(start)
            requests = audit.between(start)
            running.stop()
        finally:
            await children.stop()
            await sets.stop()
            await client.close()
    writes = cr_writes(requests)
    print(f"    {op.name} imageset requests: {breakdown(requests)}", flush=True)
    return {
        "set_writes_per_child": len(writes) / n,
        "set_status_writes": sum(1 for r in writes if r.resource == "cachedimagesets/status"),
        "set_settle_s": done - start,
        "set_requests": len(requests),
    }


async def coldstart(op: OperatorUnderTest, workdir: Path, sizes: Sizes) -> Metrics:
    n = sizes.cold_images
    cluster = new_cluster(workdir, controller_manager=False)
    audit = AuditLog(workdir / "audit.log")
    with cluster:
        apply_crds(cluster, op.dialect.crds)
        client = await KubeClient.connect(str(cluster.kubeconfig))
        images = Informer(client, CACHED_IMAGES)
        try:
            await create_namespace(client)
            running = await asyncio.to_thread(op.start, cluster, workdir / "operator-idle.log")
            await asyncio.sleep(IDLE_SETTLE)
            idle = running.rss_mib()
            running.stop()
            await gather_limited(
                client.create(
                    CACHED_IMAGES,
                    op.dialect.cached_image(f"cold-{i:05d}", f"registry.test/cold/app-{i}", "v1"),
                )
                for i in range(n)
            )
            images.start()
            await images.wait_synced(120)
            start = time.time()
            running = await asyncio.to_thread(op.start, cluster, workdir / "operator.log")
            done = await wait_for(
                lambda: sum(1 for o in images.list() if observed(o)) >= n, 1800, f"{n} statuses", interval=0.5
            )
            cpu = running.cpu_seconds()
            await audit.quiet(start)
            requests = audit.between(start)
            cached = running.rss_mib()
            running.stop()
        finally:
            await images.stop()
            await client.close()
    print(f"    {op.name} coldstart requests: {breakdown(requests)}", flush=True)
    return {
        "rss_idle_mib": idle,
        "rss_cached_mib": cached,
        "cold_settle_s": done - start,
        "cold_cpu_s": cpu,
        "cold_requests_per_image": len(requests) / n,
    }


async def rollout(op: OperatorUnderTest, workdir: Path, sizes: Sizes) -> Metrics:
    nodes, count, pacing = sizes.nodes, sizes.images, sizes.pacing
    cluster = new_cluster(workdir, controller_manager=True)
    audit = AuditLog(workdir / "audit.log")
    pulls = harness.PullLog()
    with cluster:
        apply_crds(cluster, op.dialect.crds)
        cluster.start_kwok([harness.pull_pod_stages(workdir)])
        client = await KubeClient.connect(str(cluster.kubeconfig))
        pods: Informer | None = None
        try:
            await create_namespace(client)
            await create_kwok_nodes(client, nodes)
            await client.create(PULL_POLICIES, op.dialect.pull_policy("bench", pacing))
            running = await asyncio.to_thread(op.start, cluster, workdir / "operator.log")
            pods = pulls.watch(client)
            await pods.wait_synced(60)
            result = await harness.roll_out(
                client, op, running, audit, images=count, nodes=nodes, policy="bench", within=1800
            )
            start, done, cpu, requests = result.start, result.done, result.cpu, result.requests
            await audit.quiet(done)  # late duplicates would show up here
            peak = running.peak_rss_mib()
            running.stop()
        finally:
            if pods is not None:
                await pods.stop()
            await client.close()
    total = nodes * count
    wall = done - start
    mean = pulls.mean_pull_seconds()
    bound = total * mean / pacing.concurrency(nodes, count)
    print(f"    {op.name} rollout requests: {breakdown(requests)}", flush=True)
    print(
        f"    {op.name} rollout: {pulls.pulled_pairs()} pairs pulled, {len(pulls.created)} pods, "
        f"mean pull {mean:.2f} s, peak {harness.peak_rate(requests):.0f} req/s",
        flush=True,
    )
    return {
        "rollout_wall_s": wall,
        "rollout_bound_s": bound,
        "rollout_ratio": wall / bound,
        "rollout_cpu_s": cpu,
        "rollout_requests_per_pull": len(requests) / total,
        "rollout_duplicates": pulls.duplicates(),
        "rollout_peak_rss_mib": peak,
    }


SCENARIOS: dict[str, Callable[[OperatorUnderTest, Path, Sizes], Awaitable[Metrics]]] = {
    "imageset": imageset,
    "coldstart": coldstart,
    "rollout": rollout,
}


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    floor: str
    goal: str
    digits: int = 2


def rows(sizes: Sizes, floors: dict[str, str]) -> list[Row]:
    n, m = sizes.nodes, sizes.images
    return [
        Row("set_writes_per_child", f"API writes per child, {sizes.set_images}-image set", "2.00", "≤ 2.02"),
        Row("set_status_writes", "CachedImageSet status writes while its children appear", "1", "≤ 10", 0),
        Row("set_settle_s", "children of the set settled, s (status written, set counts them)", "", "", 1),
        Row("set_requests", "operator requests, image set", "", "", 0),
        Row("rollout_cpu_s", f"operator CPU s, {n * m}-pull rollout ({n} nodes x {m} images)", "", "≤ Go", 1),
        Row("rollout_requests_per_pull", "operator requests per completed pull", "2.00", "≤ 2.2"),
        Row("rss_idle_mib", "RSS MiB idle", floors["rss"], "≤ Go", 0),
        Row(
            "rss_cached_mib",
            f"RSS MiB with {sizes.cold_images} CachedImages cached",
            floors["rss"],
            "≤ Go",
            0,
        ),
        Row("rollout_ratio", "rollout wall time / pacing lower bound", "1.00", "≤ 1.10"),
        Row("rollout_wall_s", "rollout wall time, s", "", "", 1),
        Row("rollout_duplicates", "duplicate pull pods in the rollout", "0", "0", 1),
        Row("cold_settle_s", f"cold start with {sizes.cold_images} CachedImages settled, s", "", "", 1),
        Row("cold_requests_per_image", "operator requests per CachedImage, cold start", "", "", 2),
        Row("cold_cpu_s", "operator CPU s, cold start", "", "", 1),
    ]


def cell(values: list[float], digits: int) -> str:
    if not values:
        return "n/a"
    low, mid = harness.min_median(values)
    return f"{harness.fmt(low, digits)} / {harness.fmt(mid, digits)}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--go-operator", type=Path, metavar="PATH", help="corewire/drop manager binary (opt-in)"
    )
    parser.add_argument("--go-crds", type=Path, metavar="DIR", help="its CRDs (default: PATH/../crds)")
    parser.add_argument(
        "--python",
        metavar="PATH",
        default=sys.executable,
        help="drop-operator's interpreter, e.g. a virtualenv's with only the runtime dependencies",
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of %(default)s"
    )
    parser.add_argument("--set-images", type=int, default=1000)
    parser.add_argument("--cold-images", type=int, default=5000)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    configure_logging(level="warning")

    operators = [OperatorUnderTest.ours(args.python)]
    if args.go_operator:
        operators.append(OperatorUnderTest.go(args.go_operator.expanduser(), args.go_crds))
    sizes = Sizes(args.set_images, args.cold_images, args.nodes, args.images, Pacing(5, 20, 20))
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    results: dict[str, dict[str, list[float]]] = {op.name: defaultdict(list) for op in operators}
    began = time.monotonic()
    loads: list[float] = []

    python_floor = harness.floor_rss_mib([args.python, "-c", "import time; time.sleep(60)"])
    idle = harness.go_idle_binary()
    go_floor = harness.floor_rss_mib([str(idle)]) if idle else float("nan")
    floors = {"rss": f"{python_floor:.0f} (python) / {harness.fmt(go_floor, 0)} (Go)"}
    print(f"floors: bare python {python_floor:.1f} MiB RSS, Go program that waits {go_floor:.1f} MiB RSS")

    for run in range(1, args.runs + 1):
        for scenario in chosen:
            for op in operators:
                stamp = time.monotonic()
                load = harness.load_average()
                loads.append(load)
                try:
                    with tempfile.TemporaryDirectory(prefix=f"compare-{scenario}-") as tmp:
                        metrics = asyncio.run(SCENARIOS[scenario](op, Path(tmp), sizes))
                except Exception:
                    print(f"run {run} {scenario} {op.name}: FAILED", flush=True)
                    traceback.print_exc()
                    continue
                for key, value in metrics.items():
                    results[op.name][key].append(value)
                shown = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
                print(
                    f"run {run} {scenario:9s} {op.name:13s} ({time.monotonic() - stamp:5.0f} s, load {load:.1f}): {shown}",
                    flush=True,
                )

    print(
        f"\n{args.runs} run(s) in {time.monotonic() - began:.0f} s, load average "
        f"{min(loads, default=0):.1f}-{max(loads, default=0):.1f} at the scenarios' starts; "
        "min / median of the runs\n"
    )
    names = [op.name for op in operators]
    ratio = len(operators) > 1
    print(
        "| measured | " + " | ".join(names) + (" | ratio of medians" if ratio else "") + " | floor | goal |"
    )
    print("|---" * (len(operators) + 3 + ratio) + "|")
    for row in rows(sizes, floors):
        found = [results[name].get(row.key, []) for name in names]
        if not any(found):
            continue
        cells = " | ".join(cell(values, row.digits) for values in found)
        if ratio:
            medians = [statistics.median(v) if v else float("nan") for v in found]
            cells += f" | {harness.fmt(medians[0] / medians[1]) if medians[1] else 'n/a'}"
        print(f"| {row.label} | {cells} | {row.floor} | {row.goal} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
