"""Failures and changes on real nodes: a missing tag, a re-pushed tag, a kubelet that stops in the
middle of a rollout, and pacing measured on real pulls."""

from __future__ import annotations

import itertools

from devtools import sampleimages
from devtools.realnodes import RealNodes
from drop_operator.controllers.cachedimage.pullpods import pod_node
from drop_operator.controllers.kinds import CACHED_IMAGES
from tests.infra.podwatch import PodWatch
from tests.infra.waiting import eventually
from tests.integration.realnodes.conftest import RealEnv, RealOperator, unique_repo
from tests.integration.realnodes.test_real_pulls import FAST, cached_on_all


async def test_missing_tag_fails_per_node_and_stalls_nothing_else(
    real_env: RealEnv, real_operator: RealOperator, real_pods: PodWatch, nodes: RealNodes
) -> None:
    public = real_env.registries.public
    repo = unique_repo("samples/missing")
    public.push(repo, ["v1"], sampleimages.unique(repo))
    policy = await real_env.policy(unique_repo("missing"), maxPullsPerNode=1, **FAST)
    missing = await real_env.image(unique_repo("missing"), f"{public.host}/{repo}", "v404", policy=policy)
    present = await real_env.image(unique_repo("present"), f"{public.host}/{repo}", "v1", policy=policy)

    # The image that exists is cached on both nodes while the missing one keeps failing.
    await cached_on_all(real_env, present)

    def attempts() -> dict[str, list[float]]:
        return {node: times for (image, node), times in real_pods.creations().items() if image == missing}

    await eventually(
        lambda: len(attempts()) == len(nodes.nodes) and all(len(t) >= 3 for t in attempts().values()),
        120,
        "three attempts at the missing tag on every node",
    )
    # Per-node backoff: attempts on one node are never closer than the initial backoff less its
    # jitter (2 s - 20 %); a slow machine only stretches the gaps.
    for node_name, times in attempts().items():
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert min(gaps) >= 1.6, f"{node_name} retried after {min(gaps):.2f}s: {gaps}"
    status = await real_env.status(missing)
    # A node is failing, or pulling again after its backoff; never cached.
    assert status.get("failedNodes", 0) + status.get("pullingNodes", 0) == len(nodes.nodes)
    assert status.get("cachedNodes", 0) == 0
    assert {f["node"] for f in status["recentFailures"]} == {n.name for n in nodes.nodes}
    # The kubelet's own reason and message, not a guess of ours.
    assert {f["reason"] for f in status["recentFailures"]} <= {"ErrImagePull", "ImagePullBackOff"}
    assert all("not found" in f["message"] for f in status["recentFailures"]), status["recentFailures"]
    for node in nodes.nodes:
        assert f"{public.host}/{repo}:v404" not in node.images()


async def test_always_with_repull_interval_picks_up_new_content(
    real_env: RealEnv, real_operator: RealOperator, nodes: RealNodes
) -> None:
    public = real_env.registries.public
    repo = unique_repo("samples/moving")
    first = public.push(repo, ["stable"], sampleimages.unique(f"{repo} first"))
    policy = await real_env.policy(unique_repo("repull"), repullInterval="1m", **FAST)
    name = await real_env.image(
        unique_repo("moving"), f"{public.host}/{repo}", "stable", policy=policy, imagePullPolicy="Always"
    )
    reference = f"{public.host}/{repo}:stable"
    status = await cached_on_all(real_env, name)
    assert status["resolvedDigest"] == first
    for node in nodes.nodes:
        assert node.images()[reference] == first

    second = public.push(repo, ["stable"], sampleimages.unique(f"{repo} second"))
    assert second != first

    async def repulled() -> bool:
        status = await real_env.status(name)
        stores = [node.images().get(reference) for node in nodes.nodes]
        return status.get("resolvedDigest") == second and stores == [second] * len(stores)

    # Due after 1m (+ up to 10 % spread per node), then paced; nothing faster would be correct.
    await eventually(repulled, 150, f"{reference} re-pulled to {second} on every node")


