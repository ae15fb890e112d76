"""What a kubelet's ``status.images`` says about one image, and what a pass does about it: node
fixtures shaped like a v1.34 kubelet's report (largest first, at most 50 entries, at most 5 names
each, repository digests before tags)."""

from __future__ import annotations

from typing import Any

from drop_operator.controllers.cachedimage.decide import classify_nodes
from drop_operator.controllers.cachedimage.imagelist import (
    KUBELET_MAX_IMAGES,
    REPORT_GRACE,
    image_listing,
    listed_size,
    reported_names,
)
from drop_operator.controllers.cachedimage.pacing import Pacing
from drop_operator.controllers.cachedimage.state import ImageState
from drop_operator.controllers.common import nodecache

REF = "registry.example.com/team/app:v1"
DIGEST = "sha256:" + "d" * 64
MB = 1_000_000
T0 = 1_767_225_600.0


def entry(name: str, size: int) -> dict[str, Any]:
    return {"names": [f"{name}@sha256:{'0' * 64}", name], "sizeBytes": size}


def node(name: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A node reporting ``entries``, sorted largest first as the kubelet does."""
    images = sorted(entries, key=lambda e: -int(e["sizeBytes"]))
    return {"metadata": {"name": name}, "status": {"images": images}}


def others(count: int, size: int = 100 * MB) -> list[dict[str, Any]]:
    return [entry(f"registry.example.com/other/img-{i}:1", size) for i in range(count)]


NAMES = reported_names(REF, DIGEST)


def test_present_under_any_reported_name_tag_or_repository_digest() -> None:
    assert image_listing(node("n", [entry(REF, 5 * MB)]), NAMES) == "present"
    # an image with many tags: the kubelet lists 5 names, repository digests first; ours is cut
    many = {
        "names": [f"registry.example.com/team/app@{DIGEST}", *(f"x/y:{i}" for i in range(4))],
        "sizeBytes": 5,
    }
    assert image_listing(node("n", [many]), NAMES) == "present"
    assert listed_size(node("n", [entry(REF, 5 * MB)]), NAMES) == 5 * MB


def test_absent_from_a_list_shorter_than_the_cap_means_gone() -> None:
    assert image_listing(node("n", others(3)), NAMES) == "gone"
    assert image_listing(node("n", others(KUBELET_MAX_IMAGES - 1)), NAMES) == "gone"


def test_absent_from_a_full_list_means_nothing_unless_smaller_images_are_listed() -> None:
    full = node("n", others(KUBELET_MAX_IMAGES, size=100 * MB))
    assert image_listing(full, NAMES) == "unknown"  # truncated: it may be beyond the cut
    assert image_listing(full, NAMES, size=50 * MB) == "unknown"  # smaller than all listed: may be cut
    assert image_listing(full, NAMES, size=500 * MB) == "gone"  # larger than listed ones: would be kept
    # the kubelet keeps the largest: a 50 MB image listed means a 60 MB one would be too
    mixed = node("n", [*others(KUBELET_MAX_IMAGES - 1), entry("small/one:1", 50 * MB)])
    assert image_listing(mixed, NAMES, size=60 * MB) == "gone"
    assert image_listing(mixed, NAMES, size=40 * MB) == "unknown"
    assert image_listing(mixed, NAMES) == "unknown"  # size never learned


def test_no_list_at_all_means_nothing() -> None:
    assert image_listing({"metadata": {"name": "n"}, "status": {}}, NAMES) == "unknown"
    assert image_listing(node("n", []), NAMES) == "unknown"  # a simulated node reports nothing


def classify(state: ImageState, targets: dict[str, Any], now: float) -> Any:
    return classify_nodes(
        targets,
        state,
        pulling=set(),
        reference=REF,
        image_pull_policy="IfNotPresent",
        pacing=Pacing.default(),  # no repullInterval
        now=now,
    )


def test_a_node_whose_kubelet_removed_the_image_stops_counting_and_is_pulled_once_more() -> None:
    state = ImageState(uid="u", reference=REF, digest=DIGEST)
    for n in ("gc", "truncated", "kept", "silent"):
        state.cached[nodecache.node_key(n)] = T0
    targets = {
        "gc": node("gc", others(10)),  # complete list without the image: removed
        "truncated": node("truncated", others(KUBELET_MAX_IMAGES)),  # cut list: absence says nothing
        "kept": node("kept", [*others(10), entry(REF, 5 * MB)]),
        "silent": node("silent", []),
    }
    classes = classify(state, targets, now=T0 + REPORT_GRACE)
    assert classes.gone == [nodecache.node_key("gc")]
    assert classes.candidates == ["gc"]  # one paced re-pull, no repullInterval needed
    assert classes.cached == 3
    assert classes.size == 5 * MB

    # a fresh pull is not yet in the list: absence is not believed within the grace period
    young = classify(state, {"gc": targets["gc"]}, now=T0 + 10)
    assert young.gone == [] and young.cached == 1 and young.candidates == []
    assert young.wakeups == [REPORT_GRACE - 10]  # look again once it would be believed

    # once re-pulled and reported again, it counts as cached and nothing more starts
    del state.cached[nodecache.node_key("gc")]
    state.cached[nodecache.node_key("gc")] = T0 + 200
    back = classify(state, {"gc": node("gc", [*others(10), entry(REF, 5 * MB)])}, now=T0 + 400)
    assert back.gone == [] and back.cached == 1 and back.candidates == []


def test_a_learned_size_decides_a_full_list() -> None:
    state = ImageState(uid="u", reference=REF, size=300 * MB)
    state.cached[nodecache.node_key("full")] = T0
    full = node("full", [*others(KUBELET_MAX_IMAGES - 1, size=400 * MB), entry("small/one:1", 1 * MB)])
    assert classify(state, {"full": full}, now=T0 + REPORT_GRACE).gone == [nodecache.node_key("full")]
    state.size = None
    assert classify(state, {"full": full}, now=T0 + REPORT_GRACE).gone == []


def test_the_same_content_under_another_tag_is_no_reason_to_skip_the_pull() -> None:
    """A node holding ``app:v0`` with the same digest still resolves ``app:v1`` at the registry
    (``IfNotPresent`` looks the tag up): it is not cached without a pull, but not "gone" either."""
    state = ImageState(uid="u", reference=REF, digest=DIGEST)
    sibling = {
        "names": [f"registry.example.com/team/app@{DIGEST}", "registry.example.com/team/app:v0"],
        "sizeBytes": 5,
    }
    classes = classify(state, {"n": node("n", [sibling])}, now=T0)
    assert classes.reported == [] and classes.candidates == ["n"] and classes.cached == 0
    state.cached[nodecache.node_key("n")] = T0
    kept = classify(state, {"n": node("n", [sibling])}, now=T0 + REPORT_GRACE)
    assert kept.gone == [] and kept.cached == 1
