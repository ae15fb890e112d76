"""Image-set benchmark: from a DiscoveryPolicy status update to every child existing.

For 100 and for 1 000 new images, on one local kube-apiserver in one run:

* **floor**: a bare KubeClient creates the same CachedImage objects (same bodies, the same number
  of requests in flight as the reconciler uses), before the reconciler is started, nothing else;
* **operator**: the image-set reconciler runs in-process (a Manager, leader election off); the
  clock starts when the policy's status is written and stops when an independent watch has seen
  every child.

Printed: both times, their ratio, and the write requests the API server served per converged image
(``apiserver_request_total``, write verbs on cachedimages and cachedimagesets, counted until the
set's status is settled).

Then, on a fresh control plane, the same n new images with the **full operator** in-process (the
image-set, node-caching and PullPolicy controllers; no nodes, so every child's first status is its last, and no platform
lookups): the set references a PullPolicy. Printed per size: the time until the set reads every
child Ready (``settled s``), API writes per child (every write on cachedimages, cachedimagesets and
pullpolicies, whose floor is 1 create + 1 first child status = 2.00), the set's status writes and
the PullPolicy's status writes during the burst, and how often the set and PullPolicy controllers
reconciled. Run: ``python benchmarks/imageset_bench.py`` (needs ``task tools``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client import REGISTRY  # noqa: E402

from devtools.localcluster import LocalCluster  # noqa: E402
from drop_operator.api.cachedimageset import CACHED_IMAGE_SET_LABEL  # noqa: E402
from drop_operator.api.pulltemplate import PullTemplate  # noqa: E402
from drop_operator.controllers import cachedimage, pullpolicy  # noqa: E402
from drop_operator.controllers.cachedimageset import setup  # noqa: E402
from drop_operator.controllers.cachedimageset.desired import image_key  # noqa: E402
from drop_operator.controllers.cachedimageset.naming import child_name  # noqa: E402
from drop_operator.controllers.cachedimageset.plan import child_body  # noqa: E402
from drop_operator.controllers.cachedimageset.reconciler import WRITE_CONCURRENCY  # noqa: E402
from drop_operator.controllers.kinds import (  # noqa: E402
    CACHED_IMAGE_SETS,
    CACHED_IMAGES,
    DISCOVERY_POLICIES,
    PULL_POLICIES,
)
from drop_operator.controllers.settings import OperatorSettings  # noqa: E402
from drop_operator.runtime import KubeClient, Manager  # noqa: E402
from drop_operator.runtime.informer import Informer  # noqa: E402
from drop_operator.runtime.logging import configure_logging  # noqa: E402

CRD_DIR = ROOT / "manifests" / "crds"
SIZES = (100, 1000)


def writes(cluster: LocalCluster) -> float:
    """Write requests the API server has served on cachedimages and cachedimagesets so far."""
    return sum(
        value
        for labels, value in cluster.apiserver_requests()
        if labels.get("group") == "drop.corewire.io"
        and labels.get("verb") in {"POST", "PUT", "PATCH", "DELETE"}
        and labels.get("resource") in {"cachedimages", "cachedimagesets"}
    )


WriteKey = tuple[str, str, str]


def writes_by_kind(cluster: LocalCluster) -> dict[WriteKey, float]:
    """Write requests on drop's resources so far, by (verb, resource, subresource)."""
    out: dict[WriteKey, float] = {}
    for labels, value in cluster.apiserver_requests():
        if labels.get("group") != "drop.corewire.io" or labels.get("verb") not in {
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
        }:
            continue
        key = (labels["verb"], labels.get("resource", ""), labels.get("subresource", ""))
        out[key] = out.get(key, 0.0) + value
    return out


def reconciles(controller: str) -> float:
    """Reconciles of ``controller`` so far in this process, whatever their result."""
    return sum(
        REGISTRY.get_sample_value(
            "controller_runtime_reconcile_total", {"controller": controller, "result": result}
        )
        or 0.0
        for result in ("success", "error", "requeue_after")
    )


def references(tag: str, n: int) -> list[str]:
    return [f"registry.example.com/bench/{tag}/app-{i}:v{i}" for i in range(n)]


async def floor(client: KubeClient, owner: dict[str, Any], refs: list[str]) -> float:
    """Create the same objects with a bare client, ``WRITE_CONCURRENCY`` at a time."""
    template = PullTemplate()
    uid = owner["metadata"]["uid"]
    bodies = []
    for ref in refs:
        key = image_key(ref)
        bodies.append(
            child_body(owner, key, child_name(uid, key.reference, key.repository, key.version), template)
        )
    semaphore = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def create(body: dict[str, Any]) -> None:
        async with semaphore:
            await client.create(CACHED_IMAGES, body)

    start = time.perf_counter()
    await asyncio.gather(*(create(b) for b in bodies))
    return time.perf_counter() - start


async def until(cond: Any, within: float, interval: float = 0.005) -> None:
    deadline = time.perf_counter() + within
    while not cond():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await asyncio.sleep(interval)


