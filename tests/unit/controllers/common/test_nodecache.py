"""The compact cached-nodes annotation."""

from __future__ import annotations

from drop_operator.controllers.common import nodecache


def test_round_trip_at_minute_precision() -> None:
    ref = "docker.io/library/nginx:1.25"
    pulled = {nodecache.node_key("a"): 1_700_000_000.0, nodecache.node_key("b"): 1_700_000_125.0}
    text = nodecache.encode(ref, pulled)
    assert text.startswith("v1;")
    back = nodecache.decode(ref, text)
    assert set(back) == set(pulled)
    for key, when in pulled.items():
        assert when - 60 < back[key] <= when


def test_another_reference_or_garbage_reads_as_empty() -> None:
    text = nodecache.encode("x:1", {nodecache.node_key("a"): 1e9})
    assert nodecache.decode("x:2", text) == {}
    assert nodecache.decode("x:1", "nonsense") == {}
    assert nodecache.decode("x:1", None) == {}
    assert nodecache.decode("x:1", text + ",bad,zz:!!") == nodecache.decode("x:1", text)


def test_encoding_is_stable_pruned_and_bounded() -> None:
    a, b = nodecache.node_key("a"), nodecache.node_key("b")
    assert nodecache.encode("r", {a: 60.0, b: 120.0}) == nodecache.encode("r", {b: 120.0, a: 60.0})
    assert b not in nodecache.encode("r", {a: 60.0, b: 120.0}, keep=[a])
    many = {nodecache.node_key(f"n{i}"): float(i * 60) for i in range(nodecache.MAX_ENTRIES + 100)}
    text = nodecache.encode("r", many)
    decoded = nodecache.decode("r", text)
    assert len(decoded) == nodecache.MAX_ENTRIES
    assert min(decoded.values()) == 100 * 60.0  # the oldest were dropped
    assert len(text) < 100_000
