"""Workqueue semantics with a fake clock: dedup, backoff, delays, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from drop_operator.runtime.clock import FakeClock
from drop_operator.runtime.workqueue import Debounce, DefaultRateLimiter, TokenBucketLimiter, WorkQueue


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_key_added_1000_times_while_processing_is_processed_at_most_twice() -> None:
    queue = WorkQueue("dedup", clock=FakeClock())
    processed: list[str] = []
    release = asyncio.Event()
    in_flight = asyncio.Event()

    async def worker() -> None:
        while (key := await queue.get()) is not None:
            processed.append(key)
            in_flight.set()
            await release.wait()
            queue.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    queue.add("ns/a")
    await asyncio.wait_for(in_flight.wait(), 2)
    for _ in range(1000):
        queue.add("ns/a")
    await settle()
    assert processed == ["ns/a"], "a key in flight must not reach a second worker"
    assert len(queue) == 0, "re-adds during processing wait in the dirty set, not in the queue"
    release.set()
    await settle()
    assert processed == ["ns/a", "ns/a"]
    await settle()
    assert processed == ["ns/a", "ns/a"]
    queue.shutdown()
    await asyncio.wait_for(asyncio.gather(*workers), 2)


async def test_distinct_keys_are_each_processed_once() -> None:
    queue = WorkQueue("distinct", clock=FakeClock())
    for key in ["a", "b", "a", "c", "b"]:
        queue.add(key)
    got = []
    for _ in range(3):
        key = await asyncio.wait_for(queue.get(), 1)
        assert key is not None
        got.append(key)
        queue.done(key)
    assert got == ["a", "b", "c"]
    assert len(queue) == 0


async def test_failures_back_off_exponentially_and_forget_resets() -> None:
    clock = FakeClock()
    queue = WorkQueue("backoff", clock=clock)
    expected = [0.005 * 2**n for n in range(8)]
    for delay in expected:
        queue.add_rate_limited("k")
        await settle()
        assert len(queue) == 0
        await clock.advance(delay * 0.9)
        assert len(queue) == 0, f"retry fired before {delay}s"
        await clock.advance(delay * 0.11)
        assert len(queue) == 1, f"retry did not fire at {delay}s"
        key = await queue.get()
        assert key == "k"
        queue.done("k")
    assert queue.num_requeues("k") == 8
    queue.forget("k")
    assert queue.num_requeues("k") == 0
    queue.shutdown()


def test_backoff_is_capped_at_1000_seconds() -> None:
    limiter = DefaultRateLimiter()
    delays = [limiter.item.when("k", 0.0) for _ in range(40)]
    assert delays[0] == 0.005
    assert max(delays) == 1000.0
    assert delays[-1] == 1000.0


def test_token_bucket_allows_burst_then_10_per_second() -> None:
    bucket = TokenBucketLimiter(qps=10, burst=100)
    delays = [bucket.when(f"k{i}", 0.0) for i in range(110)]
    assert all(d == 0 for d in delays[:100])
    assert delays[100] == pytest.approx(0.1)
    assert delays[109] == pytest.approx(1.0)
    assert bucket.when("later", 100.0) == 0.0  # refilled


async def test_add_after_fires_on_time_and_earliest_schedule_wins() -> None:
    clock = FakeClock()
    queue = WorkQueue("delay", clock=clock)
    queue.add_after("a", 10)
    queue.add_after("b", 5)
    queue.add_after("a", 30)  # later schedule for a pending key is ignored
    await settle()
    await clock.advance(4.99)
    assert len(queue) == 0
    await clock.advance(0.02)
    assert len(queue) == 1
    assert await queue.get() == "b"
    queue.done("b")
    await clock.advance(4.9)
    assert len(queue) == 0
    await clock.advance(0.2)
    assert len(queue) == 1
    assert await queue.get() == "a"
    queue.done("a")
    await clock.advance(60)
    assert len(queue) == 0, "a must fire once, not again at 30s"
    queue.shutdown()


async def test_shutdown_drains_in_flight_and_stops_intake() -> None:
    queue = WorkQueue("drain", clock=FakeClock())
    queue.add("busy")
    queue.add("waiting")
    key = await queue.get()
    assert key == "busy"
    getter = asyncio.create_task(queue.get())
    second = await asyncio.wait_for(getter, 1)
    assert second == "waiting"
    queue.done("waiting")
    idle_getter = asyncio.create_task(queue.get())
    await settle()
    queue.shutdown()
    assert await asyncio.wait_for(idle_getter, 1) is None
    queue.add("new")
    queue.add_after("later", 1)
    assert len(queue) == 0
    drained = asyncio.create_task(queue.drain(within=5))
    await settle()
    assert not drained.done(), "drain must wait for the key still in flight"
    queue.done("busy")
    assert await asyncio.wait_for(drained, 1) is True
    assert await queue.get() is None


async def test_drain_times_out_when_work_is_stuck() -> None:
    queue = WorkQueue("stuck")
    queue.add("k")
    assert await queue.get() == "k"
    queue.shutdown()
    assert await queue.drain(within=0.05) is False


# -- debounced adds ----------------------------------------------------------------------------------

DEBOUNCE = Debounce(quiet=1.0, max_delay=5.0)


class Recorder:
    """A worker that notes when (clock time since start) each key was handed out, then marks it done."""

    def __init__(self, queue: WorkQueue, clock: FakeClock) -> None:
        self.queue, self.clock, self.start = queue, clock, clock.now()
        self.got: list[tuple[float, str]] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while (key := await self.queue.get()) is not None:
            self.got.append((round(self.clock.now() - self.start, 3), key))
            self.queue.done(key)

    async def stop(self) -> None:
        self.queue.shutdown()
        await asyncio.wait_for(self.task, 1)


async def step(clock: FakeClock, seconds: float, tick: float = 0.1) -> None:
    for _ in range(round(seconds / tick)):
        await clock.advance(tick)


async def test_a_burst_that_pauses_costs_one_add_after_the_quiet_period() -> None:
    clock = FakeClock()
    queue = WorkQueue("debounce-pause", clock=clock)
    worker = Recorder(queue, clock)
    for _ in range(7):  # 7 events, 0.5 s apart: the quiet period keeps restarting
        queue.add_debounced("set", DEBOUNCE)
        await step(clock, 0.5)
    assert worker.got == []
    await step(clock, 0.6)  # 1.1 s after the last event
    assert worker.got == [(4.0, "set")]
    await step(clock, 10)
    assert len(worker.got) == 1, "one burst, one add"
    await worker.stop()


async def test_a_burst_that_never_pauses_is_added_every_max_delay() -> None:
    clock = FakeClock()
    queue = WorkQueue("debounce-bound", clock=clock)
    worker = Recorder(queue, clock)
    for _ in range(200):  # 20 s of events, 0.1 s apart
        queue.add_debounced("set", DEBOUNCE)
        await clock.advance(0.1)
    await step(clock, 2)
    times = [t for t, _ in worker.got]
    # Each add ends a burst; the next event starts another: 200 events, 4 adds, the last one
    # covering the last event (at 19.9 s).
    assert times == [5.0, 10.0, 15.0, 20.0], "progress shows every max_delay while events go on"
    await worker.stop()


async def test_events_before_a_key_is_handed_out_are_covered_by_that_pass() -> None:
    clock = FakeClock()
    queue = WorkQueue("debounce-covered", clock=clock)
    queue.add_debounced("set", DEBOUNCE)
    queue.add("set")  # e.g. the set's own spec changed: queued at once
    assert await queue.get() == "set"
    queue.done("set")
    await step(clock, 10)
    assert len(queue) == 0, "the pending debounce ended with the pass that read the cache after it"

    queue.add("other")
    queue.add_debounced("other", DEBOUNCE)  # queued already: nothing more to schedule
    assert await queue.get() == "other"
    queue.done("other")
    await step(clock, 10)
    assert len(queue) == 0
    queue.shutdown()


async def test_events_during_a_pass_queue_the_key_once_after_the_quiet_period() -> None:
    clock = FakeClock()
    queue = WorkQueue("debounce-processing", clock=clock)
    queue.add("set")
    assert await queue.get() == "set"
    for _ in range(100):
        queue.add_debounced("set", DEBOUNCE)
    await step(clock, 0.5)
    queue.done("set")
    assert len(queue) == 0, "not at once: the burst is still going on"
    await step(clock, 0.6)
    assert len(queue) == 1
    assert await queue.get() == "set"
    queue.done("set")
    await step(clock, 10)
    assert len(queue) == 0
    queue.shutdown()


async def test_a_debounce_never_delays_an_earlier_add_after() -> None:
    clock = FakeClock()
    queue = WorkQueue("debounce-timer", clock=clock)
    worker = Recorder(queue, clock)
    queue.add_after("a", 3.0)  # a requeue the reconciler asked for
    queue.add_after("b", 0.5)
    for _ in range(60):  # events keep coming for 6 s
        queue.add_debounced("a", DEBOUNCE)
        queue.add_debounced("b", DEBOUNCE)
        await clock.advance(0.1)
    await step(clock, 2)
    assert next(t for t, k in worker.got if k == "b") == 0.5, "due sooner than the quiet period: kept"
    assert next(t for t, k in worker.got if k == "a") == 3.0, "a burst must not push a requeue later"

    queue.add_debounced("c", DEBOUNCE)  # a burst going on ...
    queue.add_after("c", 0.2)  # ... and a requeue due sooner: the requeue wins
    await step(clock, 3)
    assert [t for t, k in worker.got if k == "c"] == [8.2]
    await worker.stop()


def test_debounce_needs_a_quiet_period_and_a_bound_not_below_it() -> None:
    with pytest.raises(ValueError, match="quiet"):
        Debounce(quiet=0, max_delay=1)
    with pytest.raises(ValueError, match="max_delay"):
        Debounce(quiet=2, max_delay=1)


async def test_shutdown_drops_pending_debounced_adds() -> None:
    clock = FakeClock()
    queue = WorkQueue("debounce-shutdown", clock=clock)
    queue.add_debounced("set", DEBOUNCE)
    queue.shutdown()
    queue.add_debounced("set", DEBOUNCE)
    await step(clock, 10)
    assert len(queue) == 0
    assert await queue.get() is None