def _status(generation: int, refs: list[str]) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "lastSyncTime": "2026-01-01T00:00:00Z",
        "imageCount": len(refs),
        "discoveredImages": [{"image": r, "score": float(len(refs) - i)} for i, r in enumerate(refs)],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Synced",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }


async def floor_size(client: KubeClient, other: KubeClient, n: int) -> float:
    """The bare client's time for ``n`` children, with no operator running in this process.

    The owner is deleted afterwards (there is no garbage collector in this cluster): its children
    then belong to no set, so the reconciler started later ignores them.
    """
    owner = await client.create(
        CACHED_IMAGE_SETS,
        {
            "apiVersion": CACHED_IMAGE_SETS.api_version,
            "kind": "CachedImageSet",
            "metadata": {"name": f"floor-{n}"},
        },
    )
    elapsed = await floor(other, owner, references(f"floor{n}", n))
    await client.delete(CACHED_IMAGE_SETS, f"floor-{n}")
    return elapsed


async def create_policy_and_set(
    client: KubeClient, policy: str, name: str, *, pull_policy: str | None = None
) -> None:
    """A DiscoveryPolicy whose source never answers (the benchmark writes its ranking) and the
    CachedImageSet that follows it, under PullPolicy ``pull_policy`` when given."""
    await client.create(
        DISCOVERY_POLICIES,
        {
            "apiVersion": DISCOVERY_POLICIES.api_version,
            "kind": "DiscoveryPolicy",
            "metadata": {"name": policy},
            "spec": {
                "interval": "1h",
                "topX": 1000,
                "sources": [
                    {"type": "prometheus", "prometheus": {"endpoint": "http://127.0.0.1:9", "query": "up"}}
                ],
            },
        },
    )
    spec: dict[str, Any] = {"discoveryPolicyRef": {"name": policy}}
    if pull_policy is not None:
        spec["pullPolicyRef"] = {"name": pull_policy}
    await client.create(
        CACHED_IMAGE_SETS,
        {
            "apiVersion": CACHED_IMAGE_SETS.api_version,
            "kind": "CachedImageSet",
            "metadata": {"name": name},
            "spec": spec,
        },
    )


async def one_size(
    cluster: LocalCluster,
    manager: Manager,
    client: KubeClient,
    other: KubeClient,
    n: int,
    *,
    floor_time: float,
) -> tuple[int, float, float, float]:
    policy, name = f"bench-policy-{n}", f"bench-set-{n}"
    await create_policy_and_set(client, policy, name)
    watch = Informer(other, CACHED_IMAGES, label_selector=f"{CACHED_IMAGE_SET_LABEL}={name}")
    watch.start()
    await watch.wait_synced(30)
    sets = manager.informer(CACHED_IMAGE_SETS)

    def status() -> dict[str, Any]:
        found: dict[str, Any] = (sets.get(name) or {}).get("status") or {}
        return found

    await until(lambda: status().get("observedGeneration") is not None, 30)
    await asyncio.sleep(1.0)
    before = writes(cluster)
    current = await client.get(DISCOVERY_POLICIES, policy)
    start = time.perf_counter()
    await client.patch_status(
        DISCOVERY_POLICIES,
        policy,
        {"status": _status(current["metadata"]["generation"], references(f"op{n}", n))},
    )
    await until(lambda: len(watch.list()) >= n, 600)
    operator_time = time.perf_counter() - start
    await until(lambda: status().get("managed") == n and status().get("desired") == n, 60)
    await asyncio.sleep(2.0)  # stragglers of the event burst would show up as writes here
    per_image = (writes(cluster) - before) / n
    await watch.stop()
    return n, floor_time, operator_time, per_image


@dataclass
class FullResult:
    n: int
    settled: float
    """Seconds from the policy's status write until the set reads n/n Ready."""
    writes: dict[WriteKey, float]
    set_reconciles: float
    policy_reconciles: float

    def count(self, verb: str, resource: str, subresource: str = "") -> float:
        return self.writes.get((verb, resource, subresource), 0.0)

    @property
    def per_child(self) -> float:
        return sum(self.writes.values()) / self.n


def setup_full(manager: Manager, settings: OperatorSettings) -> None:
    """The controllers a set's children go through (discovery is stood in for by the benchmark)."""
    setup(manager, settings)
    cachedimage.setup(manager, settings)
    pullpolicy.setup(manager, settings)


