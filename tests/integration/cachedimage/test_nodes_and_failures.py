"""Node changes trigger pulls at once; hangs time out; failures back off per node, capped."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

from drop_operator.controllers.kinds import CACHED_IMAGES
from drop_operator.runtime.resources import NODES
from tests.infra.operator import condition
from tests.infra.waiting import eventually
from tests.integration.cachedimage.conftest import (
    HOLD_NOT_READY,
    Env,
    Operator,
    PodWatch,
)

FAST = {
    "minDelayBetweenPulls": "0s",
    "pullTimeout": "5s",
    "failureBackoff": {"initial": "1s", "max": "4s", "jitter": 0},
}


def counts_are(env: Env, name: str, *, cached: int, target: int) -> Callable[[], Awaitable[bool]]:
    """A poll for :func:`eventually`: the image reports ``cached`` of ``target`` nodes."""

    async def check() -> bool:
        status = await env.status(name)
        return status.get("cachedNodes") == cached and status.get("targetNodes") == target

    return check


async def test_new_ready_and_untainted_nodes_are_pulled_within_seconds(env: Env, operator: Operator) -> None:
    await env.add_nodes(2)
    policy = await env.policy(f"nodes-{env.group}", maxConcurrentNodes=5, maxConcurrentPulls=5, **FAST)
    name = await env.image(f"warm-{env.group}", "registry.test/nodes/app", "ok", policy=policy)

    async def cached(count: int, target: int) -> bool:
        status = await env.status(name)
        return status.get("cachedNodes") == count and status.get("targetNodes") == target

    await eventually(lambda: cached(2, 2), 30, "the first two nodes cached")

    await env.add_node()
    await eventually(lambda: cached(3, 3), 10, "a new node pulled")

    held = await env.add_node(hold_not_ready=True)
    tainted = await env.add_node(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    cordoned = await env.add_node()
    await env.kube.patch(NODES, cordoned, {"spec": {"unschedulable": True}})
    await eventually(lambda: cached(3, 3), 10, "not-ready, tainted and cordoned nodes are no targets")

    await env.kube.patch(NODES, held, {"metadata": {"annotations": {HOLD_NOT_READY: None}}})
    await eventually(lambda: cached(4, 4), 20, "the node that became Ready pulled")

    node = await env.kube.get(NODES, tainted)
    taints = [t for t in node["spec"]["taints"] if t["key"] != "dedicated"]
    await env.kube.patch(NODES, tainted, {"spec": {"taints": taints}})
    await eventually(lambda: cached(5, 5), 10, "the node that lost its taint pulled")

    await env.kube.patch(NODES, cordoned, {"spec": {"unschedulable": False}})
    await eventually(lambda: cached(6, 6), 10, "the uncordoned node pulled")

    # tolerations make tainted nodes targets
    other = await env.add_node(taints=[{"key": "dedicated", "value": "ci", "effect": "NoExecute"}])
    await env.kube.patch(
        CACHED_IMAGES, name, {"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}}
    )
    await eventually(lambda: cached(7, 7), 10, f"tainted node {other} pulled once tolerated")


async def test_hanging_pull_times_out_and_retries_while_other_nodes_proceed(
    env: Env, operator: Operator, pod_watch: PodWatch
) -> None:
    hang = await env.add_node(prefix="hang")
    await env.add_nodes(4)
    policy = await env.policy(f"hang-{env.group}", maxConcurrentNodes=1, maxConcurrentPulls=1, **FAST)
    name = await env.image(f"hang-{env.group}", "registry.test/hang/app", "ok", policy=policy)

    others_cached = counts_are(env, name, cached=4, target=5)
    # only one pull at a time: a hanging pod must not hold the image back for good
    await eventually(others_cached, 40, "the four healthy nodes cached despite a hanging node")
    status = await env.status(name)
    assert status["failedNodes"] + status["pullingNodes"] == 1

    async def retried_after_timeout() -> bool:
        times = pod_watch.creations().get((name, hang), [])
        return len(times) >= 2

    await eventually(retried_after_timeout, 30, "the hanging node retried")
    status = await eventually(lambda: _degraded(env, name, "Timeout"), 15, "Degraded with reason Timeout")
    failure = status["recentFailures"][0]
    assert failure["node"] == hang and failure["reason"] == "Timeout"
    assert condition(status, "Ready")["status"] == "False"
    times = pod_watch.creations()[(name, hang)]
    # 5s deadline + 1s slack before the first retry, then the backoff on top of the next deadline
    assert times[1] - times[0] >= 5.5


async def _degraded(env: Env, name: str, reason: str) -> dict[str, object] | None:
    status = await env.status(name)
    cond = condition(status, "Degraded")
    return status if cond.get("status") == "True" and cond.get("reason") == reason else None


async def test_failing_image_is_degraded_and_backs_off_up_to_the_cap(
    env: Env, operator: Operator, pod_watch: PodWatch
) -> None:
    nodes = await env.add_nodes(2)
    policy = await env.policy(
        f"fail-{env.group}", maxConcurrentNodes=2, maxConcurrentPulls=4, maxPullsPerNode=2, **FAST
    )
    failing = await env.image(f"fail-{env.group}", "registry.test/fail/app", "fail", policy=policy)
    denied = await env.image(f"denied-{env.group}", "registry.test/fail/private", "denied", policy=policy)

    async def both_failed() -> dict[str, object] | None:
        status = await _degraded(env, failing, "ErrImagePull")
        return status if status is not None and status["failedNodes"] == 2 else None

    status = await eventually(both_failed, 20, "Degraded ErrImagePull on both nodes")
    assert "not found" in condition(status, "Degraded")["message"]
    await eventually(lambda: _degraded(env, denied, "Unauthorized"), 20, "Degraded Unauthorized")

    async def enough_attempts() -> bool:
        return len(pod_watch.creations().get((failing, nodes[0]), [])) >= 6

    await eventually(enough_attempts, 40, "six attempts on one node")
    times = pod_watch.creations()[(failing, nodes[0])]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # each attempt fails ~0.3s after creation; then 1s, 2s, 4s, 4s... (jitter 0)
    assert 1.0 <= gaps[0] < 2.5, gaps
    assert 2.0 <= gaps[1] < 3.5, gaps
    assert all(4.0 <= g < 5.8 for g in gaps[2:5]), gaps
    # the other node failed and backed off on its own schedule, not stalled by the first
    assert len(pod_watch.creations()[(failing, nodes[1])]) >= 4
    status = await env.status(failing)
    assert len(status["recentFailures"]) == 2  # one entry per node, not one per attempt


async def test_only_linux_nodes_get_pull_pods(env: Env, operator: Operator, pod_watch: PodWatch) -> None:
    """The pull pod's helper is a Linux binary; a Windows node can never run it."""
    lin = await env.add_node(f"lin-1-{env.group}", labels={"kubernetes.io/os": "linux"})
    win = await env.add_node(f"win-1-{env.group}", labels={"kubernetes.io/os": "windows"})
    policy = await env.policy(f"os-{env.group}", maxConcurrentNodes=5, maxConcurrentPulls=5, **FAST)
    name = await env.image(f"os-{env.group}", "registry.test/os/app", "ok", policy=policy)

    await eventually(
        counts_are(env, name, cached=1, target=1), 30, "the Linux node cached, the Windows node not targeted"
    )
    status = await env.status(name)
    assert status["failedNodes"] == 0 and status["pullingNodes"] == 0
    created = [pod for _, pod in pod_watch.added]
    assert created, "no pull pod was created"
    assert {p["metadata"]["annotations"]["drop.corewire.io/node"] for p in created} == {lin}
    # the scheduler bound every pod to the Linux node (the affinity it got says Linux too)
    assert all(p["spec"].get("nodeName") in (None, lin) for p in pod_watch.pods.values())
    assert not [p for p in await env.pods() if (p.get("spec") or {}).get("nodeName") == win]
