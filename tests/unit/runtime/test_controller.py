"""Controller loop behaviour without a server: results, exceptions, concurrency, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from drop_operator.runtime import Result
from drop_operator.runtime.controller import Controller, controller_owner_key


def sample(metric: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(metric, labels)
    return value or 0.0


async def wait_for(cond: Callable[[], bool], within: float = 2.0) -> None:
    """Bounded poll: fails the test with TimeoutError if ``cond`` stays false."""
    async with asyncio.timeout(within):
        while True:
            if cond():
                return
            await asyncio.sleep(0.005)


async def test_exception_is_retried_with_backoff_and_never_kills_the_worker() -> None:
    calls: list[str] = []

    async def reconcile(key: str) -> Result | None:
        calls.append(key)
        if len(calls) < 3:
            raise RuntimeError("boom")
        return None

    ctrl = Controller("unit-retry", reconcile, workers=1)
    ctrl.start()
    ctrl.enqueue("a")
    await wait_for(lambda: len(calls) >= 3)
    assert calls == ["a", "a", "a"]
    assert sample("controller_runtime_reconcile_errors_total", controller="unit-retry") == 2
    assert sample("controller_runtime_reconcile_total", controller="unit-retry", result="error") == 2
    assert sample("controller_runtime_reconcile_total", controller="unit-retry", result="success") == 1
    assert ctrl.queue.num_requeues("a") == 0, "success forgets the backoff"
    ctrl.enqueue("b")
    await wait_for(lambda: "b" in calls)
    assert await ctrl.shutdown(1.0)


async def test_requeue_after_schedules_another_pass() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    async def reconcile(key: str) -> Result | None:
        calls.append(loop.time())
        return Result(requeue_after=0.1) if len(calls) == 1 else None

    ctrl = Controller("unit-requeue", reconcile, workers=1)
    ctrl.start()
    ctrl.enqueue("k")
    await wait_for(lambda: len(calls) == 2)
    assert calls[1] - calls[0] >= 0.09
    assert (
        sample("controller_runtime_reconcile_total", controller="unit-requeue", result="requeue_after") == 1
    )
    assert await ctrl.shutdown(1.0)


async def test_same_key_never_runs_concurrently_but_different_keys_do() -> None:
    running: set[str] = set()
    overlap: list[str] = []
    peak = 0
    gate = asyncio.Event()

    async def reconcile(key: str) -> None:
        nonlocal peak
        if key in running:
            overlap.append(key)
        running.add(key)
        peak = max(peak, len(running))
        await gate.wait()
        running.discard(key)

    ctrl = Controller("unit-concurrency", reconcile, workers=3)
    ctrl.start()
    for key in ["x", "y", "z", "x", "x"]:
        ctrl.enqueue(key)
    await wait_for(lambda: len(running) == 3)
    assert sample("controller_runtime_active_workers", controller="unit-concurrency") == 3
    assert sample("controller_runtime_max_concurrent_reconciles", controller="unit-concurrency") == 3
    gate.set()
    await wait_for(lambda: not running and len(ctrl.queue) == 0)
    assert overlap == []
    assert peak == 3
    assert await ctrl.shutdown(1.0)


async def test_shutdown_lets_in_flight_reconcile_finish_within_grace() -> None:
    finished = asyncio.Event()
    started = asyncio.Event()

    async def reconcile(key: str) -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.set()

    ctrl = Controller("unit-grace", reconcile, workers=1)
    ctrl.start()
    ctrl.enqueue("slow")
    await asyncio.wait_for(started.wait(), 1)
    assert await ctrl.shutdown(grace_period=5.0) is True
    assert finished.is_set()


async def test_shutdown_cancels_work_that_outlives_the_grace_period() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def reconcile(key: str) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    ctrl = Controller("unit-grace-over", reconcile, workers=1)
    ctrl.start()
    ctrl.enqueue("stuck")
    await asyncio.wait_for(started.wait(), 1)
    await asyncio.sleep(0.05)
    ctrl.queue.update_progress_metrics()
    assert sample("workqueue_longest_running_processor_seconds", name="unit-grace-over") >= 0.04
    assert sample("workqueue_unfinished_work_seconds", name="unit-grace-over") >= 0.04
    assert await ctrl.shutdown(grace_period=0.05) is False
    assert cancelled.is_set()


def test_owner_key_uses_the_controller_reference_of_the_kind() -> None:
    obj = {
        "metadata": {
            "namespace": "ns",
            "name": "child",
            "ownerReferences": [
                {"kind": "CachedImageSet", "name": "other", "controller": False},
                {"kind": "CachedImageSet", "name": "parent", "controller": True},
            ],
        }
    }
    assert controller_owner_key(obj, "CachedImageSet") == "parent"
    assert controller_owner_key(obj, "CachedImageSet", owner_namespaced=True) == "ns/parent"
    assert controller_owner_key(obj, "Job") is None


def test_requeue_after_zero_is_refused_instead_of_meaning_a_rate_limited_requeue() -> None:
    with pytest.raises(ValueError, match="requeue_after must be > 0"):
        Result(requeue_after=0)
    with pytest.raises(ValueError, match="requeue_after must be > 0"):
        Result(requeue_after=-1.0)
    with pytest.raises(ValueError, match="not both"):
        Result(requeue_after=1.0, retry_reason="x")


async def test_retry_result_is_counted_as_an_error_and_retried_with_backoff() -> None:
    calls: list[str] = []

    async def reconcile(key: str) -> Result | None:
        calls.append(key)
        return Result.retry("2 child writes failed") if len(calls) < 3 else None

    ctrl = Controller("unit-retry-result", reconcile, workers=1)
    ctrl.start()
    ctrl.enqueue("a")
    await wait_for(lambda: len(calls) >= 3)
    assert calls == ["a", "a", "a"]
    assert sample("controller_runtime_reconcile_errors_total", controller="unit-retry-result") == 2
    assert sample("controller_runtime_reconcile_total", controller="unit-retry-result", result="error") == 2
    assert sample("workqueue_retries_total", name="unit-retry-result") == 2
    assert ctrl.queue.num_requeues("a") == 0, "success forgets the backoff"
    assert await ctrl.shutdown(1.0)
