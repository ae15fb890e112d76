"""Rate-limited, delaying, de-duplicating queue of object keys (client-go's workqueue, in asyncio).

Semantics that the controllers rely on:

* A key is queued at most once (``dirty`` set) and handed to at most one worker at a time
  (``processing`` set). Adding a key that is being processed marks it dirty; :meth:`done` re-queues it,
  so a burst of 1 000 adds during one reconcile costs exactly one more reconcile.
* :meth:`add_after` delays an add; :meth:`add_rate_limited` delays by the larger of a per-key
  exponential backoff (5 ms * 2^n, capped at 1000 s) and an overall token bucket (10/s, burst 100);
  :meth:`forget` resets the key's backoff after a success.
* :meth:`add_debounced` coalesces a burst of events into one add (see :class:`Debounce`): the key
  is queued once no event came for ``quiet`` seconds, or ``max_delay`` seconds after the first event
  of the burst, whichever is sooner. Handing the key to a worker ends the burst: the reconcile reads
  the cache after that, so it sees every event before it, and only later events start a new one.
* :meth:`shutdown` stops intake: :meth:`get` returns ``None`` from then on, queued and delayed keys
  are dropped (the informers replay them on the next start), and :meth:`drain` waits for the keys in
  flight to be marked done.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from dataclasses import dataclass

from drop_operator.runtime import metrics
from drop_operator.runtime.clock import Clock, RealClock


class ItemExponentialLimiter:
    """Per-key exponential backoff: ``base * 2^failures``, capped."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[str, int] = {}

    def when(self, key: str, now: float) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        if n > 60:  # 2^60 * 5 ms is far past any cap; avoid float overflow
            return self.cap
        return min(self.base * 2.0**n, self.cap)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)


class TokenBucketLimiter:
    """Overall rate limit shared by all keys; over-budget adds are scheduled into the future."""

    def __init__(self, qps: float = 10.0, burst: int = 100) -> None:
        self.qps = qps
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def when(self, key: str, now: float) -> float:
        if self._last is not None:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: str) -> None:
        """Tokens are not per key; nothing to forget."""

    def failures(self, key: str) -> int:
        return 0


class DefaultRateLimiter:
    """controller-runtime's default: the maximum of the per-key backoff and the token bucket."""

    def __init__(self) -> None:
        self.item = ItemExponentialLimiter()
        self.bucket = TokenBucketLimiter()

    def when(self, key: str, now: float) -> float:
        return max(self.item.when(key, now), self.bucket.when(key, now))

    def forget(self, key: str) -> None:
        self.item.forget(key)

    def failures(self, key: str) -> int:
        return self.item.failures(key)


@dataclass(frozen=True)
class Debounce:
    """How :meth:`WorkQueue.add_debounced` coalesces a burst of events for one key (seconds).

    ``quiet``: the key is queued once this long passed without a new event for it; every event
    restarts the wait. ``max_delay``: the key is queued at the latest this long after the first
    event of the burst, however many follow, so a burst that never pauses still shows progress.
    """

    quiet: float
    max_delay: float

    def __post_init__(self) -> None:
        if not self.quiet > 0:
            raise ValueError(f"Debounce.quiet must be > 0 seconds, got {self.quiet!r}")
        if self.max_delay < self.quiet:
            raise ValueError(f"Debounce.max_delay ({self.max_delay!r}s) must be >= quiet ({self.quiet!r}s)")


