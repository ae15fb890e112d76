"""Pull pacing: the limits of a PullPolicy, per-node failure backoff, and admission of new pulls.

The limits (all counted over *pulls in flight*, i.e. pull pods not yet finished):

* ``maxConcurrentNodes`` per image,
* ``maxConcurrentPulls`` across every image using the same policy (images without a policy share
  one pool with the defaults),
* ``maxPullsPerNode`` per node across the images of the policy,
* ``minDelayBetweenPulls`` between two pull starts under the policy (so also of one image).

When pulls of several images wait for room in one pool, the best :data:`Priority` goes first: each
image that could not start every pull it wanted leaves a :class:`Demand` in the gate, and another
image may only use the room left after the demands ranked before its own
(:func:`reserved_slots`). Without this, which image got a freed slot depended on reconcile order.

The counts come from the Pod informer, which may lag behind the API server. :class:`PoolGate`
closes that gap: admission for one policy is serialized by its lock, and every pod created is
recorded in the gate's ledger *before* the create call and stays counted until the informer has
seen it. A reconcile running on a stale cache therefore still sees every pull the operator started,
and the limits hold even when reconciles of different images race.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from drop_operator.api import DEFAULT_PULL_POLICY, PullPolicySpec, parse_duration
from drop_operator.runtime.memory import Expectations

__all__ = [
    "DEFAULT_POOL",
    "DEMAND_TTL",
    "LEDGER_TTL",
    "Admission",
    "Demand",
    "Pacing",
    "PendingPull",
    "PoolGate",
    "PoolGates",
    "Priority",
    "backoff_delay",
    "decide_admission",
    "priority",
    "repull_due",
    "reserved_slots",
]

#: Pool key of the images without ``pullPolicyRef`` (a PullPolicy name is never empty).
DEFAULT_POOL = ""
#: Seconds a created pod stays counted while the informer has not shown it. Only guards against a
#: pod created and deleted again before the informer saw it; it normally shows within milliseconds.
LEDGER_TTL = 120.0
#: Seconds a demand stays counted without being renewed. A waiting image renews its demand on every
#: pass, and looks again at least every few seconds (``POOL_RECHECK``), so only the demand of an image
#: that stopped reconciling (deleted, moved to another pool) ever runs out.
DEMAND_TTL = 30.0

Priority = tuple[int, int, str]
"""Admission order of an image's pulls, smaller first: (0 when it has a warming node to pull on, else
1; its rank, unranked last; its name, so ties are stable)."""

_UNRANKED = 1 << 30


def priority(name: str, rank: int | None, *, warming: bool = False) -> Priority:
    """The :data:`Priority` of image ``name`` with ``spec.rank`` ``rank``."""
    return (0 if warming else 1, _UNRANKED if rank is None else rank, name)


@dataclass(frozen=True)
class Demand:
    """Pulls an image could start at once but found no room for in its pool."""

    priority: Priority
    slots: int
    since: float
    """Monotonic seconds when the demand was (re)stated."""


def reserved_slots(mine: Priority, demands: Mapping[str, Demand], *, now: float) -> int:
    """Pool slots held back for demands ranked before ``mine`` and younger than :data:`DEMAND_TTL`."""
    return sum(d.slots for d in demands.values() if d.priority < mine and now - d.since < DEMAND_TTL)


@dataclass(frozen=True)
class Pacing:
    """A PullPolicy's limits in seconds and counts, ready for arithmetic."""

    max_concurrent_nodes: int
    max_concurrent_pulls: int
    max_pulls_per_node: int
    min_delay: float
    backoff_initial: float
    backoff_max: float
    backoff_jitter: float
    pull_timeout: float
    repull_interval: float | None

    @classmethod
    def from_spec(cls, spec: PullPolicySpec) -> Pacing:
        return cls(
            max_concurrent_nodes=spec.max_concurrent_nodes,
            max_concurrent_pulls=spec.max_concurrent_pulls,
            max_pulls_per_node=spec.max_pulls_per_node,
            min_delay=max(0.0, parse_duration(spec.min_delay_between_pulls)),
            backoff_initial=parse_duration(spec.failure_backoff.initial),
            backoff_max=parse_duration(spec.failure_backoff.max),
            backoff_jitter=spec.failure_backoff.jitter,
            pull_timeout=parse_duration(spec.pull_timeout),
            repull_interval=parse_duration(spec.repull_interval) if spec.repull_interval else None,
        )

    @classmethod
    def default(cls) -> Pacing:
        return cls.from_spec(DEFAULT_PULL_POLICY)


def backoff_delay(failures: int, pacing: Pacing, rand: float) -> float:
    """Delay before retrying a node after its ``failures``-th consecutive failure (``failures >= 1``).

    ``initial * 2^(failures-1)``, capped at ``max``; then +/- ``jitter`` (``rand`` in [0, 1) maps to
    -jitter..+jitter) and capped at ``max`` again, so the cap is a real upper bound.
    """
    exponent = min(max(failures, 1) - 1, 60)
    base = min(pacing.backoff_max, pacing.backoff_initial * math.pow(2.0, exponent))
    jittered = base * (1.0 + pacing.backoff_jitter * (2.0 * rand - 1.0))
    return max(0.0, min(pacing.backoff_max, jittered))


