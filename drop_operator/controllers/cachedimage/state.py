"""What the reconciler remembers about one CachedImage between passes.

Memory is the working copy; the API server holds what must survive a restart, in bounded form:

* cached nodes -> the image's record, an owned ConfigMap (see
  :mod:`~drop_operator.controllers.common.nodecache`), written by :mod:`.records`; in memory a
  compact :class:`~drop_operator.controllers.common.nodeset.CachedNodes` (4 bytes per node),
* failures -> ``status.recentFailures`` (at most ten, one entry per node, newest first); on start
  the backoff of those nodes is seeded from it, so a restart does not retry every failing node at
  once. Failure counts of nodes beyond those ten restart from one.

One :class:`ImageState` is kept for every image, so it has slots, and the set of recorded pods
is a shared empty ``frozenset`` until a pod is recorded (an empty ``set`` is 216 bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drop_operator.api import NodeFailure
from drop_operator.api.cachedimage import MAX_RECENT_FAILURES
from drop_operator.controllers.cachedimage.pacing import Pacing, backoff_delay
from drop_operator.controllers.common import nodecache
from drop_operator.controllers.common.nodeset import CachedNodes

__all__ = ["ImageState", "NodeFailureState"]


_NO_PODS: frozenset[str] = frozenset()


@dataclass(slots=True)
class NodeFailureState:
    """Consecutive failures of one node for this image, and when it may be retried (unix time)."""

    failures: int
    retry_at: float
    reason: str
    message: str
    time: datetime


@dataclass(slots=True)
class ImageState:
    """Per-image memory; bounded by the number of nodes."""

    uid: str
    reference: str
    cached: CachedNodes = field(default_factory=CachedNodes)
    """Node key -> unix time of the last successful pull."""
    failures: dict[str, NodeFailureState] = field(default_factory=dict)
    """Node name -> failure state (cleared by a success)."""
    recent: list[NodeFailure] = field(default_factory=list)
    recorded: AbstractSet[str] = _NO_PODS
    """UIDs of finished pods whose result was recorded (the pod may still be in the cache); read
    it, change it with :meth:`mark_recorded` and :meth:`keep_recorded`."""
    digest: str | None = None
    size: int | None = None
    """Bytes, as a kubelet reported the image in ``status.images`` (see :mod:`.imagelist`)."""
    last_pulled: datetime | None = None
    rolling_out: bool = False
    written_status: bytes | None = None
    """:func:`~.status.wire_digest` of the status last written (the cache may not show it yet)."""
    written_material: bytes | None = None
    """The digest of what of that status may not wait while pulls go on (conditions, targets...)."""
    status_memo: tuple[Hashable, float | None] | None = None
    """While the image has work left: what fed the last status built (the object's version and
    every other input), and what came of it: None when it matched the written or stored status,
    else the ``status_at`` its write was put off from. See ``CachedImageReconciler._write_status``."""
    written_version: int | None = None
    """``cached.version`` when the record last held exactly ``cached`` (None: not known to)."""
    last_flush: float = 0.0

    @classmethod
    def load(
        cls,
        uid: str,
        reference: str,
        stored: bytes | str | None,
        *,
        recent: Iterable[NodeFailure],
        pacing: Pacing,
        rand: Callable[[], float],
    ) -> ImageState:
        """Rebuild memory from the object: cached nodes from what :func:`~.nodecache.stored` found
        (the record's payload, or a version-1 annotation to migrate), backoff from failures."""
        cached = CachedNodes.from_pairs(nodecache.pairs(reference, stored))
        state = cls(uid=uid, reference=reference, cached=cached)
        if isinstance(stored, bytes):
            state.written_version = cached.version  # the record holds it already
        for failure in recent:
            if failure.node in state.failures:
                continue
            when = failure.time if failure.time.tzinfo else failure.time.replace(tzinfo=UTC)
            state.failures[failure.node] = NodeFailureState(
                failures=1,
                retry_at=when.timestamp() + backoff_delay(1, pacing, rand()),
                reason=failure.reason,
                message=failure.message,
                time=when,
            )
            state.recent.append(failure)
        return state

    def mark_recorded(self, pod_uid: str) -> None:
        """The result of pod ``pod_uid`` was recorded: never record it again."""
        if isinstance(self.recorded, set):
            self.recorded.add(pod_uid)
        else:
            self.recorded = {*self.recorded, pod_uid}

    def keep_recorded(self, live: AbstractSet[str]) -> None:
        """Forget recorded pods not in ``live`` (the pod UIDs still in the cache)."""
        if self.recorded:
            self.recorded = (self.recorded & live) or _NO_PODS

    def record_success(self, node: str, when: datetime, digest: str | None) -> bool:
        """Mark ``node`` cached; returns True when the node had been failing (a recovery)."""
        self.cached[nodecache.node_key(node)] = when.timestamp()
        recovered = self.failures.pop(node, None) is not None
        self.recent = [f for f in self.recent if f.node != node]
        if digest:
            self.digest = digest
        if self.last_pulled is None or when > self.last_pulled:
            self.last_pulled = when
        return recovered

    def record_failure(
        self, node: str, reason: str, message: str, *, when: datetime, pacing: Pacing, rand: float
    ) -> NodeFailureState:
        """Count a failure, schedule the retry with backoff, and keep it in the bounded list."""
        previous = self.failures.get(node)
        count = (previous.failures if previous else 0) + 1
        state = NodeFailureState(
            failures=count,
            retry_at=when.timestamp() + backoff_delay(count, pacing, rand),
            reason=reason,
            message=message,
            time=when,
        )
        self.failures[node] = state
        entry = NodeFailure(node=node, reason=reason, message=message[:1024], time=when)
        self.recent = [entry, *(f for f in self.recent if f.node != node)][:MAX_RECENT_FAILURES]
        return state

    def prune(self, existing_nodes: set[str]) -> None:
        """Forget failures of nodes that no longer exist (cached keys are pruned when flushing)."""
        for node in [n for n in self.failures if n not in existing_nodes]:
            del self.failures[node]