async def test_kubelet_stopped_mid_rollout(
    real_env: RealEnv, real_operator: RealOperator, real_pods: PodWatch, nodes: RealNodes
) -> None:
    public = real_env.registries.public
    victim, survivor = nodes.nodes[1], nodes.nodes[0]
    policy = await real_env.policy(
        unique_repo("stop"), pullTimeout="20s", maxPullsPerNode=1, maxConcurrentNodes=2, **FAST
    )
    names = []
    for i in range(3):
        repo = unique_repo(f"samples/large-{i}")
        public.push(repo, ["v1"], sampleimages.large(8, 2, seed=repo))
        names.append(
            await real_env.image(unique_repo(f"large-{i}"), f"{public.host}/{repo}", "v1", policy=policy)
        )

    # Stop the kubelet as soon as a pull pod is bound to its node.
    await eventually(
        lambda: any(pod_node(p) == victim.name for p in real_pods.active()),
        60,
        f"a pull pod on {victim.name}",
    )
    nodes.stop_kubelet(victim)
    try:
        # The other node goes on: every image is cached there while the victim is down.
        async def cached_on_survivor() -> bool:
            statuses = [await real_env.status(n) for n in names]
            return all(s.get("cachedNodes", 0) >= 1 for s in statuses)

        await eventually(cached_on_survivor, 120, f"every image cached on {survivor.name}")
        stored = survivor.images()
        for name in names:
            spec = (await real_env.kube.get(CACHED_IMAGES, name))["spec"]
            assert f"{spec['image']}:{spec['tag']}" in stored
    finally:
        nodes.start_kubelet(victim)

    # Back online: the victim's pulls timed out or resume, and it ends with every image.
    for name in names:
        await cached_on_all(real_env, name, within=240)
    for node in nodes.nodes:
        stored = node.images()
        for name in names:
            spec = (await real_env.kube.get(CACHED_IMAGES, name))["spec"]
            assert f"{spec['image']}:{spec['tag']}" in stored, (node.name, name)
    # Nothing left behind: every pull pod, the victim's stuck one included, is gone.
    await eventually(lambda: not real_pods.pods, 120, "every pull pod deleted")


async def test_pacing_holds_on_real_pulls(
    real_env: RealEnv, real_operator: RealOperator, real_pods: PodWatch, nodes: RealNodes
) -> None:
    public = real_env.registries.public
    limits = {"maxConcurrentPulls": 2, "maxPullsPerNode": 1, "maxConcurrentNodes": 1}
    policy = await real_env.policy(unique_repo("paced"), **limits, **FAST)
    names = []
    for i in range(5):
        repo = unique_repo(f"samples/paced-{i}")
        public.push(repo, ["v1"], sampleimages.large(4, 1, seed=repo))
        names.append(
            await real_env.image(unique_repo(f"paced-{i}"), f"{public.host}/{repo}", "v1", policy=policy)
        )
    for name in names:
        await cached_on_all(real_env, name, within=240)

    # Sampled at the API server for the whole rollout.
    assert max(real_pods.peak_pool.values()) <= limits["maxConcurrentPulls"]
    assert max(real_pods.peak_node.values()) <= limits["maxPullsPerNode"]
    assert max(real_pods.peak_image.values()) <= limits["maxConcurrentNodes"]
    # And the pulls were real: each image is in each node's store.
    for node in nodes.nodes:
        stored = node.images()
        assert sum(1 for ref in stored if "/samples/paced-" in ref and ref.endswith(":v1")) == len(names)


async def test_image_removed_by_the_kubelet_is_pulled_again_without_repull_interval(
    real_env: RealEnv, real_operator: RealOperator, real_pods: PodWatch, nodes: RealNodes
) -> None:
    """Image GC removes a cached image from one node's store; once the kubelet's
    (complete) ``status.images`` no longer lists it, that node stops counting as cached and gets
    exactly one paced re-pull. No ``repullInterval`` is set."""
    public = real_env.registries.public
    repo = unique_repo("samples/gc")
    public.push(repo, ["v1"], sampleimages.unique(repo))
    reference = f"{public.host}/{repo}:v1"
    name = await real_env.image(
        unique_repo("gc"),
        f"{public.host}/{repo}",
        "v1",
        policy=await real_env.policy(unique_repo("gc"), **FAST),
    )
    await cached_on_all(real_env, name)
    victim, other = nodes.nodes[0], nodes.nodes[1:]

    async def reported(present: bool) -> bool:
        return (reference in await real_env.reported_images(victim)) is present

    await eventually(lambda: reported(True), 90, f"{victim.name} reports {reference}")
    victim.remove_image(reference)
    assert reference not in victim.images(), "the image is still in the store"
    await eventually(lambda: reported(False), 90, f"{victim.name} no longer reports {reference}")

    def pulls_on(node: str) -> int:
        return sum(len(t) for (image, n), t in real_pods.creations().items() if image == name and n == node)

    await eventually(lambda: pulls_on(victim.name) == 2, 180, f"a second pull on {victim.name}")
    # The pull pod is seen before the status that counts it as pulling: wait for the store itself.
    await eventually(
        lambda: victim.images().get(reference), 120, f"{reference} back in {victim.name}'s store"
    )
    await cached_on_all(real_env, name)
    await eventually(lambda: reported(True), 90, f"{victim.name} reports {reference} again")
    # one re-pull of the node that lost it, none elsewhere, and no loop once it is back
    status = await real_env.status(name)
    assert status["cachedNodes"] == status["targetNodes"] == len(nodes.nodes)
    assert pulls_on(victim.name) == 2
    assert all(pulls_on(n.name) == 1 for n in other)