class WorkQueue:
    """See the module docstring. All methods except :meth:`get`, :meth:`drain` are non-blocking."""

    def __init__(
        self,
        name: str,
        *,
        clock: Clock | None = None,
        rate_limiter: DefaultRateLimiter | None = None,
    ) -> None:
        self.name = name
        self.clock: Clock = clock or RealClock()
        self.rate_limiter = rate_limiter or DefaultRateLimiter()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: dict[str, float] = {}
        self._added_at: dict[str, float] = {}
        self._delayed: list[tuple[float, int, str]] = []
        self._delayed_due: dict[str, float] = {}
        self._debounce_deadline: dict[str, float] = {}
        """Keys whose pending delayed add is a debounce: the latest time it may fire."""
        self._seq = itertools.count()
        self._has_items = asyncio.Event()
        self._delay_changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._shutting_down = False
        self._delay_task: asyncio.Task[None] | None = None
        self._depth = metrics.WQ_DEPTH.labels(name=name)
        self._adds = metrics.WQ_ADDS.labels(name=name)
        self._retries = metrics.WQ_RETRIES.labels(name=name)
        self._queue_duration = metrics.WQ_QUEUE_DURATION.labels(name=name)
        self._work_duration = metrics.WQ_WORK_DURATION.labels(name=name)
        self._unfinished = metrics.WQ_UNFINISHED.labels(name=name)
        self._longest = metrics.WQ_LONGEST.labels(name=name)

    # -- intake ----------------------------------------------------------------------------------

    def add(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._adds.inc()
        self._dirty.add(key)
        if key in self._processing:
            return
        self._push(key)

    def _push(self, key: str) -> None:
        self._queue.append(key)
        self._added_at.setdefault(key, self.clock.now())
        self._depth.set(len(self._queue))
        self._has_items.set()

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds passed; an earlier pending schedule for it wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        due = self.clock.now() + delay
        current = self._delayed_due.get(key)
        if current is not None and current <= due:
            deadline = self._debounce_deadline.get(key)
            if deadline is not None and due < deadline:
                self._debounce_deadline[key] = due  # a burst going on must not push this add later
            return
        self._debounce_deadline.pop(key, None)  # this earlier add covers the burst's events
        self._schedule(key, due)

    def add_debounced(self, key: str, debounce: Debounce) -> None:
        """Add ``key`` once its events pause for ``debounce.quiet`` seconds, at the latest
        ``debounce.max_delay`` seconds after the first of them (see :class:`Debounce`).

        An event for a key that is queued already, or due sooner by :meth:`add_after`, changes
        nothing: that pass reads the cache after the event. A key being processed is queued again
        (once) when its burst ends, as :meth:`add` would.
        """
        if self._shutting_down or key in self._dirty:
            return
        now = self.clock.now()
        deadline = self._debounce_deadline.get(key)
        if deadline is None:
            current = self._delayed_due.get(key)
            if current is not None and current <= now + debounce.quiet:
                return
            deadline = now + debounce.max_delay
            if current is not None:
                deadline = min(deadline, current)  # never later than what was asked before
        due = min(now + debounce.quiet, deadline)
        self._debounce_deadline[key] = deadline
        if self._delayed_due.get(key) != due:
            self._schedule(key, due)

    def _schedule(self, key: str, due: float) -> None:
        """Make ``due`` the one pending delayed add of ``key`` (entries of other times go stale)."""
        self._delayed_due[key] = due
        heapq.heappush(self._delayed, (due, next(self._seq), key))
        self._ensure_delay_loop()
        self._delay_changed.set()

    def add_rate_limited(self, key: str) -> None:
        self._retries.inc()
        self.add_after(key, self.rate_limiter.when(key, self.clock.now()))

    def forget(self, key: str) -> None:
        self.rate_limiter.forget(key)

    def num_requeues(self, key: str) -> int:
        return self.rate_limiter.failures(key)

    # -- processing ------------------------------------------------------------------------------

    async def get(self) -> str | None:
        """Next key to process, or ``None`` once the queue is shut down."""
        while not self._queue:
            if self._shutting_down:
                return None
            self._has_items.clear()
            await self._has_items.wait()
        if self._shutting_down:
            return None
        key = self._queue.popleft()
        self._depth.set(len(self._queue))
        now = self.clock.now()
        added = self._added_at.pop(key, now)
        self._queue_duration.observe(max(0.0, now - added))
        self._processing[key] = now
        self._idle.clear()
        self._dirty.discard(key)
        if self._debounce_deadline.pop(key, None) is not None:
            self._delayed_due.pop(key, None)  # this pass sees the burst's events; the entry goes stale
        return key

    def done(self, key: str) -> None:
        """Mark ``key`` processed; if it was re-added meanwhile, queue it again."""
        started = self._processing.pop(key, None)
        if started is not None:
            self._work_duration.observe(max(0.0, self.clock.now() - started))
        if key in self._dirty and not self._shutting_down:
            self._push(key)
        if not self._processing:
            self._idle.set()

    # -- lifecycle -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop intake; workers waiting in :meth:`get` receive ``None``."""
        self._shutting_down = True
        self._queue.clear()
        self._dirty.clear()
        self._delayed.clear()
        self._delayed_due.clear()
        self._debounce_deadline.clear()
        self._depth.set(0)
        self._has_items.set()
        self._delay_changed.set()
        if self._delay_task is not None:
            self._delay_task.cancel()

    async def drain(self, within: float | None = None) -> bool:
        """Wait until no key is being processed; ``False`` if ``within`` seconds passed first."""
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> frozenset[str]:
        return frozenset(self._processing)

    def oldest_processing_seconds(self) -> float:
        if not self._processing:
            return 0.0
        return self.clock.now() - min(self._processing.values())

    def unfinished_seconds(self) -> float:
        now = self.clock.now()
        return sum(now - started for started in self._processing.values())

    def update_progress_metrics(self) -> None:
        """Refresh the stuck-work gauges; called periodically by the controller."""
        self._unfinished.set(self.unfinished_seconds())
        self._longest.set(self.oldest_processing_seconds())

    # -- delaying --------------------------------------------------------------------------------

    def _ensure_delay_loop(self) -> None:
        if self._delay_task is None or self._delay_task.done():
            self._delay_task = asyncio.get_running_loop().create_task(
                self._delay_loop(), name=f"workqueue-delay-{self.name}"
            )

    async def _delay_loop(self) -> None:
        while not self._shutting_down:
            now = self.clock.now()
            while self._delayed and self._delayed[0][0] <= now:
                due, _, key = heapq.heappop(self._delayed)
                if self._delayed_due.get(key) == due:
                    del self._delayed_due[key]
                    self._debounce_deadline.pop(key, None)
                    self.add(key)
            timeout = self._delayed[0][0] - now if self._delayed else None
            self._delay_changed.clear()
            await self.clock.wait(self._delay_changed, timeout)
