"""Deletion takes the pull pods along; a restart mid-rollout breaks no limit and duplicates nothing."""

from __future__ import annotations

from prometheus_client import REGISTRY

from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES
from tests.infra.operator import condition
from tests.infra.podwatch import PodWatch
from tests.infra.waiting import eventually
from tests.integration.cachedimage.conftest import Env, Operator


async def test_deleting_a_cached_image_garbage_collects_its_pods(
    env: Env, operator: Operator, pod_watch: PodWatch
) -> None:
    await env.add_nodes(2)
    policy = await env.policy(f"gc-{env.group}", maxConcurrentNodes=2, pullTimeout="10m")
    name = await env.image(f"gc-{env.group}", "registry.test/gc/app", "hang", policy=policy)
    await eventually(lambda: len(pod_watch.active()) == 2, 20, "two hanging pull pods")
    await env.kube.delete(CACHED_IMAGES, name)
    # The garbage collector learns new kinds on its discovery resync (30 s), so a fresh cluster is slow.
    await eventually(lambda: not pod_watch.pods, 90, "pull pods garbage-collected with their CachedImage")


async def test_restart_mid_rollout_keeps_limits_and_creates_no_duplicates(
    env: Env, pod_watch: PodWatch
) -> None:
    nodes = await env.add_nodes(10)
    stuck = await env.policy(
        f"stuck-{env.group}", maxConcurrentNodes=3, maxConcurrentPulls=3, pullTimeout="10m"
    )
    paced = await env.policy(
        f"paced-{env.group}",
        maxConcurrentNodes=2,
        maxConcurrentPulls=3,
        minDelayBetweenPulls="0s",
        pullTimeout="1m",
    )
    first = Operator(env.kube, env.namespace)
    await first.start()
    try:
        hanging = await env.image(f"hang-{env.group}", "registry.test/restart/slow", "hang", policy=stuck)
        images = [
            await env.image(f"r{i}-{env.group}", f"registry.test/restart/app{i}", "ok", policy=paced)
            for i in range(3)
        ]

        async def partly_cached() -> bool:
            total = 0
            for n in images:
                total += (await env.status(n)).get("cachedNodes", 0)
            return 5 <= total < 25

        await eventually(partly_cached, 30, "the rollout under way", interval=0.05)
    finally:
        await first.stop()

    second = Operator(env.kube, env.namespace)
    await second.start()
    try:
        active_at_restart = len(pod_watch.active())
        assert REGISTRY.get_sample_value("drop_pulls_in_flight") == active_at_restart

        async def all_ready() -> bool:
            for n in images:
                status = await env.status(n)
                if condition(status, "Ready").get("status") != "True" or status.get("cachedNodes") != len(
                    nodes
                ):
                    return False
            return True

        await eventually(all_ready, 60, "the rollout finished after the restart", interval=0.3)
        # Only the hanging pulls remain. The gauge reads the operator's pod cache, which may see the
        # last pull pod finish a moment after the status that counted it was read.
        await eventually(
            lambda: REGISTRY.get_sample_value("drop_pulls_in_flight") == 3, 15, "3 pulls in flight"
        )
        assert len(pod_watch.active()) == 3
    finally:
        await second.stop()

    assert pod_watch.peak_pool[paced] <= 3, pod_watch.peak_pool
    assert pod_watch.peak_pool[stuck] <= 3, pod_watch.peak_pool
    assert max(pod_watch.peak_node.values()) <= 2  # one per policy per node
    creations = pod_watch.creations()
    assert all(len(t) == 1 for t in creations.values()), {k: v for k, v in creations.items() if len(v) > 1}
    assert sum(1 for image, _ in creations if image == hanging) == 3
    assert sum(1 for image, _ in creations if image != hanging) == 3 * len(nodes)


async def test_pull_policy_status_counts_the_images_using_it(env: Env, operator: Operator) -> None:
    policy = await env.policy(f"usage-{env.group}", pullTimeout="10m")

    async def using(count: int) -> bool:
        status = (await env.kube.get(PULL_POLICIES, policy)).get("status") or {}
        return status.get("observedGeneration") == 1 and status.get("imagesUsing") == count

    await eventually(lambda: using(0), 20, "a new policy reports 0 images")
    first = await env.image(f"u1-{env.group}", "registry.test/usage/a", "hang", policy=policy)
    await env.image(f"u2-{env.group}", "registry.test/usage/b", "hang", policy=policy)
    await env.image(f"u3-{env.group}", "registry.test/usage/c", "hang")  # no policy: not counted
    await eventually(lambda: using(2), 20, "two images counted")
    await env.kube.delete(CACHED_IMAGES, first)
    await eventually(lambda: using(1), 20, "a deleted image no longer counted")


async def test_pull_pods_carry_the_operator_images_pull_secrets(env: Env, pod_watch: PodWatch) -> None:
    """Installed with ``imagePullSecrets: [{name: mirror-creds}]`` (the chart
    passes it as a setting), every pull pod lists ``mirror-creds`` besides the image's own, once."""
    await env.add_nodes(3)
    policy = await env.policy(f"mirror-{env.group}", maxConcurrentNodes=3, minDelayBetweenPulls="0s")
    op = Operator(env.kube, env.namespace, operator_image_pull_secrets=("mirror-creds",))
    await op.start()
    try:
        name = await env.image(
            f"mirror-{env.group}",
            "registry.test/mirror/app",
            "ok",
            policy=policy,
            imagePullSecrets=[{"name": "regcred"}, {"name": "mirror-creds"}],
        )

        async def cached() -> bool:
            return (await env.status(name)).get("cachedNodes") == 3

        await eventually(cached, 30, "cached on the three nodes")
    finally:
        await op.stop()
    created = [pod for _, pod in pod_watch.added]
    assert len(created) == 3
    for pod in created:
        assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-creds"}]
        assert pod["spec"]["initContainers"][0]["image"] == "drop-operator:test"
