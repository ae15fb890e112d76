"""Pulls that really land: CachedImages on two real nodes, checked in containerd's store and in the
kubelet's ``node.status.images``."""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

from devtools import sampleimages
from devtools.realnodes import RealNodes
from drop_operator.controllers.cachedimage.pullpods import ANNOTATION_IMAGE
from drop_operator.controllers.kinds import CACHED_IMAGES
from drop_operator.runtime import Resource
from tests.infra.podwatch import PodWatch
from tests.infra.waiting import eventually
from tests.integration.realnodes.conftest import PRIVATE_USER, RealEnv, RealOperator, unique_repo

CORE_EVENTS = Resource("", "v1", "Event", "events", namespaced=True)
FAST = {"minDelayBetweenPulls": "0", "failureBackoff": {"initial": "2s", "max": "8s"}}


async def cached_on_all(env: RealEnv, name: str, within: float = 120) -> dict[str, Any]:
    """Wait until the CachedImage reports every real node cached; return its status."""

    async def done() -> dict[str, Any] | None:
        status = await env.status(name)
        target = len(env.node_names)
        return status if status.get("targetNodes") == target == status.get("cachedNodes") else None

    result: dict[str, Any] = await eventually(done, within, f"{name} cached on every real node")
    return result


async def test_scratch_image_lands_in_every_node_store(
    real_env: RealEnv, real_operator: RealOperator, real_pods: PodWatch, nodes: RealNodes
) -> None:
    repo = unique_repo("samples/scratch")
    digest = real_env.registries.public.push(repo, ["v1"], sampleimages.scratch())
    reference = f"{real_env.registries.public.host}/{repo}:v1"
    name = repo.replace("/", "-")
    await real_env.image(
        name, f"{real_env.registries.public.host}/{repo}", "v1", policy=await real_env.policy(name, **FAST)
    )

    status = await cached_on_all(real_env, name)

    # The truth from the nodes: containerd's store and what the kubelet reports.
    for node in nodes.nodes:
        assert node.images().get(reference) == digest, f"{reference} not in {node.name}'s store"
        reported = await eventually(
            functools.partial(_reported_with, real_env, node, reference),
            60,
            f"{node.name} reports {reference}",
        )
        assert reference in reported
    assert status["resolvedDigest"] == digest
    # A scratch image has no shell: the pull pods ran the helper's no-op and succeeded.
    assert {pod["spec"]["nodeName"] for pod in real_pods.pods.values()} <= set(real_env.node_names)


async def _reported_with(env: RealEnv, node: Any, reference: str) -> set[str] | None:
    reported = await env.reported_images(node)
    return reported if reference in reported else None


async def test_helper_image_is_pulled_once_per_node(
    real_env: RealEnv, real_operator: RealOperator, real_pods: PodWatch, nodes: RealNodes
) -> None:
    policy = await real_env.policy(unique_repo("helper-once"), **FAST)
    names = []
    for i in range(3):
        repo = unique_repo(f"samples/helper-{i}")
        real_env.registries.public.push(repo, ["v1"], sampleimages.unique(repo))
        name = repo.replace("/", "-")
        await real_env.image(name, f"{real_env.registries.public.host}/{repo}", "v1", policy=policy)
        names.append(name)
    for name in names:
        await cached_on_all(real_env, name)

    events, _ = await real_env.kube.list(CORE_EVENTS, namespace=real_env.namespace)
    helper = nodes.helper_image
    pulling: Counter[str] = Counter()
    present: Counter[str] = Counter()
    for event in events:
        host = (event.get("source") or {}).get("host", "")
        message = event.get("message", "")
        if helper not in message:
            continue
        if event.get("reason") == "Pulling":
            pulling[host] += event.get("count", 1)
        elif "already present" in message:
            present[host] += event.get("count", 1)
    for node in nodes.nodes:
        assert helper in node.images(), f"the helper image is not in {node.name}'s store"
        assert pulling[node.name] <= 1, (
            f"the helper image was pulled {pulling[node.name]} times on {node.name}"
        )
        # Three pull pods ran on the node; at most one of them pulled the helper.
        assert present[node.name] >= 2, (
            f"only {present[node.name]} pull pods reused the helper on {node.name}"
        )


