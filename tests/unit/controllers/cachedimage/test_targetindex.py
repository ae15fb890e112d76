"""Node-event indexes: which images a node event concerns, and the member sets they share."""

from __future__ import annotations

from typing import Any

from drop_operator.controllers.cachedimage.nodes import is_target, targeting_fingerprint
from drop_operator.controllers.cachedimage.targetindex import TargetIndex, targeting_key
from tests.unit.controllers.cachedimage.test_nodes import node, tol


def listing(n: dict[str, Any], *names: str) -> dict[str, Any]:
    n["status"]["images"] = [{"names": [name], "sizeBytes": 1000} for name in names]
    return n


def indexed(*nodes: dict[str, Any]) -> TargetIndex:
    index = TargetIndex()
    for n in nodes:
        index.update(n)
    return index


def test_images_with_the_same_targeting_share_one_class() -> None:
    index = indexed(node("a", labels={"pool": "gpu"}), node("b"))
    _, gpu1 = index.register("img1", {"pool": "gpu"}, [], ["x"])
    _, gpu2 = index.register("img2", {"pool": "gpu"}, [], ["y"])
    _, every = index.register("img3", {}, [], ["z"])
    assert gpu1 is gpu2 and gpu1 == {"a"}
    assert every == {"a", "b"}
    assert index.classes() == 2
    index.forget("img1")
    index.forget("img2")
    assert index.classes() == 1


def test_targeting_key_ignores_selector_order_but_not_tolerations() -> None:
    assert targeting_key({"a": "1", "b": "2"}, []) == targeting_key({"b": "2", "a": "1"}, [])
    assert targeting_key({}, []) != targeting_key({}, [tol(key="gpu", operator="Exists")])


def test_a_node_gaining_a_label_concerns_exactly_the_images_selecting_it() -> None:
    index = indexed(node("a"), node("b", labels={"pool": "gpu"}))
    index.register("gpu", {"pool": "gpu"}, [], ["gpu:1"])
    index.register("cpu", {"pool": "cpu"}, [], ["cpu:1"])
    index.register("all", {}, [], ["all:1"])
    for image in ("gpu", "cpu", "all"):
        index.take_dirty(image)

    assert index.update(node("a", labels={"pool": "gpu"})) == {"gpu", "all"}
    assert index.take_dirty("gpu") == {"a"}
    assert index.take_dirty("cpu") == set()
    _, members = index.register("gpu", {"pool": "gpu"}, [], ["gpu:1"])
    assert members == {"a", "b"}


def test_heartbeats_and_untargeted_nodes_concern_nobody() -> None:
    index = indexed(node("a", labels={"pool": "gpu"}), node("b"))
    index.register("gpu", {"pool": "gpu"}, [], ["gpu:1"])
    beat = node("a", labels={"pool": "gpu"})
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = "2030-01-01T00:00:00Z"
    assert index.update(beat) == set()
    # b is no target of "gpu": its labels, cordon and image list do not concern it
    assert index.update(listing(node("b", labels={"x": "y"}, unschedulable=True), "gpu:1")) == set()


def test_a_node_listing_an_image_concerns_only_that_image() -> None:
    index = indexed(node("a"))
    index.register("one", {}, [], ["registry.test/one:1"])
    index.register("two", {}, [], ["registry.test/two:1"])
    index.take_dirty("one")
    assert index.update(listing(node("a"), "registry.test/one:1", "other:1")) == {"one"}
    assert index.take_dirty("one") == {"a"}
    # the image dropped from the list (kubelet image GC) concerns it again
    assert index.update(listing(node("a"), "other:1")) == {"one"}


def test_a_name_several_images_may_be_listed_under_concerns_each_until_it_leaves() -> None:
    index = indexed(node("a"))
    shared = "registry.test/shared:1"
    for image in ("one", "two", "three"):
        index.register(image, {}, [], [shared])
    assert index.update(listing(node("a"), shared)) == {"one", "two", "three"}
    index.forget("three")
    index.register("two", {}, [], ["registry.test/two:2"])  # re-referenced
    assert index.update(listing(node("a"))) == {"one"}
    index.forget("one")
    assert index.update(listing(node("a"), shared)) == set()
    assert index.update(listing(node("a"), "registry.test/two:2")) == {"two"}


def test_a_list_becoming_complete_concerns_every_image_targeting_the_node() -> None:
    full = [f"filler:{i}" for i in range(50)]
    index = indexed(listing(node("a"), *full))
    index.register("one", {}, [], ["registry.test/one:1"])
    index.register("two", {}, [], ["registry.test/two:1"])
    assert index.update(listing(node("a"), *full[:49])) == {"one", "two"}


def test_taints_readiness_and_deletion_move_nodes_in_and_out() -> None:
    index = indexed(node("a"), node("b"))
    _, plain = index.register("plain", {}, [], [])
    _, tolerant = index.register("tolerant", {}, [tol(key="dedicated", operator="Exists")], [])
    tainted = node("a", taints=[{"key": "dedicated", "value": "ci", "effect": "NoSchedule"}])
    assert index.update(tainted) == {"plain", "tolerant"}
    assert plain == {"b"} and tolerant == {"a", "b"}
    assert index.tainted("dedicated") == {"a"}
    assert index.update(node("b", ready="False")) == {"plain", "tolerant"}
    assert plain == set()
    assert index.update(node("a"), deleted=True) == {"tolerant"}
    assert tolerant == set() and "a" not in index.names and index.tainted("dedicated") == set()


def test_members_agree_with_is_target_after_any_sequence_of_events() -> None:
    variants = [
        node("n", labels={"pool": "gpu"}),
        node("n", labels={"pool": "gpu"}, ready="Unknown"),
        node("n", labels={"pool": "gpu", "kubernetes.io/os": "windows"}),
        node("n", taints=[{"key": "k", "effect": "NoExecute"}]),
        node("n", deleting=True),
        node("n", unschedulable=True),
        node("n"),
    ]
    rules = [({"pool": "gpu"}, []), ({}, [tol(key="k", operator="Exists")]), ({}, [])]
    index = TargetIndex()
    for i, (selector, tolerations) in enumerate(rules):
        index.register(f"img{i}", selector, tolerations, [])
    for current in variants + variants[::-1]:
        index.update(current)
        for i, (selector, tolerations) in enumerate(rules):
            _, members = index.register(f"img{i}", selector, tolerations, [])
            assert ("n" in members) == is_target(current, selector, tolerations)


def test_targeting_fingerprint_ignores_the_image_list() -> None:
    assert targeting_fingerprint(node("a")) == targeting_fingerprint(listing(node("a"), "x:1"))
    assert targeting_fingerprint(node("a")) != targeting_fingerprint(node("a", labels={"l": "v"}))
