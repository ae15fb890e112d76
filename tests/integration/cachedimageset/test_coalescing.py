"""A set's status is written when it settles, not once per child event.

The children's readiness is written here the way the node-caching reconciler writes it. Every write
of the set's status is counted at the API server (its audit log, per object), so the counts are the
set's own on a cluster other tests share. Bounds are stated in bursts: a burst costs one write once
it pauses, plus one every ``STATUS_MAX_DELAY`` seconds while it goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable
from typing import Any

from prometheus_client import REGISTRY

from devtools.localcluster import LocalCluster
from drop_operator.controllers.common import STATUS_MAX_DELAY, STATUS_QUIET
from drop_operator.controllers.kinds import CACHED_IMAGE_SETS, CACHED_IMAGES, DISCOVERY_POLICIES
from drop_operator.runtime import KubeClient
from tests.infra.controlplane import unique_name
from tests.infra.operator import condition, running_fixture
from tests.infra.waiting import eventually
from tests.integration.cachedimageset.conftest import (
    Operator,
    children_of,
    policy_body,
    publish,
    set_body,
    status_of,
)

Obj = dict[str, Any]


#: The set reconciler without periodic resyncs: every pass here is one a child event asked for.
quiet_operator = running_fixture("quiet_operator", lambda kube, crds: Operator(kube, resync_period=None))


def images(prefix: str, n: int) -> list[str]:
    return [f"registry.example.com/{prefix}/app-{i}:v{i}" for i in range(n)]


def ready_status(ready: bool) -> Obj:
    return {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "Cached" if ready else "Waiting",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        }
    }


async def set_ready(kube: KubeClient, child: str, ready: bool = True) -> None:
    await kube.patch_status(CACHED_IMAGES, child, ready_status(ready))


async def bounded(jobs: Iterable[Awaitable[None]], limit: int = 10) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Awaitable[None]) -> None:
        async with semaphore:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


def status_writes(cluster: LocalCluster, name: str) -> int:
    return len(cluster.audited_writes("cachedimagesets", name, "status"))


def reconciles() -> float:
    return sum(
        REGISTRY.get_sample_value(
            "controller_runtime_reconcile_total", {"controller": "cachedimageset", "result": r}
        )
        or 0.0
        for r in ("success", "error", "requeue_after")
    )


async def make_set(kube: KubeClient, n: int) -> tuple[str, str, list[str]]:
    """A set of ``n`` discovered images whose children all exist (none Ready); returns the names."""
    policy, name = unique_name("coalesce"), unique_name("set")
    await kube.create(DISCOVERY_POLICIES, policy_body(policy))
    await publish(kube, policy, images(name, n))
    await kube.create(CACHED_IMAGE_SETS, set_body(name, policy=policy))

    async def created() -> bool:
        status = await status_of(kube, name)
        return status.get("managed") == n and status.get("desired") == n

    await eventually(created, 60, f"{n} children created and counted")
    children = [c["metadata"]["name"] for c in await children_of(kube, name)]
    assert len(children) == n
    return policy, name, children


async def ready_count(kube: KubeClient, name: str, n: int) -> bool:
    status = await status_of(kube, name)
    return status.get("ready") == n and condition(status, "Ready").get("reason") == (
        "ImagesCached" if status.get("desired") == n else "ImagesCaching"
    )


async def cleanup(kube: KubeClient, policy: str, name: str) -> None:
    await kube.delete(CACHED_IMAGE_SETS, name)
    await kube.delete(DISCOVERY_POLICIES, policy)

    async def collected() -> bool:
        return not await children_of(kube, name)

    # Let the garbage collector finish here, so its deletes don't land in another test's window.
    await eventually(collected, 120, "children collected")


async def test_children_turning_ready_in_a_burst_cost_a_few_status_writes(
    kube: KubeClient, quiet_operator: Operator, control_plane: LocalCluster
) -> None:
    n = 200
    policy, name, children = await make_set(kube, n)
    created_writes = status_writes(control_plane, name)
    assert 1 <= created_writes <= 3, f"creating {n} children wrote the set's status {created_writes} times"

    start = time.monotonic()
    await bounded(set_ready(kube, child) for child in children)
    burst = time.monotonic() - start
    await eventually(lambda: ready_count(kube, name, n), 30, f"{n}/{n} Ready")
    status = await status_of(kube, name)
    assert condition(status, "Ready")["status"] == "True"
    assert (status["desired"], status["managed"]) == (n, n)

    writes = status_writes(control_plane, name) - created_writes
    bound = 2 + int(burst / STATUS_MAX_DELAY)
    assert 1 <= writes <= bound, (
        f"{n} children turning Ready in {burst:.1f}s wrote the set's status {writes} times "
        f"(at most {bound}: once per {STATUS_MAX_DELAY}s of burst, and once when it settled)"
    )
    await cleanup(kube, policy, name)


async def test_a_status_equal_to_the_last_one_written_is_not_written(
    kube: KubeClient, quiet_operator: Operator, control_plane: LocalCluster
) -> None:
    policy, name, children = await make_set(kube, 5)
    await bounded(set_ready(kube, child) for child in children)
    await eventually(lambda: ready_count(kube, name, 5), 30, "5/5 Ready")
    settled = await status_of(kube, name)
    writes = status_writes(control_plane, name)

    # A child goes not Ready and back within the quiet period: the pass after it counts 5/5 again.
    runs = reconciles()
    await set_ready(kube, children[0], False)
    await set_ready(kube, children[0], True)
    await eventually(lambda: reconciles() > runs, 10 * STATUS_QUIET, "the set reconciled the flip")
    assert status_writes(control_plane, name) == writes, "the same status was written again"
    assert await status_of(kube, name) == settled, "and the stored status, transition times included, held"

    # A real change is written, once, and going back is written once more, Ready keeping its
    # transition time only while its status holds.
    await set_ready(kube, children[1], False)
    await eventually(lambda: ready_count(kube, name, 4), 10 * STATUS_QUIET, "4/5 Ready")
    assert status_writes(control_plane, name) == writes + 1
    await set_ready(kube, children[1], True)
    await eventually(lambda: ready_count(kube, name, 5), 10 * STATUS_QUIET, "5/5 Ready again")
    assert status_writes(control_plane, name) == writes + 2
    await cleanup(kube, policy, name)


async def test_progress_shows_while_a_burst_outlasts_the_bound(
    kube: KubeClient, quiet_operator: Operator, control_plane: LocalCluster
) -> None:
    """Children turn Ready one by one, each sooner than the quiet period after the last, for
    longer than ``STATUS_MAX_DELAY``: the set shows counts in between, not only at the end."""
    n = 40
    interval = STATUS_QUIET / 4
    assert n * interval > STATUS_MAX_DELAY * 1.5, "the burst must outlast the bound"
    policy, name, children = await make_set(kube, n)
    before = status_writes(control_plane, name)

    seen: list[int] = []
    start = time.monotonic()
    for child in children:
        await set_ready(kube, child)
        seen.append(int((await status_of(kube, name)).get("ready") or 0))
        await asyncio.sleep(interval)  # pacing the burst (each event sooner than the quiet period)
    burst = time.monotonic() - start
    assert any(0 < ready < n for ready in seen), f"no progress shown during a {burst:.1f}s burst: {seen}"
    await eventually(lambda: ready_count(kube, name, n), 30, f"{n}/{n} Ready")

    writes = status_writes(control_plane, name) - before
    bound = 2 + int(burst / STATUS_MAX_DELAY)
    assert 2 <= writes <= bound, f"{writes} status writes for a {burst:.1f}s burst (at most {bound})"
    await cleanup(kube, policy, name)


async def test_a_settled_set_still_mends_a_child_deleted_or_edited_by_hand(
    kube: KubeClient, quiet_operator: Operator, control_plane: LocalCluster
) -> None:
    """Readiness flips only recount; anything else a child goes through still gets the full diff."""
    policy, name, children = await make_set(kube, 3)
    await bounded(set_ready(kube, child) for child in children)
    await eventually(lambda: ready_count(kube, name, 3), 30, "3/3 Ready")

    await kube.delete(CACHED_IMAGES, children[0])

    async def recreated() -> bool:
        names = {c["metadata"]["name"] for c in await children_of(kube, name)}
        return names == set(children)

    await eventually(recreated, 10 * STATUS_QUIET, "the deleted child created again")
    await eventually(lambda: ready_count(kube, name, 2), 10 * STATUS_QUIET, "2/3 Ready: the new one is not")

    await kube.patch(CACHED_IMAGES, children[1], {"spec": {"nodeSelector": {"edited": "by-hand"}}})

    async def mended() -> bool:
        return not (await kube.get(CACHED_IMAGES, children[1]))["spec"].get("nodeSelector")

    await eventually(mended, 10 * STATUS_QUIET, "the hand edit undone")
    await cleanup(kube, policy, name)