async def test_multi_platform_index_resolves_to_the_index_digest(
    real_env: RealEnv, real_operator: RealOperator, nodes: RealNodes
) -> None:
    repo = unique_repo("samples/multi")
    index = sampleimages.multi_platform(repo)
    digest = real_env.registries.public.push(repo, ["v1"], index)
    name = repo.replace("/", "-")
    await real_env.image(
        name, f"{real_env.registries.public.host}/{repo}", "v1", policy=await real_env.policy(name, **FAST)
    )

    status = await cached_on_all(real_env, name)

    assert status["resolvedDigest"] == index.digest == digest
    reference = f"{real_env.registries.public.host}/{repo}:v1"
    for node in nodes.nodes:
        assert node.images().get(reference) == digest
        # The node unpacked its own platform: the amd64 image's config is in the store.
        amd64 = next(image for image in index.images if image.platform["architecture"] == "amd64")
        content = node.ctr("content", "ls", "-q").stdout.split()
        assert amd64.config.digest in content


async def test_private_image_needs_its_pull_secret(
    real_env: RealEnv, real_operator: RealOperator, nodes: RealNodes
) -> None:
    private = real_env.registries.private
    repo = unique_repo("private/app")
    private.push(repo, ["v1"], sampleimages.unique(repo))
    name = repo.replace("/", "-")
    await real_env.image(name, f"{private.host}/{repo}", "v1", policy=await real_env.policy(name, **FAST))

    async def unauthorized_and_backing_off() -> bool:
        status = await real_env.status(name)
        failures = status.get("recentFailures") or []
        per_node = Counter(f["node"] for f in failures if f.get("reason") == "Unauthorized")
        return set(per_node) == set(real_env.node_names) and status.get("failedNodes") == 2

    await eventually(unauthorized_and_backing_off, 90, "Unauthorized on every real node")
    # Backoff is per node: each node's failure names its own retry count and time.
    status = await real_env.status(name)
    assert status.get("cachedNodes", 0) == 0
    reference = f"{private.host}/{repo}:v1"
    for node in nodes.nodes:
        assert reference not in node.images()

    secret = await real_env.pull_secret("private-creds", private, PRIVATE_USER)
    await real_env.kube.patch(
        CACHED_IMAGES,
        name,
        {"spec": {"imagePullSecrets": [{"name": secret}]}},
    )
    await cached_on_all(real_env, name)
    for node in nodes.nodes:
        assert reference in node.images()


async def test_an_image_without_the_nodes_platform_is_not_pulled_there(
    real_env: RealEnv, real_operator: RealOperator, real_pods: PodWatch, nodes: RealNodes
) -> None:
    """The real nodes are linux/amd64: an arm64-only index never gets a pull pod on them, and they
    are counted apart, not as failures; the multi-platform index beside it is cached."""
    public = real_env.registries.public
    arm_repo, multi_repo = unique_repo("samples/arm-only"), unique_repo("samples/multi-plat")
    public.push(arm_repo, ["v1"], sampleimages.arm64_only(arm_repo))
    public.push(multi_repo, ["v1"], sampleimages.multi_platform(multi_repo))
    policy = await real_env.policy(unique_repo("platforms"), **FAST)
    arm = await real_env.image(unique_repo("arm-only"), f"{public.host}/{arm_repo}", "v1", policy=policy)
    multi = await real_env.image(unique_repo("multi"), f"{public.host}/{multi_repo}", "v1", policy=policy)

    await cached_on_all(real_env, multi)

    async def counted_apart() -> dict[str, Any] | None:
        status = await real_env.status(arm)
        return status if status.get("incompatibleNodes") == len(nodes.nodes) else None

    status = await eventually(counted_apart, 60, "the real nodes counted as lacking arm64")
    assert status.get("targetNodes", 0) == 0 and status.get("failedNodes", 0) == 0, status
    assert not [p for p in real_pods.added if p[1]["metadata"]["annotations"].get(ANNOTATION_IMAGE) == arm]
    for node in nodes.nodes:
        assert f"{public.host}/{arm_repo}:v1" not in node.images()
        assert f"{public.host}/{multi_repo}:v1" in node.images()
