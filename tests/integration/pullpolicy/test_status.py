"""``PullPolicy.status.imagesUsing`` is written when the count settles, not once per image event.

Every write of a policy's status is counted at the API server (its audit log, per object).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable
from typing import Any

from prometheus_client import REGISTRY

from devtools.localcluster import LocalCluster
from drop_operator.controllers.common import STATUS_MAX_DELAY, STATUS_QUIET
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES
from drop_operator.runtime import KubeClient
from tests.infra.controlplane import unique_name
from tests.infra.waiting import eventually
from tests.integration.pullpolicy.conftest import Operator

Obj = dict[str, Any]


async def create_policy(kube: KubeClient, name: str) -> None:
    await kube.create(
        PULL_POLICIES,
        {"apiVersion": PULL_POLICIES.api_version, "kind": "PullPolicy", "metadata": {"name": name}},
    )


def image_body(name: str, policy: str | None) -> Obj:
    spec: Obj = {"image": f"registry.example.com/usage/{name}", "tag": "v1"}
    if policy is not None:
        spec["pullPolicyRef"] = {"name": policy}
    return {
        "apiVersion": CACHED_IMAGES.api_version,
        "kind": "CachedImage",
        "metadata": {"name": name},
        "spec": spec,
    }


async def bounded(jobs: Iterable[Awaitable[Any]], limit: int = 10) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Awaitable[Any]) -> None:
        async with semaphore:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


async def status(kube: KubeClient, policy: str) -> Obj:
    found: Obj = (await kube.get(PULL_POLICIES, policy)).get("status") or {}
    return found


def using(kube: KubeClient, policy: str, count: int) -> Any:
    async def check() -> bool:
        return (await status(kube, policy)).get("imagesUsing") == count

    return check


def status_writes(cluster: LocalCluster, policy: str) -> int:
    return len(cluster.audited_writes("pullpolicies", policy, "status"))


def reconciles() -> float:
    return sum(
        REGISTRY.get_sample_value(
            "controller_runtime_reconcile_total", {"controller": "pullpolicy-status", "result": r}
        )
        or 0.0
        for r in ("success", "error", "requeue_after")
    )


async def test_images_created_in_a_burst_cost_a_few_status_writes(
    kube: KubeClient, operator: Operator, control_plane: LocalCluster
) -> None:
    policy = unique_name("burst")
    await create_policy(kube, policy)
    await eventually(using(kube, policy, 0), 20, "a new policy counts 0 images")
    assert (await status(kube, policy))["observedGeneration"] == 1
    before = status_writes(control_plane, policy)

    n = 300
    names = [f"{policy}-{i}" for i in range(n)]
    start = time.monotonic()
    await bounded(kube.create(CACHED_IMAGES, image_body(name, policy)) for name in names)
    burst = time.monotonic() - start
    await eventually(using(kube, policy, n), 30, f"{n} images counted")

    writes = status_writes(control_plane, policy) - before
    bound = 2 + int(burst / STATUS_MAX_DELAY)
    assert 1 <= writes <= bound, (
        f"{n} images created in {burst:.1f}s wrote the policy's status {writes} times (at most {bound})"
    )
    await bounded(kube.delete(CACHED_IMAGES, name) for name in names)
    await eventually(using(kube, policy, 0), 30, "deleted images no longer counted")
    await kube.delete(PULL_POLICIES, policy)


async def test_image_status_writes_and_a_count_back_where_it_was_write_nothing(
    kube: KubeClient, operator: Operator, control_plane: LocalCluster
) -> None:
    policy = unique_name("steady")
    await create_policy(kube, policy)
    names = [f"{policy}-{i}" for i in range(4)]
    for name in names[:3]:
        await kube.create(CACHED_IMAGES, image_body(name, policy))
    await eventually(using(kube, policy, 3), 20, "3 images counted")
    writes = status_writes(control_plane, policy)

    # The node-caching reconciler writing the images' status moves nothing the count reads: only
    # the image created after those writes wakes the policy, once.
    runs = reconciles()
    for i in range(20):
        await kube.patch_status(CACHED_IMAGES, names[i % 3], {"status": {"cachedNodes": i}})
    await kube.create(CACHED_IMAGES, image_body(names[3], policy))
    await eventually(using(kube, policy, 4), 10 * STATUS_QUIET, "the fourth image counted")
    assert reconciles() - runs == 1, "image status writes woke the policy"
    assert status_writes(control_plane, policy) == writes + 1

    # An image deleted and created again within the quiet period: the pass after it counts 4 again.
    runs = reconciles()
    await kube.delete(CACHED_IMAGES, names[0])
    await kube.create(CACHED_IMAGES, image_body(names[0], policy))
    await eventually(lambda: reconciles() > runs, 10 * STATUS_QUIET, "the policy was reconciled")
    assert status_writes(control_plane, policy) == writes + 1, "a status equal to the last was written"
    assert (await status(kube, policy))["imagesUsing"] == 4

    # Moving an image to another policy changes both counts.
    other = unique_name("other")
    await create_policy(kube, other)
    await kube.patch(CACHED_IMAGES, names[1], {"spec": {"pullPolicyRef": {"name": other}}})
    await eventually(using(kube, policy, 3), 10 * STATUS_QUIET, "moved away from the first policy")
    await eventually(using(kube, other, 1), 10 * STATUS_QUIET, "counted by the other")
    assert status_writes(control_plane, policy) == writes + 2
    await bounded(kube.delete(CACHED_IMAGES, name) for name in names)
    for name in (policy, other):
        await kube.delete(PULL_POLICIES, name)


async def test_a_spec_change_shows_in_observed_generation(kube: KubeClient, operator: Operator) -> None:
    policy = unique_name("generation")
    await create_policy(kube, policy)
    await eventually(using(kube, policy, 0), 20, "counted")
    await kube.patch(PULL_POLICIES, policy, {"spec": {"maxConcurrentNodes": 3}})

    async def observed() -> bool:
        return (await status(kube, policy)).get("observedGeneration") == 2

    await eventually(observed, 20, "observedGeneration 2")
    await kube.delete(PULL_POLICIES, policy)
