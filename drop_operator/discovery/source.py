"""The Source interface: something that, asked once, names images with a score.

A source knows nothing of Kubernetes. It is built from plain configuration (dataclasses) and
`Credentials`; it validates what it can at construction (regexes, templates) and raises
`SourceError` there, so a broken policy is reported before any network call. `discover()`
either returns a `SourceResult` or raises `SourceError` — never a partial mix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

__all__ = ["Candidate", "Source", "SourceResult"]


class Candidate(NamedTuple):
    """An image as the source spelled it (not yet normalized) and its score (higher = more important)."""

    image: str
    score: float


@dataclass
class SourceResult:
    """What one `discover()` found.

    `dropped` counts items seen but not turned into candidates, by reason (e.g.
    `MissingImageLabel`, `NonFiniteValue`, `FilteredOut`); `scanned` is how many series or tags
    were looked at; `warnings` are notes from the server or about bounds that were hit.
    """

    candidates: list[Candidate] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    scanned: int = 0
    warnings: list[str] = field(default_factory=list)


class Source(ABC):
    """One configured backend of a DiscoveryPolicy."""

    kind: ClassVar[str]

    @abstractmethod
    async def discover(self) -> SourceResult:
        """Query the backend once. Raises SourceError on any failure."""
