"""When a DiscoveryPolicy's sources are queried: interval with jitter, spec changes, failure retries.

Three rules, all pure functions of the policy, its stored status and the clock, so they are tested
without a cluster and behave the same after an operator restart:

* **Spec edits apply now.** ``metadata.generation != status.observedGeneration`` makes every source
  due, whatever ``lastSyncTime`` says.
* **Interval with deterministic jitter.** A full sync runs when ``status.lastSyncTime`` plus the
  interval has passed. The interval is stretched or shrunk by up to ±10 % by a hash of the policy
  name, so policies applied together by GitOps do not hit their backends in lockstep, and a policy's
  period does not wander from one sync to the next.
* **Failing sources are retried sooner, with a floor.** A source that failed is retried before the
  next full sync, after a delay that doubles per consecutive failure from :data:`RETRY_FLOOR` up to
  the interval, never faster (a dead backend is never hammered every few milliseconds). A source
  whose Secret is missing or incomplete sent nothing to its backend; it doubles from
  :data:`SECRET_RETRY_FLOOR` instead.

Nothing here triggers a sync by itself: the reconciler asks :func:`decide_sync` and either runs what it
says or requeues after ``wait`` seconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "JITTER",
    "MIN_WAIT",
    "RETRY_FLOOR",
    "SECRET_RETRY_FLOOR",
    "SourceState",
    "SyncDecision",
    "decide_sync",
    "jitter_factor",
    "jittered_interval",
    "retry_delay",
]

#: Maximum relative deviation of a policy's interval (±10 %).
JITTER = 0.10
#: Shortest delay before a failing source is retried.
RETRY_FLOOR = 30.0
#: Shortest delay when the source failed before any request: its Secret is missing or incomplete.
#: Nothing is sent to a backend, and a Secret applied in the same file as its policy (as the
#: product docs show it, after the policy) should be picked up within seconds.
SECRET_RETRY_FLOOR = 5.0
#: Shortest requeue the gate ever asks for, so rounding can never produce a busy loop.
MIN_WAIT = 1.0


def jitter_factor(name: str, spread: float = JITTER) -> float:
    """A factor in ``[1 - spread, 1 + spread]`` that depends only on ``name``.

    SHA-256 rather than ``hash()``: Python salts string hashes per process, and the factor must be
    the same in every replica and after every restart.
    """
    digest = hashlib.sha256(name.encode()).digest()
    unit = int.from_bytes(digest[:8], "big") / float(2**64 - 1)  # [0, 1]
    return 1.0 + spread * (2.0 * unit - 1.0)


def jittered_interval(name: str, interval: float) -> float:
    """The policy's interval in seconds with its own deterministic jitter applied."""
    return interval * jitter_factor(name)


def retry_delay(failures: int, interval: float, floor: float = RETRY_FLOOR) -> float:
    """Delay before retrying a source after ``failures`` consecutive failures (1 = first failure).

    ``floor * 2^(failures-1)``, capped at ``interval``; the floor itself never exceeds the interval
    (an interval shorter than the floor simply means "retry at the next sync").
    """
    floor = min(floor, interval)
    exponent = max(0, min(failures - 1, 32))
    return min(interval, floor * 2.0**exponent)


@dataclass(frozen=True)
class SourceState:
    """What the gate needs to know of one source: is it failing, and when may it be retried."""

    healthy: bool
    retry_at: datetime | None = None
    """Earliest retry of a failing source; None means "as soon as the gate looks"."""


@dataclass(frozen=True)
class SyncDecision:
    """The gate's answer: which sources to run now (maybe none) and when to look again."""

    run: tuple[str, ...]
    full: bool
    """True for a full sync (spec change, first sync, interval passed): every source runs and
    ``lastSyncTime``/``observedGeneration`` advance. False for a retry of failing sources only."""
    reason: str
    """``spec-changed``, ``first-sync``, ``interval``, ``retry`` or ``not-due``."""
    wait: float = field(default=0.0)
    """Seconds until the next thing is due when nothing runs now."""


def decide_sync(
    *,
    name: str,
    now: datetime,
    generation: int | None,
    observed_generation: int | None,
    last_sync_time: datetime | None,
    interval: float,
    sources: Iterable[str],
    states: Mapping[str, SourceState],
) -> SyncDecision:
    """Decide what runs now.

    ``sources`` are the effective names in the spec; ``states`` are the known states by name (a
    source without a state has never run under this name, so it is due).
    """
    names = tuple(sources)
    if generation is not None and generation != observed_generation:
        return SyncDecision(run=names, full=True, reason="spec-changed")
    if last_sync_time is None:
        return SyncDecision(run=names, full=True, reason="first-sync")
    period = jittered_interval(name, interval)
    next_full = (last_sync_time - now).total_seconds() + period
    if next_full <= 0:
        return SyncDecision(run=names, full=True, reason="interval")
    retry: list[str] = []
    wait = next_full
    for source in names:
        state = states.get(source)
        if state is None:
            retry.append(source)
            continue
        if state.healthy:
            continue
        until = 0.0 if state.retry_at is None else (state.retry_at - now).total_seconds()
        if until <= 0:
            retry.append(source)
        else:
            wait = min(wait, until)
    if retry:
        return SyncDecision(run=tuple(retry), full=False, reason="retry")
    return SyncDecision(run=(), full=False, reason="not-due", wait=max(MIN_WAIT, wait))
