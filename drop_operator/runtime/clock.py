"""Time source of the workqueue and the reconcilers, injectable so timing is tested without sleeping."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall(self) -> float:
        """Unix time in seconds (for timestamps written to objects)."""
        ...

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        """Wait until ``event`` is set (True) or ``seconds`` of clock time pass (False)."""
        ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        if seconds is not None and seconds <= 0:
            return event.is_set()
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            return False
        return True


class FakeClock:
    """A clock that only moves when :meth:`advance` is called; waiters wake at their deadlines."""

    def __init__(self, start: float = 1000.0, epoch: float = 1_767_225_600.0) -> None:
        self._now = start
        self._epoch = epoch - start  # wall() is ``epoch`` (2026-01-01) at the start
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._epoch + self._now

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        if event.is_set():
            return True
        if seconds is not None and seconds <= 0:
            return False
        waiter: asyncio.Future[object] = asyncio.ensure_future(event.wait())
        tasks: set[asyncio.Future[object]] = {waiter}
        timer: asyncio.Future[None] | None = None
        if seconds is not None:
            timer = asyncio.get_running_loop().create_future()
            heapq.heappush(self._timers, (self._now + seconds, next(self._seq), timer))
            tasks.add(timer)  # type: ignore[arg-type]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if timer is not None and not timer.done():
                timer.cancel()
        return event.is_set()

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every waiter whose deadline passed, then let them run."""
        self._now += seconds
        while self._timers and self._timers[0][0] <= self._now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.done():
                timer.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
