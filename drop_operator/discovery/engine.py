"""Ranking: from every source's candidates to the policy's top images. Pure and deterministic.

Rules, in order:

1. **Normalize** every candidate with `imageref` (`nginx:1.25` → `docker.io/library/nginx:1.25`;
   a reference with neither tag nor digest gets `:latest`, which is what a node would pull).
   Invalid references are counted per source with a few examples, never ranked; so are
   non-finite scores (a source should not produce them; the built-in ones never do). A reference
   whose tag names a signature, attestation, SBOM or referrers index (`imageref.is_artifact_tag`)
   is not a runnable image: it is counted per source (`artifacts`) and never ranked, whichever
   source reported it.
2. **Merge**: an image's score is the sum over sources of `weight * score`, where a source's own
   score for an image is the sum of its candidates that normalize to that image (as the
   Prometheus source sums series). Each image remembers which sources found it.
3. **Filter** with `imageFilter` (searched in the normalized reference with the `regex` package,
   bounded by a timeout): images that do not match are dropped. An invalid or too-slow pattern
   raises `InvalidImageFilterError`.
4. **Sort** by score, highest first, then by reference (so equal scores have a stable order),
   and keep the first `topX`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from drop_operator.discovery.errors import InvalidImageFilterError
from drop_operator.discovery.patterns import DEFAULT_MATCH_TIMEOUT, DEFAULT_TOTAL_BUDGET, BoundedPattern
from drop_operator.discovery.source import Candidate
from drop_operator.imageref import InvalidReferenceError, is_artifact_tag, parse

__all__ = [
    "ImageFilter",
    "InvalidReferences",
    "PartImage",
    "RankedImage",
    "Ranking",
    "SourceCandidates",
    "carry_forward",
    "normalized_parts",
    "rank",
]

DEFAULT_TAG = "latest"
MAX_EXAMPLES = 3
_ARTIFACT = ""  # cache value of a reference to a non-runnable artifact (no valid name is empty)


@dataclass(frozen=True)
class SourceCandidates:
    """One source's contribution: its name (as shown in status), weight and candidates."""

    source: str
    candidates: Sequence[Candidate]
    weight: float = 1.0


@dataclass(frozen=True)
class RankedImage:
    """A discovered image: normalized reference, merged score, names of the sources that found it."""

    image: str
    score: float
    sources: tuple[str, ...]


@dataclass
class InvalidReferences:
    """Candidates of one source that are not image references: how many, and a few examples."""

    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class Ranking:
    """The result: the kept images, plus what was lost on the way (for status)."""

    images: list[RankedImage]
    distinct: int  # distinct valid images before filter and topX
    filtered_out: int  # removed by imageFilter
    invalid: dict[str, InvalidReferences]  # by source name; only sources with invalid candidates
    non_finite: int = 0  # candidates whose score was NaN or infinite (never ranked)
    artifacts: dict[str, int] = field(default_factory=dict)  # by source: signature/attestation/SBOM tags


class ImageFilter:
    """The policy's `imageFilter`; construct early to report an invalid pattern before any query."""

    def __init__(
        self,
        pattern: str,
        *,
        match_timeout: float = DEFAULT_MATCH_TIMEOUT,
        total_budget: float = DEFAULT_TOTAL_BUDGET,
    ) -> None:
        self._pattern = BoundedPattern(
            pattern,
            what="imageFilter",
            error_factory=InvalidImageFilterError,
            match_timeout=match_timeout,
            total_budget=total_budget,
        )

    @property
    def pattern(self) -> str:
        return self._pattern.pattern

    def start(self) -> None:
        """Start the total time budget of one ranking."""
        self._pattern.start_budget()

    def matches(self, image: str) -> bool:
        return self._pattern.search(image) is not None