async def full_size(cluster: LocalCluster, manager: Manager, client: KubeClient, n: int) -> FullResult:
    policy, name, pull = f"full-policy-{n}", f"full-set-{n}", f"full-pull-{n}"
    await client.create(
        PULL_POLICIES,
        {"apiVersion": PULL_POLICIES.api_version, "kind": "PullPolicy", "metadata": {"name": pull}},
    )
    await create_policy_and_set(client, policy, name, pull_policy=pull)
    sets = manager.informer(CACHED_IMAGE_SETS)
    pulls = manager.informer(PULL_POLICIES)

    def status() -> dict[str, Any]:
        found: dict[str, Any] = (sets.get(name) or {}).get("status") or {}
        return found

    def using() -> Any:
        return ((pulls.get(pull) or {}).get("status") or {}).get("imagesUsing")

    await until(lambda: status().get("observedGeneration") is not None and using() == 0, 30)
    await asyncio.sleep(1.0)
    before = writes_by_kind(cluster)
    runs_before = reconciles("cachedimageset"), reconciles("pullpolicy-status")
    current = await client.get(DISCOVERY_POLICIES, policy)
    start = time.perf_counter()
    await client.patch_status(
        DISCOVERY_POLICIES,
        policy,
        {"status": _status(current["metadata"]["generation"], references(f"full{n}", n))},
    )
    await until(lambda: status().get("ready") == n and status().get("managed") == n, 600, 0.01)
    settled = time.perf_counter() - start
    await until(lambda: using() == n, 60)
    await asyncio.sleep(3.0)  # stragglers of the event burst would show up as writes here
    after = writes_by_kind(cluster)
    delta = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    return FullResult(
        n,
        settled,
        delta,
        reconciles("cachedimageset") - runs_before[0],
        reconciles("pullpolicy-status") - runs_before[1],
    )


async def run_full(cluster: LocalCluster) -> list[FullResult]:
    client = await KubeClient.connect(str(cluster.kubeconfig))
    manager = Manager(client, namespace="default", leader_election=False, metrics_addr="0", probe_addr="0")
    settings = OperatorSettings(namespace="default", workers=2, platform_lookup=False, warm_up=False)
    setup_full(manager, settings)
    task = asyncio.get_running_loop().create_task(manager.run())
    try:
        await until(lambda: manager.started_controllers, 60)
        return [await full_size(cluster, manager, client, n) for n in SIZES]
    finally:
        manager.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)
        await client.close()


async def run(cluster: LocalCluster) -> list[tuple[int, float, float, float]]:
    client = await KubeClient.connect(str(cluster.kubeconfig))
    other = await KubeClient.connect(str(cluster.kubeconfig))
    # Floors first, while no reconciler shares this event loop or reacts to the created objects.
    floors = {n: await floor_size(client, other, n) for n in SIZES}
    manager = Manager(client, namespace="default", leader_election=False, metrics_addr="0", probe_addr="0")
    setup(manager, OperatorSettings(namespace="default", workers=2))
    task = asyncio.get_running_loop().create_task(manager.run())
    try:
        await until(lambda: manager.started_controllers, 60)
        return [await one_size(cluster, manager, client, other, n, floor_time=floors[n]) for n in SIZES]
    finally:
        manager.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)
        await client.close()
        await other.close()


def main() -> int:
    configure_logging(level="warning")
    with tempfile.TemporaryDirectory(prefix="imageset-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), with_controller_manager=False)
        with cluster:
            cluster.kubectl("apply", "--server-side", "-f", str(CRD_DIR))
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRD_DIR))
            results = asyncio.run(run(cluster))
    # A cluster of its own: the node-caching controller would otherwise start by giving the
    # thousands of children above their first status, and their sets would count them Ready.
    with tempfile.TemporaryDirectory(prefix="imageset-bench-full-") as tmp:
        cluster = LocalCluster(Path(tmp), with_controller_manager=False)
        with cluster:
            cluster.kubectl("apply", "--server-side", "-f", str(CRD_DIR))
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRD_DIR))
            full = asyncio.run(run_full(cluster))
    print(f"{'images':>7} {'floor s':>9} {'operator s':>11} {'ratio':>6} {'writes/image':>13}")
    for n, floor_time, operator_time, per_image in results:
        print(
            f"{n:>7} {floor_time:>9.3f} {operator_time:>11.3f} {operator_time / floor_time:>6.2f} {per_image:>13.3f}"
        )
    print()
    print("full operator (image-set + node-caching + PullPolicy controllers, no nodes):")
    print(
        f"{'images':>7} {'settled s':>10} {'writes/child':>13} {'set status':>11} {'policy status':>14}"
        f" {'child status':>13} {'child other':>12} {'set runs':>9} {'policy runs':>12}"
    )
    for r in full:
        child_other = (
            sum(v for (verb, res, sub), v in r.writes.items() if res == "cachedimages")
            - r.count("POST", "cachedimages")
            - r.count("PATCH", "cachedimages", "status")
        )
        print(
            f"{r.n:>7} {r.settled:>10.3f} {r.per_child:>13.3f} {r.count('PATCH', 'cachedimagesets', 'status'):>11.0f}"
            f" {r.count('PATCH', 'pullpolicies', 'status'):>14.0f}"
            f" {r.count('PATCH', 'cachedimages', 'status'):>13.0f} {child_other:>12.0f}"
            f" {r.set_reconciles:>9.0f} {r.policy_reconciles:>12.0f}"
        )
    for r in full:
        print(
            f"  {r.n} images, every write: "
            + ", ".join(f"{'/'.join(filter(None, k))}={v:.0f}" for k, v in sorted(r.writes.items()))
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
