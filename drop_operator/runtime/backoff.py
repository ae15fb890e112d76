"""Exponential backoff with jitter for reconnect loops."""

from __future__ import annotations

import random


class Backoff:
    """``initial * 2^n`` seconds, capped, with up to +25 % jitter so replicas don't retry in lockstep."""

    def __init__(self, initial: float = 0.8, cap: float = 30.0, jitter: float = 0.25) -> None:
        self.initial = initial
        self.cap = cap
        self.jitter = jitter
        self._attempts = 0

    def next(self) -> float:
        base = min(self.cap, self.initial * 2.0 ** min(self._attempts, 30))
        self._attempts += 1
        return min(self.cap, base * (1.0 + random.random() * self.jitter))

    def reset(self) -> None:
        self._attempts = 0

    @property
    def attempts(self) -> int:
        return self._attempts
