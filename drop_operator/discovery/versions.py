"""Version-aware ordering of tags, newest first.

Registries list tags lexically (`v17.10.1` before `v17.5.0`), which is never what "newest" means.
A tag's version is found like this:

- with a `versionPattern`: the named group `version`, else the first group, else the whole match
  (the pattern is searched, bounded by a timeout);
- without one: the dotted number in the tag with the most components, optionally after a `v`,
  not preceded by a letter, digit, `.` or `_` — so `v17.5.0`, `1.2.3-rc1` and `x86_64-v17.5.0` all work and the
  `64` in `x86_64` is not taken for a version.

Digits inside identifiers are not versions. Besides the rule above (`x86_64`, `arm64`,
`alpine3.19`), a *hash-like token* — a run of letters and digits between separators that is 7 to 64
hexadecimal characters with at least one letter, as in `sha-860c190`, `x86_64-58ba2b95` or a
`sha256-<hex>` digest-derived tag — never yields a version, so commit and digest tags written by CI
tooling sort with the unversioned tags instead of outranking releases (`860` is not newer than
`1.4.0`). All-digit tokens (`20240115`) are still numbers.

Versions compare numerically component by component (`1.4.0` > `1.4` > `1.3.2`); a release sorts after its pre-releases
(`1.2.3` > `1.2.3-rc10` > `1.2.3-rc2`: suffixes compare naturally). Tags without a version sort
after every versioned tag, by name. Ties break by tag name, so the order is total and stable.

Why not `packaging.version` (PEP 440) or a semver library: container tags are neither. They carry
variants and prefixes (`1.25-alpine`, `x86_64-v17.5.0`, `3.19-bookworm`) that PEP 440 rejects
outright and strict semver refuses (`1.4`, `v1`), and PEP 440 orders `1.2.3-1` as a post-release,
after `1.2.3`, where the documented rule treats any suffix as a pre-release. We would still need
the extraction and the identifier rules above, plus a runtime dependency for the comparison alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from drop_operator.discovery.patterns import BoundedPattern

__all__ = ["Version", "is_hash_like", "parse_version", "sort_newest_first"]

_CANDIDATE = re.compile(r"(?<![0-9A-Za-z._])[vV]?(\d+(?:\.\d+)*)")
_CHUNKS = re.compile(r"\d+|\D+")
_TOKEN = re.compile(r"[0-9A-Za-z]+")
_HASH_LIKE = re.compile(r"(?=[0-9]*[A-Fa-f])[0-9A-Fa-f]{7,64}")


@dataclass(frozen=True, order=True)
class Version:
    """Comparable version: numbers, then "is a release", then the natural pre-release suffix."""

    numbers: tuple[int, ...]
    is_release: bool
    suffix: tuple[tuple[int, int | str], ...]


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(c)) if c.isdigit() else (1, c) for c in _CHUNKS.findall(text))


def is_hash_like(token: str) -> bool:
    """Whether `token` (letters and digits only) looks like a commit hash or digest: 7 to 64 hex, a letter."""
    return _HASH_LIKE.fullmatch(token) is not None


def _mask_hashes(text: str) -> str:
    """`text` with every hash-like token replaced by letters of the same length (no digits left)."""
    return _TOKEN.sub(lambda m: "h" * len(m.group()) if is_hash_like(m.group()) else m.group(), text)


def parse_version(text: str) -> Version | None:
    """The version in `text` (see module doc), or None."""
    best: re.Match[str] | None = None
    best_parts = 0
    for match in _CANDIDATE.finditer(_mask_hashes(text)):
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
