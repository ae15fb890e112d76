"""Version-aware ordering of tags, newest first.

Registries list tags lexically (`v17.10.1` before `v17.5.0`), which is never what "newest" means.
A tag's version is found like this:

- with a `versionPattern`: the named group `version`, else the first group, else the whole match
  (the pattern is searched, bounded by a timeout);
- without one: the dotted number in the tag with the most components, optionally after a `v`,
  not preceded by a letter, digit, `.` or `_` — so `v17.5.0`, `1.2.3-rc1` and `x86_64-v17.5.0` all work and the
  `64` in `x86_64` is not taken for a version.

Versions compare numerically component by component; a release sorts after its pre-releases
(`1.2.3` > `1.2.3-rc10` > `1.2.3-rc2`: suffixes compare naturally). Tags without a version sort
after every versioned tag, by name. Ties break by tag name, so the order is total and stable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from drop_operator.discovery.patterns import BoundedPattern

__all__ = ["Version", "parse_version", "sort_newest_first"]

_CANDIDATE = re.compile(r"(?<![0-9A-Za-z._])[vV]?(\d+(?:\.\d+)*)")
_CHUNKS = re.compile(r"\d+|\D+")


@dataclass(frozen=True, order=True)
class Version:
    """Comparable version: numbers, then "is a release", then the natural pre-release suffix."""

    numbers: tuple[int, ...]
    is_release: bool
    suffix: tuple[tuple[int, int | str], ...]


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(c)) if c.isdigit() else (1, c) for c in _CHUNKS.findall(text))


def parse_version(text: str) -> Version | None:
    """The version in `text` (see module doc), or None."""
    best: re.Match[str] | None = None
    best_parts = 0
    for match in _CANDIDATE.finditer(text):
        parts = match.group(1).count(".") + 1
        if parts > best_parts:
            best, best_parts = match, parts
    if best is None:
        return None
    numbers = tuple(int(n) for n in best.group(1).split("."))
    suffix = text[best.end() :].lstrip("-+._")
    return Version(numbers, not suffix, _natural(suffix))


def _extract(tag: str, pattern: BoundedPattern | None) -> Version | None:
    if pattern is None:
        return parse_version(tag)
    match = pattern.search(tag)
    if match is None:
        return None
    if "version" in pattern.group_names:
        text = match.group("version")
    elif pattern.groups >= 1:
        text = match.group(1)
    else:
        text = match.group(0)
    return parse_version(text) if text else None


def sort_newest_first(tags: Iterable[str], pattern: BoundedPattern | None = None) -> list[str]:
    """Versioned tags newest first, then unversioned tags by name."""
    keyed = [(tag, _extract(tag, pattern)) for tag in tags]
    versioned = sorted((t for t in keyed if t[1] is not None), key=lambda t: t[0])
    versioned.sort(key=lambda t: t[1], reverse=True)  # type: ignore[arg-type,return-value]
    plain = sorted(t[0] for t in keyed if t[1] is None)
    return [t[0] for t in versioned] + plain
