"""The image-set reconciler against a real kube-apiserver and the real garbage collector."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from drop_operator.controllers.kinds import (
    CACHED_IMAGE_SETS,
    CACHED_IMAGES,
    DISCOVERY_POLICIES,
    PULL_POLICIES,
)
from drop_operator.runtime import ApiError, KubeClient
from tests.infra.controlplane import unique_name
from tests.infra.operator import condition
from tests.infra.waiting import eventually
from tests.integration.cachedimageset.conftest import (
    Operator,
    children_of,
    healthy_conditions,
    policy_body,
    publish,
    reference,
    set_body,
    status_of,
)


def images(prefix: str, n: int) -> list[str]:
    return [f"registry.example.com/{prefix}/app-{i}:v{i}" for i in range(n)]


async def converged(kube: KubeClient, name: str, expected: set[str]) -> bool:
    children = await children_of(kube, name)
    return sorted(reference(c) for c in children) == sorted(expected)


async def test_seed_flow_creates_one_owned_child_per_discovered_image(
    kube: KubeClient, operator: Operator
) -> None:
    policy, name = unique_name("popular"), unique_name("builds")
    await kube.create(DISCOVERY_POLICIES, policy_body(policy))
    wanted = images(name, 30)
    await publish(kube, policy, wanted)
    owner = await kube.create(CACHED_IMAGE_SETS, set_body(name, policy=policy))

    await eventually(lambda: converged(kube, name, set(wanted)), 30, "30 children")
    children = await children_of(kube, name)
    assert len(children) == 30
    for child in children:
        (ref,) = child["metadata"]["ownerReferences"]
        assert ref["uid"] == owner["metadata"]["uid"]
        assert ref["controller"] is True
        assert ref["blockOwnerDeletion"] is True
    assert len({c["metadata"]["name"] for c in children}) == 30

    async def status_done() -> bool:
        status = await status_of(kube, name)
        return (
            status.get("desired") == 30
            and status.get("managed") == 30
            and condition(status, "Ready").get("reason") == "ImagesCaching"
            and condition(status, "DiscoveryReady").get("reason") == "Discovered"
        )

    await eventually(status_done, 20, "status 30/30 created, caching, Discovered")
    status = await status_of(kube, name)
    assert status["observedGeneration"] == owner["metadata"]["generation"]
    assert status["ready"] == 0

    # The node-caching reconciler reports children Ready: the set counts them.
    for child in children[:7]:
        await kube.patch_status(
            CACHED_IMAGES,
            child["metadata"]["name"],
            {
                "status": {
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "Cached",
                            "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                        }
                    ]
                }
            },
        )
    await eventually(lambda: _ready_count(kube, name, 7), 20, "ready == 7")

    # Every source down: the policy keeps its last list (as the discovery reconciler does); so do we.
    await publish(kube, policy, wanted, conditions=healthy_conditions("False", "False", "all sources down"))

    async def failing() -> bool:
        return condition(await status_of(kube, name), "DiscoveryReady").get("reason") == "PolicyFailing"

    await eventually(failing, 20, "DiscoveryReady PolicyFailing")
    assert len(await children_of(kube, name)) == 30
    assert "all sources down" in condition(await status_of(kube, name), "DiscoveryReady")["message"]

    # The policy deleted (a GitOps replace, say): children are held, and the set says why.
    await kube.delete(DISCOVERY_POLICIES, policy)

    async def not_found() -> bool:
        return condition(await status_of(kube, name), "DiscoveryReady").get("reason") == "PolicyNotFound"

    await eventually(not_found, 20, "DiscoveryReady PolicyNotFound")
    assert len(await children_of(kube, name)) == 30
    await kube.delete(CACHED_IMAGE_SETS, name)


async def _ready_count(kube: KubeClient, name: str, n: int) -> bool:
    return (await status_of(kube, name)).get("ready") == n


async def test_image_leaving_is_deleted_and_coming_back_is_recreated_once(
    kube: KubeClient, operator: Operator
) -> None:
    policy, name = unique_name("leave"), unique_name("set")
    await kube.create(DISCOVERY_POLICIES, policy_body(policy))
    wanted = images(name, 5)
    await publish(kube, policy, wanted)
    await kube.create(CACHED_IMAGE_SETS, set_body(name, policy=policy))
    await eventually(lambda: converged(kube, name, set(wanted)), 30, "5 children")
    leaving = wanted[2]
    before = {reference(c): c for c in await children_of(kube, name)}[leaving]

    await publish(kube, policy, [w for w in wanted if w != leaving])
    await eventually(lambda: converged(kube, name, set(wanted) - {leaving}), 30, "child deleted")

    adds_before = Counter(operator.added_names(name))
    await publish(kube, policy, wanted)
    await eventually(lambda: converged(kube, name, set(wanted)), 30, "child recreated")
    await asyncio.sleep(2 * 1.0)  # let a couple of resyncs pass: nothing more may be created
    adds_after = Counter(operator.added_names(name))
    assert adds_after - adds_before == Counter({before["metadata"]["name"]: 1})
    again = {reference(c): c for c in await children_of(kube, name)}[leaving]
    assert again["metadata"]["name"] == before["metadata"]["name"]
    assert again["metadata"]["uid"] != before["metadata"]["uid"]
    await kube.delete(CACHED_IMAGE_SETS, name)
    await kube.delete(DISCOVERY_POLICIES, policy)


async def _delete_set_and_watch(kube: KubeClient, operator: Operator, propagation: str) -> None:
    policy, name = unique_name(f"del-{propagation.lower()}"), unique_name("set")
    await kube.create(DISCOVERY_POLICIES, policy_body(policy))
    wanted = images(name, 20)
    await publish(kube, policy, wanted)
    await kube.create(CACHED_IMAGE_SETS, set_body(name, policy=policy))
    await eventually(lambda: converged(kube, name, set(wanted)), 30, "20 children")
    # The operator's cache may show the creates a moment after the API server lists them.
    await eventually(lambda: len(operator.added_names(name)) >= 20, 30, "the operator saw the 20 children")
    created_before = len(operator.added_names(name))

    await kube.delete(CACHED_IMAGE_SETS, name, propagation_policy=propagation)
    if propagation == "Foreground":
        # The set lingers with a deletionTimestamp while the GC removes the children.
        obj = await kube.get(CACHED_IMAGE_SETS, name)
        assert obj["metadata"].get("deletionTimestamp")
        assert "foregroundDeletion" in obj["metadata"].get("finalizers", [])

    async def set_gone() -> bool:
        try:
            await kube.get(CACHED_IMAGE_SETS, name)
        except ApiError as err:
            return err.not_found
        return False

    await eventually(set_gone, 60, "set deleted")
    await eventually(lambda: _no_children(kube, name), 60, "children removed by the garbage collector")
    await asyncio.sleep(1.5)  # a resync later, still nothing
    assert await _no_children(kube, name)
    assert len(operator.added_names(name)) == created_before, "children were recreated during deletion"
    await kube.delete(DISCOVERY_POLICIES, policy)


async def _no_children(kube: KubeClient, name: str) -> bool:
    return not await children_of(kube, name)


async def test_background_deletion_removes_children_through_gc(kube: KubeClient, operator: Operator) -> None:
    await _delete_set_and_watch(kube, operator, "Background")


async def test_foreground_deletion_finishes_and_children_are_not_recreated(
    kube: KubeClient, operator: Operator
) -> None:
    await _delete_set_and_watch(kube, operator, "Foreground")


async def test_overlap_and_two_spellings_make_one_child(kube: KubeClient, operator: Operator) -> None:
    policy, name = unique_name("overlap"), unique_name("set")
    await kube.create(DISCOVERY_POLICIES, policy_body(policy))
    await publish(kube, policy, ["docker.io/library/nginx:1.25", "redis:7"])
    await kube.create(
        CACHED_IMAGE_SETS,
        set_body(name, policy=policy, images=["nginx:1.25", "docker.io/library/nginx:1.25", "Bad/Upper:1"]),
    )
    expected = {"docker.io/library/nginx:1.25", "docker.io/library/redis:7"}
    await eventually(lambda: converged(kube, name, expected), 30, "two children")

    async def status_ok() -> bool:
        status = await status_of(kube, name)
        return status.get("desired") == 2 and status.get("managed") == 2

    await eventually(status_ok, 20, "desired 2, managed 2")
    ready = condition(await status_of(kube, name), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidImages")
    assert "Bad/Upper:1" in ready["message"]
    await kube.delete(CACHED_IMAGE_SETS, name)
    await kube.delete(DISCOVERY_POLICIES, policy)


async def test_empty_set_is_ready_zero_of_zero(kube: KubeClient, operator: Operator) -> None:
    name = unique_name("empty")
    await kube.create(CACHED_IMAGE_SETS, set_body(name))

    async def ready() -> dict[str, Any] | None:
        status = await status_of(kube, name)
        cond = condition(status, "Ready")
        return status if cond.get("status") == "True" else None

    status = await eventually(ready, 20, "empty set Ready")
    assert (status["desired"], status["managed"], status["ready"]) == (0, 0, 0)
    assert "0/0" in condition(status, "Ready")["message"]
    assert not condition(status, "DiscoveryReady")
    await kube.delete(CACHED_IMAGE_SETS, name)


async def test_template_change_and_drift_reach_every_child(kube: KubeClient, operator: Operator) -> None:
    name = unique_name("tmpl")
    static = [f"registry.example.com/{name}/img-{i}:1" for i in range(6)]
    await kube.create(
        CACHED_IMAGE_SETS, set_body(name, images=static, nodeSelector={"pool": "a", "old": "x"})
    )
    await eventually(lambda: converged(kube, name, set(static)), 30, "6 children")

    template = {
        "imagePullPolicy": "Always",
        "imagePullSecrets": [{"name": "pull-secret"}],
        "nodeSelector": {"pool": "b"},
        "tolerations": [{"key": "ci", "operator": "Exists", "effect": "NoSchedule"}],
        "pullPolicyRef": {"name": "gentle"},
    }
    # A merge patch merges maps: drop the old nodeSelector key explicitly.
    await kube.patch(
        CACHED_IMAGE_SETS, name, {"spec": {**template, "nodeSelector": {"pool": "b", "old": None}}}
    )

    async def all_updated() -> bool:
        children = await children_of(kube, name)
        return len(children) == 6 and all(
            all(c["spec"].get(k) == v for k, v in template.items()) for c in children
        )

    await eventually(all_updated, 30, "every child carries the new template")

    # A child edited by hand is brought back.
    victim = (await children_of(kube, name))[0]["metadata"]["name"]
    await kube.patch(
        CACHED_IMAGES, victim, {"spec": {"nodeSelector": {"pool": "z", "extra": "1"}, "pullPolicyRef": None}}
    )
    await eventually(all_updated, 30, "drift reverted")
    await kube.delete(CACHED_IMAGE_SETS, name)


async def test_restart_in_the_middle_of_200_creates_leaves_no_duplicates_or_leftovers(
    kube: KubeClient, crds: Path
) -> None:
    policy, name = unique_name("crash"), unique_name("set")
    await kube.create(DISCOVERY_POLICIES, policy_body(policy))
    first = images(name, 200)
    await publish(kube, policy, first)
    await kube.create(CACHED_IMAGE_SETS, set_body(name, policy=policy))

    operator = Operator(kube, grace_period=0)  # no grace: in-flight creates are cut off
    await operator.start()
    await eventually(lambda: _at_least(kube, name, 40), 60, "some children created")
    await operator.stop()
    partial = await children_of(kube, name)
    assert 40 <= len(partial) < 200, f"stopped too late to test anything: {len(partial)}"

    # While the operator is down the list changes: some created ones leave, new ones arrive.
    created = {reference(c) for c in partial}
    leaving = set(sorted(created)[:15])
    second = [i for i in first if i not in leaving] + images(name + "-new", 10)
    await publish(kube, policy, second)

    await operator.start()
    try:
        await eventually(lambda: converged(kube, name, set(second)), 90, "exactly the desired children")
        await asyncio.sleep(2.0)
        children = await children_of(kube, name)
        refs = [reference(c) for c in children]
        assert len(refs) == len(set(refs)) == len(second)
        uid = (await kube.get(CACHED_IMAGE_SETS, name))["metadata"]["uid"]
        assert all(c["metadata"]["ownerReferences"][0]["uid"] == uid for c in children)
        status = await status_of(kube, name)
        assert (status["desired"], status["managed"]) == (len(second), len(second))
    finally:
        await operator.stop()
    await kube.delete(CACHED_IMAGE_SETS, name)
    await kube.delete(DISCOVERY_POLICIES, policy)
    # Let the garbage collector finish here, so its deletes don't land in another test's window.
    await eventually(lambda: _no_children(kube, name), 90, "children collected")


async def _at_least(kube: KubeClient, name: str, n: int) -> bool:
    return len(await children_of(kube, name)) >= n


async def test_steady_state_makes_no_writes_over_resyncs(
    kube: KubeClient,
    operator: Operator,
    write_counter: Callable[[], dict[tuple[str, str, str], float]],
) -> None:
    policy, name = unique_name("steady"), unique_name("set")
    await kube.create(DISCOVERY_POLICIES, policy_body(policy))
    wanted = images(name, 10)
    await publish(kube, policy, wanted)
    await kube.create(
        CACHED_IMAGE_SETS,
        set_body(name, policy=policy, images=["nginx:1.25"], nodeSelector={"pool": "ci"}),
    )
    await eventually(
        lambda: converged(kube, name, {*wanted, "docker.io/library/nginx:1.25"}), 30, "11 children"
    )

    async def settled() -> bool:
        return (await status_of(kube, name)).get("managed") == 11

    await eventually(settled, 20, "status written")

    # The cluster is shared: start the window once nothing writes these resources (e.g. the GC
    # collecting another test's children), then count every write the API server serves in it.
    last: list[dict[tuple[str, str, str], float]] = [write_counter()]

    async def quiet() -> bool:
        await asyncio.sleep(1.0)
        now = write_counter()
        unchanged = now == last[0]
        last[0] = now
        return unchanged

    await eventually(quiet, 60, "no writes to drop's resources for a second")

    def reconciles() -> float:
        labels = {"controller": "cachedimageset", "result": "success"}
        return REGISTRY.get_sample_value("controller_runtime_reconcile_total", labels) or 0.0

    runs_before = reconciles()
    before = write_counter()
    await asyncio.sleep(4.5 * 1.0)  # at least four informer resyncs
    after = write_counter()
    runs = reconciles() - runs_before
    assert runs >= 3, f"resyncs should have re-run the reconcile ({runs} runs)"
    delta = {
        k: after.get(k, 0.0) - before.get(k, 0.0) for k in after if after.get(k, 0.0) != before.get(k, 0.0)
    }
    assert delta == {}, f"writes in steady state: {delta}"

    # The counter does see this reconciler's writes: one more image is one more POST.
    await publish(kube, policy, [*wanted, f"registry.example.com/{name}/late:1"])
    await eventually(lambda: _at_least(kube, name, 12), 20, "the late image's child")
    posts = write_counter().get(("POST", "cachedimages", ""), 0.0) - after.get(
        ("POST", "cachedimages", ""), 0.0
    )
    assert posts >= 1
    await kube.delete(CACHED_IMAGE_SETS, name)
    await kube.delete(DISCOVERY_POLICIES, policy)


async def test_broken_references_say_so_in_ready(kube: KubeClient, operator: Operator) -> None:
    """A set whose DiscoveryPolicy does not exist is not "0/0 Ready"; one whose
    PullPolicy does not exist does not stay ImagesCaching. ``kubectl get`` shows Ready's reason."""

    async def ready_of(name: str) -> tuple[str, str, str]:
        cond = condition(await status_of(kube, name), "Ready")
        return cond.get("status", ""), cond.get("reason", ""), cond.get("message", "")

    def reads(name: str, status: str, reason: str) -> Callable[[], Any]:
        async def check() -> bool:
            return (await ready_of(name))[:2] == (status, reason)

        return check

    no_policy = unique_name("no-discovery")
    missing = unique_name("missing-policy")
    await kube.create(CACHED_IMAGE_SETS, set_body(no_policy, policy=missing))
    await eventually(
        reads(no_policy, "False", "DiscoveryPolicyNotFound"), 20, "Ready DiscoveryPolicyNotFound"
    )
    assert (await ready_of(no_policy))[2].startswith(f"DiscoveryPolicy {missing} not found")
    # the policy appears and publishes nothing: an honest, Ready 0/0
    await kube.create(DISCOVERY_POLICIES, policy_body(missing))
    await publish(kube, missing, [], conditions=healthy_conditions())
    await eventually(reads(no_policy, "True", "ImagesCached"), 20, "Ready once the policy exists")

    no_pull = unique_name("no-pull-policy")
    await kube.create(
        CACHED_IMAGE_SETS,
        set_body(no_pull, images=images(no_pull, 2), pullPolicyRef={"name": f"{no_pull}-fast"}),
    )
    await eventually(reads(no_pull, "False", "PullPolicyNotFound"), 20, "Ready PullPolicyNotFound")
    assert (await ready_of(no_pull))[2].startswith(f"PullPolicy {no_pull}-fast not found")
    await kube.create(
        PULL_POLICIES,
        {
            "apiVersion": PULL_POLICIES.api_version,
            "kind": "PullPolicy",
            "metadata": {"name": f"{no_pull}-fast"},
        },
    )
    # the PullPolicy's arrival alone wakes the set (no child is cached here: no node controller runs)
    await eventually(reads(no_pull, "False", "ImagesCaching"), 20, "the set noticed the PullPolicy")
    for name in (no_policy, no_pull):
        await kube.delete(CACHED_IMAGE_SETS, name)
    await kube.delete(DISCOVERY_POLICIES, missing)
    await kube.delete(PULL_POLICIES, f"{no_pull}-fast")
