"""The Source interface: something that, asked once, names images with a score.

A source knows nothing of Kubernetes. It is built from plain configuration (dataclasses) and
`Credentials`; it validates what it can at construction (regexes, templates) and raises
`SourceError` there, so a broken policy is reported before any network call. `discover()`
either returns a `SourceResult` or raises `SourceError`; a result is only ever partial per
*part* (a repository of a registry source), and then says which parts failed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from drop_operator.discovery.errors import SourceError

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

    A source made of independent *parts* (a registry source's repositories) answers even when
    some parts fail: `part_of` names the part each candidate image (as spelled) came from, and
    `failed_parts` holds the error of each part that failed, whose candidates are therefore
    missing. The caller keeps those parts' last good images (see `engine.carry_forward`).
    """

    candidates: list[Candidate] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    scanned: int = 0
    warnings: list[str] = field(default_factory=list)
    part_of: dict[str, str] = field(default_factory=dict)
    failed_parts: dict[str, SourceError] = field(default_factory=dict)
    parts: int = 0  # how many parts the source asked (registry: distinct repositories)

    def partial_error(self) -> SourceError | None:
        """What is missing from a partial answer (None when every part answered).

        The reason is the failing parts' own when they share one, else the first one's; the
        message names each failing part.
        """
        if not self.failed_parts:
            return None
        errors = list(self.failed_parts.values())
        reasons = {e.reason for e in errors}
        reason = reasons.pop() if len(reasons) == 1 else errors[0].reason
        total = max(self.parts, len(errors))
        detail = "; ".join(f"{part}: {err.reason}: {err.message}" for part, err in self.failed_parts.items())
        return SourceError(reason, f"{len(errors)} of {total} failing, the others answered: {detail}")


class Source(ABC):
    """One configured backend of a DiscoveryPolicy."""

    kind: ClassVar[str]

    @abstractmethod
    async def discover(self) -> SourceResult:
        """Query the backend once. Raises SourceError on any failure."""
