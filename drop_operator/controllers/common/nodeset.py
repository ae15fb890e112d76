"""Which nodes hold an image, in memory: about 4 bytes per (node, image) instead of ~120.

At 10 000 nodes x 500 images the operator remembers 5 million (node, image) facts. A
``dict[str, float]`` per image costs a key string, a float object and a hash slot per fact
(~120 bytes: ~600 MB); here the node keys are interned once per process in a :class:`NodeTable`
(key -> small slot number, shared by every image), and each image keeps one ``array('I')`` indexed
by slot holding the unix second of the node's last pull (0: not cached). Measured with tracemalloc
by ``benchmarks/nodecache_bench.py``.

Slots are reference-counted: a slot is freed when no set holds its node any more (the node was
pruned from every image, or the images' sets were dropped), and reused by the next new node, so the
table and the arrays stay bounded by the nodes that exist, however many come and go over time.

:class:`CachedNodes` is a ``MutableMapping[str, float]`` of node keys
(:func:`~drop_operator.controllers.common.nodecache.node_key`, 10 hex digits = 40 bits) to unix
times, so code written for the dict it replaces reads it unchanged. Times are kept to the second.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, MutableMapping
from typing import TypeVar, overload

__all__ = ["KEY_BITS", "TABLE", "CachedNodes", "NodeTable", "key_of", "key_text"]

_T = TypeVar("_T")

KEY_BITS = 40
"""Bits of a node key (10 hex digits)."""
_MAX_SECOND = 2**32 - 1  # array('I') holds unsigned 32-bit values: unix seconds until 2106


def key_of(key: str) -> int:
    """The integer of a 10-hex-digit node key; ``ValueError`` for anything else."""
    value = int(key, 16) if len(key) == KEY_BITS // 4 else -1
    if not 0 <= value < 1 << KEY_BITS:
        raise ValueError(f"not a node key: {key!r}")
    return value


def key_text(key: int) -> str:
    return f"{key:010x}"


class NodeTable:
    """Node key -> slot, shared by every :class:`CachedNodes` of the process, with reference counts."""

    def __init__(self) -> None:
        self._slots: dict[int, int] = {}
        self.keys = array("Q")
        """Slot -> node key (meaningless while the slot is free)."""
        self._refs = array("I")
        self._free: list[int] = []

    def __len__(self) -> int:
        """Nodes held by at least one set."""
        return len(self._slots)

    @property
    def capacity(self) -> int:
        """Slots in use or free: the length every set's array grows to at most."""
        return len(self.keys)

    def slot(self, key: int) -> int | None:
        return self._slots.get(key)

    def acquire(self, key: int) -> int:
        """The slot of ``key`` for one more holder (allocated, or reused from a freed node)."""
        slot = self._slots.get(key)
        if slot is None:
            if self._free:
                slot = self._free.pop()
                self.keys[slot] = key
            else:
                slot = len(self.keys)
                self.keys.append(key)
                self._refs.append(0)
            self._slots[key] = slot
        self._refs[slot] += 1
        return slot

    def release(self, slot: int) -> None:
        """One holder of ``slot`` let go; the last one frees it."""
        self._refs[slot] -= 1
        if not self._refs[slot]:
            del self._slots[self.keys[slot]]
            self._free.append(slot)

    def release_all(self, times: array[int]) -> None:
        """Release every slot a set's ``times`` holds (the set is gone)."""
        for slot, when in enumerate(times):
            if when:
                self.release(slot)


TABLE = NodeTable()
"""The process's table; every set uses it unless a test gives its own."""


class CachedNodes(MutableMapping[str, float]):
    """Node key -> unix time of its last pull, for one image; 4 bytes per slot of the table."""

    __slots__ = ("_count", "_table", "_times", "version")

    def __init__(self, items: Iterable[tuple[str, float]] = (), *, table: NodeTable | None = None) -> None:
        self._table = table if table is not None else TABLE
        self._times: array[int] = array("I")
        self._count = 0
        self.version = 0
        """Bumped by every change, so a writer knows whether what it stored is still current."""
        for key, when in items:
            self[key] = when

    def __del__(self) -> None:
        # When the set goes, its slots go back to the table. A method, not a weakref.finalize per
        # set: that costs about 200 bytes for each of thousands of images.
        times = getattr(self, "_times", None)  # absent if __init__ failed before setting it
        if times is not None:
            self._table.release_all(times)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int]], *, table: NodeTable | None = None) -> CachedNodes:
        """A set from ``(integer node key, unix second)`` pairs, as the record decoder yields them."""
        out = cls(table=table)
        acquire, times = out._table.acquire, out._times
        for key, when in pairs:
            slot = acquire(key)
            if slot >= len(times):
                times.frombytes(bytes(times.itemsize * (out._table.capacity - len(times))))
            if times[slot]:
                out._table.release(slot)  # a key given twice: held once
            else:
                out._count += 1
            times[slot] = min(max(int(when), 1), _MAX_SECOND)
        return out

    # -- the integer interface (encoding, pruning) -------------------------------------------------

    def put(self, key: int, when: float) -> None:
        """Record ``key`` (an integer node key) as pulled at unix time ``when``."""
        second = min(max(int(when), 1), _MAX_SECOND)  # 0 means "not cached"
        slot = self._table.slot(key)
        times = self._times
        if slot is not None and slot < len(times) and times[slot]:
            if times[slot] != second:
                times[slot] = second
                self.version += 1
            return
        slot = self._table.acquire(key)
        if slot >= len(times):
            times.frombytes(bytes(times.itemsize * (self._table.capacity - len(times))))
        times[slot] = second
        self._count += 1
        self.version += 1

    def _slot_of(self, key: int) -> int | None:
        slot = self._table.slot(key)
        if slot is None or slot >= len(self._times) or not self._times[slot]:
            return None
        return slot

    def pairs(self) -> Iterator[tuple[int, int]]:
        """``(integer node key, unix second)`` of every node in the set."""
        keys = self._table.keys
        for slot, when in enumerate(self._times):
            if when:
                yield keys[slot], when

    def retain(self, keep: Iterable[str]) -> int:
        """Forget every node whose key is not in ``keep`` (nodes that no longer exist); returns how many."""
        allowed = {key_of(k) for k in keep}
        keys = self._table.keys
        gone = [slot for slot, when in enumerate(self._times) if when and keys[slot] not in allowed]
        for slot in gone:
            self._drop(slot)
        return len(gone)

    def _drop(self, slot: int) -> None:
        self._times[slot] = 0
        self._count -= 1
        self.version += 1
        self._table.release(slot)

    # -- the mapping interface ---------------------------------------------------------------------

    def __getitem__(self, key: str) -> float:
        slot = self._slot_of(key_of(key))
        if slot is None:
            raise KeyError(key)
        return float(self._times[slot])

    @overload
    def get(self, key: str, /) -> float | None: ...
    @overload
    def get(self, key: str, default: float, /) -> float: ...
    @overload
    def get(self, key: str, default: _T, /) -> float | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        try:
            slot = self._slot_of(key_of(key))
        except ValueError:
            return default
        return default if slot is None else float(self._times[slot])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __setitem__(self, key: str, when: float) -> None:
        self.put(key_of(key), when)

    def __delitem__(self, key: str) -> None:
        slot = self._slot_of(key_of(key))
        if slot is None:
            raise KeyError(key)
        self._drop(slot)

    def __iter__(self) -> Iterator[str]:
        return (key_text(key) for key, _ in self.pairs())

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"CachedNodes({len(self)} nodes)"
