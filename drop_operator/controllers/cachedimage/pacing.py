"""Pull pacing: the limits of a PullPolicy, per-node failure backoff, and admission of new pulls.

The limits (all counted over *pulls in flight*, i.e. pull pods not yet finished):

* ``maxConcurrentNodes`` per image,
* ``maxConcurrentPulls`` across every image using the same policy (images without a policy share
  one pool with the defaults),
* ``maxPullsPerNode`` per node across the images of the policy,
* ``minDelayBetweenPulls`` between two pull starts under the policy (so also of one image).

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
    "LEDGER_TTL",
    "Admission",
    "Pacing",
    "PendingPull",
    "PoolGate",
    "PoolGates",
    "backoff_delay",
    "decide_admission",
    "repull_due",
]

#: Pool key of the images without ``pullPolicyRef`` (a PullPolicy name is never empty).
DEFAULT_POOL = ""
#: Seconds a created pod stays counted while the informer has not shown it. Only guards against a
#: pod created and deleted again before the informer saw it; it normally shows within milliseconds.
LEDGER_TTL = 120.0


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
) -> Admission:
    """Pick the candidate nodes (in priority order) that may start a pull now.

    Never exceeds any limit given the counts passed in. With ``minDelayBetweenPulls`` above zero at
    most one pull starts per call, and ``retry_after`` says when the next may. Nodes at their
    per-node limit are skipped, not waited for, so one busy node does not hold the others back.
    """
    if not candidates:
        return Admission([])
    if image_in_flight >= pacing.max_concurrent_nodes:
        return Admission([], blocked_by="maxConcurrentNodes")
    if pool_in_flight >= pacing.max_concurrent_pulls:
        return Admission([], blocked_by="maxConcurrentPulls")
    if pacing.min_delay > 0 and last_start is not None and now - last_start < pacing.min_delay:
        return Admission(
            [], retry_after=pacing.min_delay - (now - last_start), blocked_by="minDelayBetweenPulls"
        )
    room = min(
        pacing.max_concurrent_nodes - image_in_flight,
        pacing.max_concurrent_pulls - pool_in_flight,
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
    """Admission state of one pool: the lock, the ledger of unseen pods, the last start.

    The ledger is an :class:`~drop_operator.runtime.memory.Expectations` of pod names: a pod is
    counted from it until the informer shows it (then the cache counts it) or :data:`LEDGER_TTL`.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.lock = asyncio.Lock()
        self.pending: Expectations[PendingPull] = Expectations(LEDGER_TTL, clock)
        self.last_start: float | None = None

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
