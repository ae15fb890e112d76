"""Human-readable lists in Events and condition messages, bounded in length."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["first_and_more"]


def first_and_more(items: Sequence[str], limit: int) -> str:
    """``a, b, c and 7 more``: the first ``limit`` items joined, then how many were left out."""
    shown = ", ".join(items[:limit])
    more = len(items) - limit
    return f"{shown} and {more} more" if more > 0 else shown