def rank(
    inputs: Sequence[SourceCandidates],
    *,
    top_x: int | None = None,
    image_filter: ImageFilter | str | None = None,
    default_tag: str = DEFAULT_TAG,
) -> Ranking:
    """Normalize, merge, filter, sort and cut (see the module docstring)."""
    filt = ImageFilter(image_filter) if isinstance(image_filter, str) else image_filter
    scores: dict[str, float] = {}
    found_by: dict[str, list[str]] = {}
    invalid: dict[str, InvalidReferences] = {}
    artifacts: dict[str, int] = {}
    cache: dict[str, str | None] = {}
    non_finite = 0
    for contribution in inputs:
        weight = contribution.weight
        for image, score in contribution.candidates:
            if not math.isfinite(score * weight):
                non_finite += 1
                continue
            name = cache[image] if image in cache else _normalize(image, default_tag, cache)
            if name is None:
                bad = invalid.setdefault(contribution.source, InvalidReferences())
                bad.count += 1
                example = image if len(image) <= 120 else image[:119] + "…"
                if len(bad.examples) < MAX_EXAMPLES and example not in bad.examples:
                    bad.examples.append(example)
                continue
            if name == _ARTIFACT:
                artifacts[contribution.source] = artifacts.get(contribution.source, 0) + 1
                continue
            scores[name] = scores.get(name, 0.0) + weight * score
            sources = found_by.setdefault(name, [])
            if contribution.source not in sources:
                sources.append(contribution.source)
    distinct = len(scores)
    names = list(scores)
    if filt is not None:
        filt.start()
        names = [n for n in names if filt.matches(n)]
    filtered_out = distinct - len(names)
    names.sort()
    names.sort(key=lambda n: scores[n], reverse=True)
    if top_x is not None:
        names = names[:top_x]
    images = [RankedImage(n, scores[n], tuple(sorted(found_by[n]))) for n in names]
    return Ranking(
        images=images,
        distinct=distinct,
        filtered_out=filtered_out,
        invalid=invalid,
        non_finite=non_finite,
        artifacts=artifacts,
    )


def _normalize(image: str, default_tag: str, cache: dict[str, str | None]) -> str | None:
    """The normalized name, None for an invalid reference, `_ARTIFACT` for a non-runnable tag."""
    try:
        ref = parse(image, default_tag=default_tag)
    except InvalidReferenceError:
        name: str | None = None
    else:
        name = _ARTIFACT if ref.tag is not None and is_artifact_tag(ref.tag) else ref.name
    cache[image] = name
    return name


# --- sources made of parts -------------------------------------------------------------------


@dataclass(frozen=True)
class PartImage:
    """An image of one source's list, with the part (a registry repository) it came from, if known."""

    image: str
    score: float
    part: str | None = None


def normalized_parts(part_of: Mapping[str, str], default_tag: str = DEFAULT_TAG) -> dict[str, str]:
    """`SourceResult.part_of` keyed by the normalized names `rank` gives (invalid references left out)."""
    out: dict[str, str] = {}
    cache: dict[str, str | None] = {}
    for image, part in part_of.items():
        name = _normalize(image, default_tag, cache)
        if name:
            out.setdefault(name, part)
    return out


def carry_forward(
    fresh: Sequence[PartImage], previous: Sequence[PartImage], failed_parts: Collection[str], keep: int
) -> list[PartImage]:
    """A source's new list when some of its parts failed: fresh images plus the failed parts' last good ones.

    Previous images of a failed part are kept as they were (name and score) unless a part that
    answered produced the same image; images stored without a part (by an older operator) are
    kept too while any part fails, since nothing says which part they came from. The result is
    ordered like a ranking (score, highest first, then name) and cut to `keep`.
    """
    failed = set(failed_parts)
    names = {i.image for i in fresh}
    carried = [p for p in previous if (p.part is None or p.part in failed) and p.image not in names]
    merged = sorted([*fresh, *carried], key=lambda i: i.image)
    merged.sort(key=lambda i: i.score, reverse=True)
    return merged[:keep]
