"""The stored form of an image's cached nodes: version 2 (binary record), and version 1 still read."""

from __future__ import annotations

import base64
import random

import pytest

from drop_operator.controllers.common import nodecache
from drop_operator.controllers.common.nodeset import CachedNodes
from tests.infra.legacy import v1_text

REF = "docker.io/library/nginx:1.25"
T0 = 1_700_000_000.0


def keys(count: int, prefix: str = "n") -> list[str]:
    return [nodecache.node_key(f"{prefix}{i}") for i in range(count)]


def test_round_trip_at_minute_precision() -> None:
    pulled = {nodecache.node_key("a"): T0, nodecache.node_key("b"): T0 + 125, nodecache.node_key("c"): T0}
    data = nodecache.encode(REF, pulled)
    assert data[0] == 2
    back = nodecache.decode(REF, data)
    assert set(back) == set(pulled)
    for key, when in pulled.items():
        assert when - 60 < back[key] <= when


def test_a_node_costs_five_bytes_when_pulls_share_minutes() -> None:
    pulled = {k: T0 + (i // 100) * 60 for i, k in enumerate(keys(10_000))}  # 100 pulls a minute
    data = nodecache.encode(REF, pulled)
    assert len(data) < 10_000 * 5.05
    assert nodecache.decode(REF, data) == {k: float(int(t) // 60 * 60) for k, t in pulled.items()}


def test_the_compact_set_encodes_like_the_dict_it_replaces() -> None:
    pulled = {k: T0 - i * 7 for i, k in enumerate(keys(500))}
    assert nodecache.encode(REF, CachedNodes(pulled.items())) == nodecache.encode(REF, pulled)


def test_encoding_is_stable() -> None:
    a, b = nodecache.node_key("a"), nodecache.node_key("b")
    assert nodecache.encode(REF, {a: 60.0, b: 120.0}) == nodecache.encode(REF, {b: 120.0, a: 60.0})
    empty = nodecache.encode(REF, {})
    assert len(empty) == 5 and nodecache.decode(REF, empty) == {}


def test_version_1_annotations_are_still_read_beyond_the_old_cap() -> None:
    pulled = {k: T0 + 60 * (i % 7) for i, k in enumerate(keys(12_000))}
    text = v1_text(REF, pulled)
    back = nodecache.decode(REF, text)
    assert len(back) == 12_000
    assert back == {k: float(int(t) // 60 * 60) for k, t in pulled.items()}
    # ... and rewritten in version 2 they read the same (the migration loses nothing).
    assert nodecache.decode(REF, nodecache.encode(REF, back)) == back
    assert nodecache.decode("other:1", text) == {}
    assert nodecache.decode(REF, text + ",bad,zz:!!,-000000001:1") == back


def test_another_reference_reads_as_empty() -> None:
    data = nodecache.encode("x:1", {nodecache.node_key("a"): 1e9})
    assert nodecache.decode("x:2", data) == {}
    assert nodecache.decode("x:1", data) != {}


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"",
        "",
        "nonsense",
        b"\x01abcd",  # an unknown version
        b"\x02",  # a header cut short
        b"\xff" * 64,
    ],
)
def test_garbage_reads_as_empty(data: bytes | str | None) -> None:
    assert nodecache.decode(REF, data) == {}


def test_any_corruption_reads_as_empty_never_as_a_crash() -> None:
    pulled = {k: T0 + 60 * (i % 5) for i, k in enumerate(keys(200))}
    data = nodecache.encode(REF, pulled)
    rand = random.Random(7)
    for cut in range(len(data) - 1, 5, -37):
        back = nodecache.decode(REF, data[:cut])
        assert back == {} or set(back) <= set(pulled)  # a cut at a group boundary is a smaller set
    for _ in range(300):
        mangled = bytearray(data)
        for _ in range(rand.randint(1, 4)):
            mangled[rand.randrange(5, len(mangled))] = rand.randrange(256)
        nodecache.decode(REF, bytes(mangled))  # any answer, but an answer
    header = data[:5]
    assert nodecache.decode(REF, header + b"\x05\x00") == {}  # a group of no nodes
    assert nodecache.decode(REF, header + b"\x05\x02" + b"\x00" * 5) == {}  # fewer nodes than counted
    assert nodecache.decode(REF, header + b"\x05\x01" + b"\x00" * 5 + b"\x00\x01" + b"\x00" * 5) == {}


def test_the_record_is_bounded_keeping_the_newest_pulls() -> None:
    pulled = {k: T0 + 60 * (i // 10) for i, k in enumerate(keys(3_000))}  # 300 minutes, 10 nodes each
    newest = sorted({int(t) // 60 * 60 for t in pulled.values()}, reverse=True)
    group = 1 + 1 + 10 * 5  # distance, count, keys
    limit = 5 + 3 + 104 * group  # the first group's minute is given in full (4 bytes)
    data = nodecache.encode(REF, pulled, limit=limit)
    back = nodecache.decode(REF, data)
    assert len(data) == limit and len(back) == 1_040
    assert set(back.values()) == set(newest[:104])
    # A minute that fits only in part: as many of its nodes as fit.
    data = nodecache.encode(REF, pulled, limit=limit + 2 + 3 * 5 + 4)
    back = nodecache.decode(REF, data)
    assert len(back) == 1_043 and sum(1 for t in back.values() if t == newest[104]) == 3
    assert nodecache.MAX_RECORD_BYTES <= 768 * 1024  # ConfigMaps hold 1 MiB; etcd takes 1.5 MiB


def test_the_bound_holds_at_least_95_000_nodes_even_when_every_node_has_its_own_minute() -> None:
    count = 95_000
    # One pull every 128 minutes (the shortest distance that takes 2 bytes) for 23 years.
    pulled = {f"{i:010x}": T0 - 60 * 128 * i for i in range(count)}
    data = nodecache.encode(REF, pulled)
    assert len(data) <= nodecache.MAX_RECORD_BYTES
    assert len(nodecache.decode(REF, data)) == count


def test_random_sets_round_trip() -> None:
    """A property test on seeded random sets: whatever the set, decode(encode(x)) is x to the minute."""
    rand = random.Random(2024)
    for _ in range(200):
        size = rand.choice([0, 1, 2, 10, 300])
        pulled = {
            f"{rand.getrandbits(40):010x}": float(rand.choice([1, rand.randrange(1, 2**32 - 1), T0]))
            for _ in range(size)
        }
        back = nodecache.decode(REF, nodecache.encode(REF, pulled))
        assert back == {k: float(int(t) // 60 * 60) for k, t in pulled.items()}


def test_where_the_set_is_stored() -> None:
    data = nodecache.encode(REF, {nodecache.node_key("a"): T0})
    record = {"binaryData": {nodecache.RECORD_KEY: base64.b64encode(data).decode()}}
    old = {nodecache.ANNOTATION: v1_text(REF, {nodecache.node_key("b"): T0})}
    assert nodecache.stored(record, old) == data  # the record wins over an annotation left beside it
    assert nodecache.stored(None, old) == old[nodecache.ANNOTATION]  # not migrated yet
    assert nodecache.stored(None, {}) is None
    assert nodecache.stored({"binaryData": {nodecache.RECORD_KEY: "%%%"}}, old) == b""  # unreadable: empty
    assert nodecache.stored({}, old) == b""
    assert nodecache.record_name("1234") == "drop-nodes-1234"
