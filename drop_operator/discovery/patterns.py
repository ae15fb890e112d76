"""User-supplied regular expressions with a time bound.

Patterns come from policies (`imageFilter`, `tagFilter`, `versionPattern`) and are evaluated
against strings that come from remote servers, so a catastrophically backtracking pattern such
as `^(a+)+$` could pin a worker thread for hours. The `regex` package (Python's `re` has no
timeout) aborts a match after a timeout; a `BoundedPattern` also has a total budget over all
its matches in one evaluation, so 100 000 candidates cannot each use the per-match allowance.
Lookarounds (`^(?!.*ecr\\..*amazonaws\\.com).*$`) work as in `re`. `regex` is imported with the first
pattern, not with this module (a policy without patterns never needs it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from drop_operator.discovery.errors import DiscoveryError

if TYPE_CHECKING:
    import regex

__all__ = ["BoundedPattern"]

DEFAULT_MATCH_TIMEOUT = 0.25
DEFAULT_TOTAL_BUDGET = 5.0
_MAX_PATTERN_LENGTH = 4096


class BoundedPattern:
    """A compiled pattern whose matches raise `error_factory(message)` when too slow."""

    def __init__(
        self,
        pattern: str,
        *,
        what: str,
        error_factory: Callable[[str], DiscoveryError],
        match_timeout: float = DEFAULT_MATCH_TIMEOUT,
        total_budget: float = DEFAULT_TOTAL_BUDGET,
    ) -> None:
        self.pattern = pattern
        self.what = what
        self._error = error_factory
        self.match_timeout = match_timeout
        self.total_budget = total_budget
        self._deadline: float | None = None
        import regex

        if len(pattern) > _MAX_PATTERN_LENGTH:
            raise error_factory(f"{what} is longer than {_MAX_PATTERN_LENGTH} characters")
        try:
            self._compiled = regex.compile(pattern, regex.VERSION0)
        except (regex.error, TypeError, ValueError, OverflowError) as err:
            raise error_factory(f"{what} {pattern!r} is not a valid regular expression: {err}") from None

    @property
    def groups(self) -> int:
        return int(self._compiled.groups)

    @property
    def group_names(self) -> frozenset[str]:
        return frozenset(self._compiled.groupindex)

    def start_budget(self) -> None:
        """Begin one evaluation: the total budget counts from now."""
        self._deadline = time.monotonic() + self.total_budget

    def search(self, text: str) -> regex.Match[str] | None:
        """`regex.search` bounded by the per-match timeout and the remaining total budget."""
        timeout = self.match_timeout
        if self._deadline is not None:
            timeout = min(timeout, self._deadline - time.monotonic())
            if timeout <= 0:
                raise self._error(
                    f"{self.what} {self.pattern!r} used its whole time budget ({self.total_budget:g}s); "
                    "simplify the pattern"
                )
        try:
            return self._compiled.search(text, timeout=timeout)
        except TimeoutError:
            raise self._error(
                f"{self.what} {self.pattern!r} took longer than {timeout:.3g}s on {text[:80]!r} "
                "(catastrophic backtracking?); simplify the pattern"
            ) from None
