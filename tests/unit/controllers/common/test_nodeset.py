"""The compact in-memory set of cached nodes behaves like the dict it replaces (its size is measured by
``benchmarks/nodecache_bench.py``)."""

from __future__ import annotations

import gc

import pytest

from drop_operator.controllers.common.nodecache import node_key
from drop_operator.controllers.common.nodeset import CachedNodes, NodeTable

T0 = 1_700_000_000.0


def test_it_behaves_like_the_dict_it_replaces() -> None:
    table = NodeTable()
    nodes = CachedNodes(table=table)
    a, b = node_key("a"), node_key("b")
    assert nodes.get(a) is None and a not in nodes and len(nodes) == 0
    nodes[a] = T0 + 0.7
    nodes.update(dict.fromkeys([b], T0))
    assert nodes[a] == T0 and nodes.get(b) == T0 and nodes.get(node_key("c"), 1.0) == 1.0
    assert a in nodes and "not a key" not in nodes and 17 not in nodes and nodes.get("zz") is None
    assert sorted(nodes) == sorted([a, b]) and len(nodes) == 2
    assert dict(nodes) == {a: T0, b: T0}
    del nodes[a]
    assert a not in nodes and len(nodes) == 1
    with pytest.raises(KeyError):
        del nodes[a]
    with pytest.raises(KeyError):
        _ = nodes[a]
    with pytest.raises(ValueError, match="not a node key"):
        nodes["-000000001"] = T0


def test_versions_count_changes_only() -> None:
    nodes = CachedNodes(table=NodeTable())
    a = node_key("a")
    nodes[a] = T0
    before = nodes.version
    nodes[a] = T0  # the same time: no change
    assert nodes.version == before
    nodes[a] = T0 + 60
    assert nodes.version == before + 1
    assert CachedNodes.from_pairs([(1, 60), (2, 120)], table=NodeTable()).version == 0


def test_sets_share_slots_and_free_them_when_no_set_holds_a_node() -> None:
    table = NodeTable()
    first, second = CachedNodes(table=table), CachedNodes(table=table)
    a, b, c = node_key("a"), node_key("b"), node_key("c")
    first[a] = second[a] = T0
    first[b] = T0
    assert len(table) == 2 and table.capacity == 2
    del first[a]
    assert len(table) == 2  # second still holds a
    assert first.retain([a]) == 1 and len(first) == 0  # b no longer exists
    assert len(table) == 1
    second[c] = T0  # reuses b's slot
    assert table.capacity == 2 and dict(second) == {a: T0, c: T0} and c not in first
    del second
    gc.collect()
    assert len(table) == 0  # a dropped set gives its slots back


def test_times_are_kept_to_the_second_within_32_bits() -> None:
    nodes = CachedNodes(table=NodeTable())
    a, b = node_key("a"), node_key("b")
    nodes[a] = -5.0
    nodes[b] = 2.0**40
    assert nodes[a] == 1.0 and nodes[b] == 2.0**32 - 1
