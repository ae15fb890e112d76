"""Workqueue semantics with a fake clock: dedup, backoff, delays, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from drop_operator.runtime.clock import FakeClock
from drop_operator.runtime.workqueue import DefaultRateLimiter, TokenBucketLimiter, WorkQueue


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
