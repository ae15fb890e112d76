"""Per-image pending nodes: an incremental pass sees what a full one would, looking at a few nodes."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from drop_operator.controllers.cachedimage.decide import classify_nodes
from drop_operator.controllers.cachedimage.pacing import Pacing
from drop_operator.controllers.cachedimage.pending import Track
from drop_operator.controllers.cachedimage.state import ImageState
from drop_operator.controllers.common import nodecache
from tests.unit.controllers.cachedimage.test_nodes import node

REF = "registry.test/app:1"
PACING = Pacing.default()


def nodes(count: int, **kw: Any) -> dict[str, dict[str, Any]]:
    return {f"n{i:03d}": node(f"n{i:03d}", **kw) for i in range(count)}


def keys_of(names: Any) -> dict[str, str]:
    return {n: nodecache.node_key(n) for n in names}


def built(all_nodes: dict[str, dict[str, Any]], state: ImageState) -> Track:
    track = Track(state, "t", None)
    track.rebuild(set(all_nodes), all_nodes, keys_of(all_nodes))
    return track


def when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def test_rebuild_counts_cached_and_orders_fresh_nodes_by_key() -> None:
    all_nodes = nodes(20)
    state = ImageState("uid", REF)
    for name in list(all_nodes)[:5]:
        state.record_success(name, when(1000), None)
    track = built(all_nodes, state)
    assert len(track.uncached) == 15
    assert track.cached_count(pulling=()) == 5
    uncached = sorted(track.uncached, key=nodecache.node_key)
    assert track.first_fresh(4) == uncached[:4]
    assert track.first_fresh(4) == uncached[:4]  # reading does not consume
    assert track.cached_count(pulling=["n000"]) == 4  # a re-pull counts as pulling


def test_dirty_nodes_join_and_leave_the_targets() -> None:
    all_nodes = nodes(3)
    state = ImageState("uid", REF)
    track = built(all_nodes, state)
    all_nodes["n003"] = node("n003")
    keys = keys_of(all_nodes)
    track.apply_dirty({"n003"}, set(all_nodes), all_nodes, keys)
    assert "n003" in track.targets and "n003" in track.uncached
    members = set(all_nodes) - {"n000"}
    track.apply_dirty({"n000"}, members, all_nodes, keys)
    assert "n000" not in track.targets and "n000" not in track.uncached
    assert "n000" not in track.first_fresh(10)


def test_incremental_passes_pick_the_same_candidates_as_a_full_one() -> None:
    rng = random.Random(7)
    all_nodes = nodes(200)
    keys = keys_of(all_nodes)
    state = ImageState("uid", REF)
    track = built(all_nodes, state)
    now = 10_000.0
    for step in range(120):
        name = rng.choice(list(all_nodes))
        roll = rng.random()
        if roll < 0.5:
            state.record_success(name, when(now), None)
        elif roll < 0.6:
            state.record_failure(name, "ErrImagePull", "", when=when(now), pacing=PACING, rand=0.5)
        elif roll < 0.7:
            state.cached.pop(keys[name], None)  # the kubelet lost it
        track.refresh([name], keys)
        full = classify_nodes(
            all_nodes,
            state,
            pulling=set(),
            reference=REF,
            image_pull_policy="IfNotPresent",
            pacing=PACING,
            now=now,
        )
        some = {n: all_nodes[n] for n in track.check((), fresh=12, warming=())}
        partial = classify_nodes(
            some,
            state,
            pulling=set(),
            reference=REF,
            image_pull_policy="IfNotPresent",
            pacing=PACING,
            now=now,
        )
        assert partial.candidates[:12] == full.candidates[:12], step
        assert partial.failed == full.failed
        assert track.cached_count(pulling=()) == full.cached


def test_a_node_cached_after_the_full_pass_brings_the_next_full_pass_to_its_repull() -> None:
    all_nodes = nodes(3)
    state = ImageState("uid", REF)
    track = built(all_nodes, state)
    track.plan_full(1000.0, 60.0, keys_of(all_nodes))
    assert track.full_at == 1000.0 + 600.0  # nothing cached: only the periodic pass
    state.record_success("n001", when(1010.0), None)
    track.note_cached([nodecache.node_key("n001")], 60.0)
    assert 1070.0 <= track.full_at <= 1076.0  # 1m after the pull, stretched by up to 10 %
