"""What a reconciler remembers between passes: per-object memory and expectations.

Two primitives, so no reconciler keeps a home-made dict of its own:

* :class:`KeyedMemory` is kopf's per-object memo: a value per workqueue key, tied to an identity
  (normally the object's uid). A new object under an old name gets fresh memory; memory of a
  deleted object is dropped with :meth:`~KeyedMemory.forget`.
* :class:`Expectations` is client-go's ``ControllerExpectations``: writes this process made that
  the informer cache may not show yet. Each is trusted for ``ttl`` seconds at most, and dropped as
  soon as the cache shows it, so a pass run on a stale cache does not create, delete or patch the
  same thing twice.

Both live in process memory only: everything that must survive a restart belongs in the object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["Expectations", "KeyedMemory"]

T = TypeVar("T")
V = TypeVar("V")


class KeyedMemory(Generic[T]):
    """One value per key, valid while the key's identity (e.g. uid) stays the same.

    With ``limit``, at most that many values are kept: making one beyond it drops the one used
    least recently (for memory that only saves work, such as a parse, and is large).
    """

    def __init__(self, limit: int | None = None) -> None:
        self._items: dict[str, tuple[Hashable, T]] = {}
        self.limit = limit

    def recall(self, key: str, identity: Hashable, make: Callable[[T | None], T]) -> T:
        """The memory of ``key`` if it was made for ``identity``, else ``make(previous or None)``.

        ``make`` receives the memory of the previous identity (None when there was none), for
        the rare reconciler that seeds differently in a fresh process than after a change.
        """
        found = self._items.get(key)
        if found is not None and found[0] == identity:
            if self.limit is not None:
                self._items[key] = self._items.pop(key)  # most recently used last
            return found[1]
        value = make(found[1] if found is not None else None)
        if self.limit is not None:
            self._items.pop(key, None)
            while self._items and len(self._items) >= self.limit:
                del self._items[next(iter(self._items))]
        self._items[key] = (identity, value)
        return value

    def get(self, key: str) -> T | None:
        found = self._items.get(key)
        return found[1] if found is not None else None

    def forget(self, key: str) -> None:
        self._items.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)


class Expectations(Generic[V]):
    """Items this process wrote, each with a value, until the cache shows them or ``ttl`` passes."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._items: dict[str, tuple[float, V]] = {}

    def expect(self, item: str, value: V) -> None:
        """Record a write of ``item`` (monotonic time from ``clock``)."""
        self._items[item] = (self.clock(), value)

    def observe(self, item: str) -> None:
        """The cache showed ``item`` (or the write failed): stop expecting it."""
        self._items.pop(item, None)

    def pending(self, seen: Callable[[str], bool] = lambda item: False) -> dict[str, V]:
        """Drop what ``seen`` says the cache shows, and what is older than ``ttl``; return the rest."""
        now = self.clock()
        for item, (since, _) in list(self._items.items()):
            if seen(item) or now - since > self.ttl:
                del self._items[item]
        return {item: value for item, (_, value) in self._items.items()}

    def get(self, item: str) -> V | None:
        found = self._items.get(item)
        return found[1] if found is not None else None

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)
