"""Bounded polling: how every test waits for the cluster to converge (never a bare sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def eventually(cond: Callable[[], Any], within: float, what: str, interval: float = 0.1) -> Any:
    """Poll a sync or async condition until it is truthy and return its value.

    Fails with ``what`` once ``within`` seconds have passed, so a test that waits on something
    that never happens ends with a message that says what it was waiting for.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(interval)
