"""One image's target nodes and the ones still waiting for it, kept between passes.

A pass must not look at every target node: on a large cluster most of them hold the image already
and nothing about them changed. :class:`Track` keeps, per image,

* ``targets``: the target nodes that run one of its platforms (``incompatible`` the others), from
  the targeting class's members (:mod:`.targetindex`);
* ``uncached``: the targets not known to hold the image (``state.cached``), which the status
  counts and the candidates come from;
* a heap of the *fresh* uncached nodes (never tried, not failing) by node key, the order pulls start
  in (:func:`~.decide.classify_nodes`), so a pass takes the first few without sorting them all;
* ``watch``: nodes a pass wants to see again (candidates it could not start, pulls listed as gone
  but still within the report grace).

A pass then classifies only :meth:`Track.check`: the nodes that changed (:meth:`Track.apply_dirty`),
the watched and failing ones, the warming ones, and the first fresh ones — enough for any admission.
A *full* pass (first pass, new state, targeting or platforms, a re-pull due, and a slow periodic
safety net) classifies every target and rebuilds the track.

A track is kept for every image, and most of its node sets are empty most of the time (no node
incompatible or watched, every target cached): an empty one is the shared :data:`NO_NODES`, not a
216-byte ``set`` of its own, and a set is made when a node joins (:func:`_with`, :func:`_without`).
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from drop_operator.controllers.cachedimage.nodes import runs_platform, split_by_platform
from drop_operator.controllers.cachedimage.pacing import repull_due
from drop_operator.controllers.cachedimage.state import ImageState
from drop_operator.discovery.platforms import Platform

__all__ = ["FULL_RECHECK", "NO_NODES", "Track"]

FULL_RECHECK = 600.0
"""Seconds between full passes of an image even when no event asked for one: a safety net for what
events cannot tell (an image listed nowhere on a node whose list stays cut, a lost event)."""

Obj = Mapping[str, Any]

NO_NODES: frozenset[str] = frozenset()
"""The empty node set every track shares (see the module docstring)."""


def _with(nodes: AbstractSet[str], name: str) -> AbstractSet[str]:
    """``nodes`` with ``name`` added: the same set changed in place, or a new one."""
    if name in nodes:
        return nodes
    out = nodes if isinstance(nodes, set) else set(nodes)
    out.add(name)
    return out


def _without(nodes: AbstractSet[str], name: str) -> AbstractSet[str]:
    """``nodes`` without ``name``: the same set changed in place, or :data:`NO_NODES` once empty."""
    if name not in nodes:
        return nodes
    out = nodes if isinstance(nodes, set) else set(nodes)
    out.discard(name)
    return out or NO_NODES


@dataclass(slots=True)
class Track:
    """See the module docstring. ``state`` is the memory the track was built from. The node sets
    are read-only to callers (they may be :data:`NO_NODES`); ``watch`` is replaced, not changed."""

    state: ImageState
    targeting: str
    platforms: frozenset[Platform] | None
    targets: AbstractSet[str] = NO_NODES
    incompatible: AbstractSet[str] = NO_NODES
    uncached: AbstractSet[str] = NO_NODES
    fresh: list[tuple[str, str]] = field(default_factory=list)
    watch: AbstractSet[str] = NO_NODES
    full_at: float = 0.0
    """Wall time of the next full pass (periodic, or the first re-pull that comes due)."""
    unflushed: bool = True
    """``state.cached`` changed since the cached-nodes annotation was last compared."""
    status_at: float | None = None
    """Monotonic time of the last status write."""

    def fits(self, state: ImageState, targeting: str, platforms: frozenset[Platform] | None) -> bool:
        return state is self.state and targeting == self.targeting and platforms == self.platforms

    # -- maintenance ---------------------------------------------------------------------------------

    def rebuild(self, members: Collection[str], nodes: Mapping[str, Obj], keys: Mapping[str, str]) -> None:
        """Every target from scratch (a full pass)."""
        kept, left_out = split_by_platform({n: nodes[n] for n in members if n in nodes}, self.platforms)
        self.targets = set(kept) or NO_NODES
        self.incompatible = set(left_out) or NO_NODES
        self.refresh(self.targets, keys, rebuild=True)

    def apply_dirty(
        self,
        dirty: Iterable[str],
        members: Collection[str],
        nodes: Mapping[str, Obj],
        keys: Mapping[str, str],
    ) -> None:
        """Nodes whose targeting may have changed: in or out of ``targets`` again."""
        for name in dirty:
            node = nodes.get(name)
            if node is None or name not in members:
                self.targets = _without(self.targets, name)
                self.incompatible = _without(self.incompatible, name)
                self.uncached = _without(self.uncached, name)
                continue
            if self.platforms and not runs_platform(node, self.platforms):
                self.targets = _without(self.targets, name)
                self.uncached = _without(self.uncached, name)
                self.incompatible = _with(self.incompatible, name)
                continue
            self.incompatible = _without(self.incompatible, name)
            if name not in self.targets:
                self.targets = _with(self.targets, name)
                self.refresh((name,), keys)

    def refresh(self, names: Iterable[str], keys: Mapping[str, str], *, rebuild: bool = False) -> None:
        """Re-read from ``state`` whether each of ``names`` holds the image (after a pass changed it)."""
        cached, failures = self.state.cached, self.state.failures
        if rebuild:
            self.uncached = NO_NODES
            self.fresh = []
        for name in names:
            if name not in self.targets:
                continue
            key = keys.get(name)
            if key is not None and key in cached:
                self.uncached = _without(self.uncached, name)
                continue
            if name in self.uncached and not rebuild:
                continue
            self.uncached = _with(self.uncached, name)
            if key is not None and name not in failures:
                if rebuild:
                    self.fresh.append((key, name))
                else:
                    heapq.heappush(self.fresh, (key, name))
        if rebuild:
            heapq.heapify(self.fresh)
        elif len(self.fresh) > 2 * len(self.uncached) + 64:
            # Stale entries (dropped lazily by first_fresh) outgrew the live ones: rebuild the heap.
            failures = self.state.failures
            self.fresh = [(k, n) for k, n in set(self.fresh) if n in self.uncached and n not in failures]
            heapq.heapify(self.fresh)

    # -- reading -------------------------------------------------------------------------------------

    def first_fresh(self, count: int) -> list[str]:
        """The first ``count`` uncached, never-failed targets in pull order (node key)."""
        failures = self.state.failures
        taken: list[tuple[str, str]] = []
        seen: set[str] = set()
        while self.fresh and len(taken) < count:
            entry = heapq.heappop(self.fresh)
            name = entry[1]
            if name in seen or name not in self.uncached or name in failures:
                continue  # stale (cached, failing or no target any more) or a duplicate
            seen.add(name)
            taken.append(entry)
        for entry in taken:
            heapq.heappush(self.fresh, entry)
        return [name for _, name in taken]

    def check(self, dirty: Iterable[str], *, fresh: int, warming: Collection[str]) -> set[str]:
        """The targets an incremental pass classifies (see the module docstring)."""
        targets = self.targets
        out = {n for n in dirty if n in targets}
        out.update(n for n in self.watch if n in targets)
        out.update(n for n in self.state.failures if n in targets)
        out.update(n for n in warming if n in self.uncached)
        out.update(self.first_fresh(fresh))
        return out

    def cached_count(self, pulling: Collection[str]) -> int:
        """Targets holding the image with no pull in flight (a re-pull counts as pulling)."""
        repulling = sum(1 for n in pulling if n in self.targets and n not in self.uncached)
        return len(self.targets) - len(self.uncached) - repulling

    def note_cached(self, node_keys: Iterable[str], repull_interval: float | None) -> None:
        """Nodes that hold the image since this pass: their re-pull, when due, needs a full pass."""
        if not repull_interval:
            return
        cached = self.state.cached
        for key in node_keys:
            pulled = cached.get(key)
            if pulled is not None:
                self.full_at = min(self.full_at, repull_due(pulled, repull_interval, int(key, 16)))

    def plan_full(self, now: float, repull_interval: float | None, keys: Mapping[str, str]) -> None:
        """After a full pass: when the next one is due (periodic, or the first re-pull)."""
        due = now + FULL_RECHECK
        if repull_interval:
            cached = self.state.cached
            for name in self.targets:
                key = keys.get(name)
                pulled = cached.get(key) if key is not None else None
                if key is not None and pulled is not None:
                    at = repull_due(pulled, repull_interval, int(key, 16))
                    if now < at < due:
                        due = at
        self.full_at = due