def repull_due(pulled_at: float, interval: float, spread_key: int) -> float:
    """When a node pulled at ``pulled_at`` is due again: ``interval`` stretched by 0..+10 %.

    ``spread_key`` (a hash of the node name) makes the stretch deterministic per node, so nodes that
    were cached in one burst come due spread out rather than all at the same instant.
    """
    return pulled_at + interval * (1.0 + (spread_key % 1000) / 10000.0)


@dataclass(frozen=True)
class Admission:
    """What may start now, and when to look again if something is still waiting."""

    start: list[str]
    retry_after: float | None = None
    blocked_by: str | None = None
    """``maxConcurrentNodes``, ``maxConcurrentPulls``, ``maxPullsPerNode`` or ``minDelayBetweenPulls``."""


def decide_admission(
    candidates: Sequence[str],
    pacing: Pacing,
    *,
    image_in_flight: int,
    pool_in_flight: int,
    node_in_flight: Mapping[str, int],
    last_start: float | None,
    now: float,
    reserved: int = 0,
) -> Admission:
    """Pick the candidate nodes (in priority order) that may start a pull now.

    ``reserved`` pool slots are kept for better-ranked images (:func:`reserved_slots`): they count
    as in flight for ``maxConcurrentPulls``. Never exceeds any limit given the counts passed in. With ``minDelayBetweenPulls`` above zero at
    most one pull starts per call, and ``retry_after`` says when the next may. Nodes at their
    per-node limit are skipped, not waited for, so one busy node does not hold the others back.
    """
    if not candidates:
        return Admission([])
    if image_in_flight >= pacing.max_concurrent_nodes:
        return Admission([], blocked_by="maxConcurrentNodes")
    if pool_in_flight + reserved >= pacing.max_concurrent_pulls:
        return Admission([], blocked_by="maxConcurrentPulls")
    if pacing.min_delay > 0 and last_start is not None and now - last_start < pacing.min_delay:
        return Admission(
            [], retry_after=pacing.min_delay - (now - last_start), blocked_by="minDelayBetweenPulls"
        )
    room = min(
        pacing.max_concurrent_nodes - image_in_flight,
        pacing.max_concurrent_pulls - pool_in_flight - reserved,
        1 if pacing.min_delay > 0 else len(candidates),
    )
    start: list[str] = []
    skipped_busy_node = False
    for node in candidates:
        if len(start) >= room:
            break
        if node_in_flight.get(node, 0) >= pacing.max_pulls_per_node:
            skipped_busy_node = True
            continue
        start.append(node)
    remaining = len(candidates) - len(start)
    if remaining and pacing.min_delay > 0 and start:
        return Admission(start, retry_after=pacing.min_delay, blocked_by="minDelayBetweenPulls")
    if not start and skipped_busy_node:
        return Admission([], blocked_by="maxPullsPerNode")
    return Admission(start)


@dataclass
class PendingPull:
    """A pull pod created (or being created) that the Pod informer has not shown yet."""

    name: str
    image: str
    node: str
    created: float


class PoolGate:
    """Admission state of one pool: the lock, the ledger of unseen pods, the last start, the demands.

    The ledger is an :class:`~drop_operator.runtime.memory.Expectations` of pod names: a pod is
    counted from it until the informer shows it (then the cache counts it) or :data:`LEDGER_TTL`.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.lock = asyncio.Lock()
        self.pending: Expectations[PendingPull] = Expectations(LEDGER_TTL, clock)
        self.last_start: float | None = None
        self.demands: dict[str, Demand] = {}
        """By image key: what each waiting image still wants to start."""

    def record(self, pull: PendingPull) -> None:
        self.pending.expect(pull.name, pull)
        self.last_start = pull.created

    def forget(self, name: str) -> None:
        self.pending.observe(name)

    def unseen(self, seen: Callable[[str], bool]) -> list[PendingPull]:
        """Ledger entries the cache does not show yet (``seen`` asks it), younger than the ttl."""
        return list(self.pending.pending(seen).values())


class PoolGates:
    """One :class:`PoolGate` per pool, created on first use."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._gates: dict[str, PoolGate] = {}
        self.clock = clock

    def gate(self, pool: str) -> PoolGate:
        found = self._gates.get(pool)
        if found is None:
            found = self._gates[pool] = PoolGate(self.clock)
        return found

    def observe(self, name: str) -> None:
        """The cache showed pod ``name``: it is counted from the cache (or gone) from now on.

        Without this, a pod that finished and was deleted before the next admission check in its
        pool would stay in the ledger, taking a slot, until the ttl.
        """
        for gate in self._gates.values():
            gate.forget(name)

    def drop_demand(self, key: str, *, keep_in: str | None = None) -> None:
        """Image ``key`` wants nothing (any more) in any pool but ``keep_in``."""
        for pool, gate in self._gates.items():
            if pool != keep_in:
                gate.demands.pop(key, None)
