"""Which warming taints go, when, and why: every rule of the warm-up decision without a cluster."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from drop_operator.api import CachedImage, Toleration
from drop_operator.controllers.common import nodecache
from drop_operator.controllers.warmup.decide import Gate, cached_keys, decide, gates_node

KEY = "drop.corewire.io/warming"
Obj = dict[str, Any]


def node(name: str = "n1", *, taints: list[Obj] | None = None, labels: dict[str, str] | None = None) -> Obj:
    default = [{"key": KEY, "effect": "NoSchedule"}]
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": default if taints is None else taints},
    }


def gate(name: str, *, cached: tuple[str, ...] = (), max_wait: float = 600.0, **kw: Any) -> Gate:
    return Gate(
        name=name,
        taint_key=kw.pop("taint_key", KEY),
        max_wait=max_wait,
        cached=frozenset(nodecache.node_key(n) for n in cached),
        **kw,
    )


def test_taint_stays_until_every_gating_image_is_cached_then_goes_as_warm() -> None:
    gates = [gate("a", cached=("n1",)), gate("b")]
    verdict = decide(node(), gates, created=1000.0, now=1100.0)
    assert verdict.release == []
    assert verdict.holding == {KEY: ["b"]}
    assert verdict.recheck_after == 500.0
    verdict = decide(
        node(), [gate("a", cached=("n1",)), gate("b", cached=("n1",))], created=1000.0, now=1100.0
    )
    (release,) = verdict.release
    assert (release.key, release.outcome, release.waited, release.gates) == (KEY, "Warm", 100.0, 2)
    assert verdict.recheck_after is None


def test_max_wait_releases_the_node_without_the_image() -> None:
    gates = [gate("slow", max_wait=60.0), gate("ok", cached=("n1",))]
    (release,) = decide(node(), gates, created=1000.0, now=1060.0).release
    assert release.outcome == "MaxWait"
    assert release.not_cached == ["slow"]


def test_longest_max_wait_of_the_missing_images_decides() -> None:
    verdict = decide(node(), [gate("a", max_wait=60.0), gate("b", max_wait=120.0)], created=0.0, now=90.0)
    assert verdict.holding == {KEY: ["b"]} and verdict.recheck_after == 30.0


def test_a_node_without_the_warming_taint_is_left_alone() -> None:
    verdict = decide(node(taints=[]), [gate("a")], created=0.0, now=10_000.0)
    assert verdict.release == [] and verdict.holding == {}


def test_another_taint_key_is_never_touched() -> None:
    other = node(taints=[{"key": "pool.example.com/warming", "effect": "NoSchedule"}])
    assert decide(other, [gate("a", cached=("n1",))], created=0.0, now=1.0).release == []


def test_images_not_targeting_the_node_do_not_gate_it() -> None:
    gpu = node(
        labels={"pool": "gpu"},
        taints=[{"key": KEY, "effect": "NoSchedule"}, {"key": "gpu", "effect": "NoSchedule"}],
    )
    ci_only = gate("ci", node_selector={"pool": "ci"})
    no_gpu_toleration = gate("plain")
    gpu_image = gate("cuda", tolerations=(Toleration(key="gpu", operator="Exists"),), cached=("n1",))
    assert not gates_node(ci_only, gpu)
    assert not gates_node(no_gpu_toleration, gpu)
    assert gates_node(gpu_image, gpu)
    (release,) = decide(gpu, [ci_only, no_gpu_toleration, gpu_image], created=0.0, now=1.0).release
    assert release.outcome == "Warm" and release.gates == 1


def test_nodes_that_cannot_run_the_image_are_not_held_by_it() -> None:
    arm = node("arm", labels={"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"})
    amd = node("amd", labels={"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"})
    windows = node("win", labels={"kubernetes.io/os": "windows", "kubernetes.io/arch": "amd64"})
    amd64_only = gate("x86", platforms=frozenset({("linux", "amd64")}))
    unknown = gate("any")
    assert not gates_node(amd64_only, arm) and gates_node(amd64_only, amd)
    assert gates_node(unknown, arm) and gates_node(unknown, node("bare", labels={}))
    # A pull pod never runs on Windows: no image holds a Windows node.
    assert not gates_node(unknown, windows) and not gates_node(amd64_only, windows)
    # The arm64 node is released at once rather than after maxWait.
    (release,) = decide(arm, [amd64_only], created=0.0, now=1.0).release
    assert release.outcome == "Warm" and release.gates == 0


def test_lifecycle_taints_do_not_stop_an_image_from_gating() -> None:
    joining = node(
        taints=[
            {"key": KEY, "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
            {"key": "node.cloudprovider.kubernetes.io/uninitialized", "effect": "NoSchedule"},
        ]
    )
    verdict = decide(joining, [gate("a")], created=0.0, now=1.0)
    assert verdict.holding == {KEY: ["a"]}


def test_two_warming_keys_are_decided_apart() -> None:
    both = node(taints=[{"key": KEY, "effect": "NoSchedule"}, {"key": "ci/warm", "effect": "NoExecute"}])
    verdict = decide(both, [gate("a", cached=("n1",)), gate("b", taint_key="ci/warm")], created=0.0, now=1.0)
    assert [r.key for r in verdict.release] == [KEY]
    assert verdict.holding == {"ci/warm": ["b"]}


def test_gate_of_an_image_reads_warm_up_and_the_cached_nodes() -> None:
    reference = "registry.test/app:1"
    n1, n2 = nodecache.node_key("n1"), nodecache.node_key("n2")
    ref_hash = hashlib.sha1(reference.encode(), usedforsecurity=False).hexdigest()[:8]
    image = CachedImage.from_obj(
        {
            "metadata": {"name": "app", "annotations": {nodecache.ANNOTATION: f"v1;{ref_hash};{n1}:1"}},
            "spec": {"image": "registry.test/app", "tag": "1", "warmUp": {"maxWait": "2m"}},
            "status": {"platforms": ["linux/amd64", "linux/arm64/v8"]},
        }
    )
    found = Gate.of(image, cached_keys(image, None))  # not migrated yet: the version-1 annotation
    assert found is not None
    assert (found.taint_key, found.max_wait) == (KEY, 120.0)
    assert found.cached == {n1}
    assert found.platforms == {("linux", "amd64"), ("linux", "arm64")}
    payload = base64.b64encode(nodecache.encode(reference, {n2: 60.0})).decode()
    record = {"binaryData": {nodecache.RECORD_KEY: payload}}
    assert cached_keys(image, record) == {n2}  # the record, once there, is what counts
    plain = image.model_copy(update={"spec": image.spec.model_copy(update={"warm_up": None})})
    assert Gate.of(plain) is None
