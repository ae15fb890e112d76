"""One sync of a DiscoveryPolicy: run sources concurrently, rank, merge with last-known-good results.

Shared by the reconciler and ``drop-operator discover`` (the preview), so what a person sees while
authoring a policy is what the operator will publish. Nothing here talks to the API server: Secrets
arrive through a ``credentials_for`` callback, the previous status is an argument, the new status the
result.

How results flow:

1. Every source to run gets its own task and its own deadline (``source_deadline``); a source that
   raises, times out or cannot get its Secret fails alone, with a reason, and never delays or
   cancels the others.
2. A successful source's candidates are normalized, summed per image and filtered by the policy's
   ``imageFilter`` (``rank`` of the discovery engine, one source at a time); its best ``topX``
   images, with the source's own unweighted scores, become that source's ``status.sources[].images``.
3. ``status.discoveredImages`` is always the ``rank`` of those stored per-source lists, each
   weighted by its source's ``weight``. A failing source therefore keeps contributing the images of
   its last success, after restarts too, because the store is the object's status.
4. If no source is healthy after the pass, ``discoveredImages`` is left exactly as it was: a list
   emptied by outages would make every CachedImageSet delete its children.
5. A partial answer (some repositories of a registry source failed) is stored as fresh images of
   the repositories that answered plus the last good images of those that failed
   (``engine.carry_forward``); the source is then not healthy, but it did answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from drop_operator.api.discoverypolicy import (
    MAX_SOURCE_IMAGES,
    DiscoveredImage,
    DiscoveryPolicySpec,
    DiscoveryPolicyStatus,
    DiscoverySource,
    SourceImage,
    SourceStatus,
    SourceType,
)
from drop_operator.controllers.discoverypolicy.secrets import SecretError
from drop_operator.controllers.discoverypolicy.sourcebuild import build_source, source_deadline
from drop_operator.controllers.discoverypolicy.status import (
    SourceRun,
    build_conditions,
    is_partial,
    merge_source_statuses,
)
from drop_operator.discovery.engine import (
    ImageFilter,
    PartImage,
    SourceCandidates,
    carry_forward,
    normalized_parts,
    rank,
)
from drop_operator.discovery.errors import DiscoveryError, InvalidImageFilterError, Reason
from drop_operator.discovery.http import Credentials
from drop_operator.discovery.registry import TokenCache
from drop_operator.discovery.source import Candidate, SourceResult

__all__ = [
    "DROP_ARTIFACT_TAG",
    "DROP_EXCLUDED",
    "DROP_INVALID_REFERENCE",
    "INTERNAL_ERROR",
    "CredentialsFor",
    "RawOutcome",
    "SyncOutcome",
    "apply_outcomes",
    "compile_filter",
    "run_sources",
]

DROP_INVALID_REFERENCE = "InvalidReference"
DROP_EXCLUDED = "ExcludedByImageFilter"
DROP_ARTIFACT_TAG = "ArtifactTag"
INTERNAL_ERROR = "InternalError"

#: Fetches the credentials of a source (None when it has no ``secretRef``); raises ``SecretError``.
CredentialsFor = Callable[[DiscoverySource], Awaitable[Credentials | None]]


@dataclass(frozen=True)
class RawOutcome:
    """What one source run returned before ranking: a result, or a failure reason and message."""

    name: str
    type: SourceType
    result: SourceResult | None
    reason: str | None = None
    message: str | None = None
    duration: float = 0.0


def named_sources(spec: DiscoveryPolicySpec) -> list[tuple[str, DiscoverySource]]:
    """The spec's sources with their effective names, in order."""
    return list(zip(spec.source_names(), spec.sources, strict=True))


async def _run_one(
    name: str,
    source: DiscoverySource,
    credentials_for: CredentialsFor,
    token_cache: TokenCache | None,
) -> RawOutcome:
    started = time.monotonic()

    def failed(reason: str, message: str) -> RawOutcome:
        return RawOutcome(name, source.type, None, reason, message, time.monotonic() - started)

    deadline = source_deadline(source)
    try:
        async with asyncio.timeout(deadline):
            credentials = await credentials_for(source)
            backend = build_source(source, credentials, token_cache=token_cache)
            result = await backend.discover()
    except SecretError as err:
        return failed(err.reason, err.message)
    except DiscoveryError as err:
        return failed(str(err.reason), err.message)
    except TimeoutError:
        return failed(str(Reason.TIMEOUT), f"no result within {deadline:g}s")
    except Exception as err:  # one source's bug must not take the others down
        return failed(INTERNAL_ERROR, f"{type(err).__name__}: {err}"[:500])
    return RawOutcome(name, source.type, result, duration=time.monotonic() - started)


async def run_sources(
    spec: DiscoveryPolicySpec,
    credentials_for: CredentialsFor,
    *,
    only: Iterable[str] | None = None,
    token_cache: TokenCache | None = None,
) -> dict[str, RawOutcome]:
    """Run the spec's sources (or those named in ``only``) concurrently; one outcome per source.

    Never raises for a source's failure: each task catches its own errors (``gather`` with
    ``return_exceptions`` backs that up), so the slowest or broken source costs only its own slot.
    """
    wanted = set(only) if only is not None else None
    chosen = [(n, s) for n, s in named_sources(spec) if wanted is None or n in wanted]
    results = await asyncio.gather(
        *(_run_one(n, s, credentials_for, token_cache) for n, s in chosen), return_exceptions=True
    )
    out: dict[str, RawOutcome] = {}
    for (name, source), result in zip(chosen, results, strict=True):
        if isinstance(result, RawOutcome):
            out[name] = result
        elif isinstance(result, asyncio.CancelledError):
            raise result
        else:
            out[name] = RawOutcome(
                name, source.type, None, INTERNAL_ERROR, f"{type(result).__name__}: {result}"
            )
    return out


def compile_filter(spec: DiscoveryPolicySpec) -> ImageFilter | None:
    """The policy's ``imageFilter``; raises ``InvalidImageFilterError`` before anything is queried."""
    return ImageFilter(spec.image_filter) if spec.image_filter else None


def _ranked_source(
    outcome: RawOutcome, image_filter: ImageFilter | None, keep: int, old: SourceStatus | None
) -> SourceRun:
    """A successful outcome normalized, merged per image and filtered; raises InvalidImageFilterError.

    ``old`` is the source's previous entry: a partial answer keeps its failing repositories' images.
    """
    result = outcome.result
    assert result is not None
    ranking = rank([SourceCandidates(outcome.name, result.candidates)], image_filter=image_filter)
    dropped: Counter[str] = Counter(result.dropped)
    invalid = ranking.invalid.get(outcome.name)
    if invalid is not None:
        dropped[DROP_INVALID_REFERENCE] += invalid.count
    if ranking.filtered_out:
        dropped[DROP_EXCLUDED] += ranking.filtered_out
    if ranking.artifacts.get(outcome.name):
        dropped[DROP_ARTIFACT_TAG] += ranking.artifacts[outcome.name]
    warnings = list(result.warnings)
    if invalid is not None and invalid.examples:
        warnings.append("invalid image references, e.g. " + ", ".join(repr(e) for e in invalid.examples))
    parts = normalized_parts(result.part_of)
    images = [PartImage(i.image, i.score, parts.get(i.image)) for i in ranking.images]
    missing = result.partial_error()
    if missing is not None:
        previous = [PartImage(i.image, i.score, i.repository) for i in old.images] if old else []
        images = carry_forward(images, previous, result.failed_parts, keep)
    return SourceRun(
        name=outcome.name,
        type=outcome.type,
        images=[SourceImage(image=i.image, score=i.score, repository=i.part) for i in images[:keep]],
        images_found=ranking.distinct,
        dropped=dict(dropped),
        warnings=warnings,
        reason=str(missing.reason) if missing else None,
        message=missing.message if missing else None,
        duration=outcome.duration,
        failing_parts={p: (str(e.reason), e.message) for p, e in result.failed_parts.items()},
    )


@dataclass(frozen=True)
class SyncOutcome:
    """The new status and what happened on the way (for events, metrics and the preview)."""

    status: DiscoveryPolicyStatus
    runs: dict[str, SourceRun]
    all_failed: bool
    image_filter_error: str | None
    kept_previous_images: bool


def apply_outcomes(
    *,
    spec: DiscoveryPolicySpec,
    generation: int | None,
    previous: DiscoveryPolicyStatus,
    outcomes: dict[str, RawOutcome],
    image_filter: ImageFilter | None,
    image_filter_error: str | None = None,
    full: bool,
    now: datetime,
) -> SyncOutcome:
    """Fold one pass's outcomes into the previous status (pure apart from the filter's time budget).

    ``full`` marks a pass that ran every source on schedule or for a spec change: it advances
    ``lastSyncTime`` and ``observedGeneration``. A retry of failing sources leaves both alone.
    ``image_filter_error`` reports a filter that did not compile; then no source should have run.
    """
    keep = min(spec.top_x, MAX_SOURCE_IMAGES)
    names: list[tuple[str, SourceType]] = [(n, s.type) for n, s in named_sources(spec)]
    weights = {n: s.weight for n, s in named_sources(spec)}
    runs: dict[str, SourceRun] = {
        name: SourceRun(
            name=name,
            type=o.type,
            images=None,
            reason=o.reason,
            message=o.message,
            duration=o.duration,
        )
        for name, o in outcomes.items()
        if o.result is None
    }
    succeeded = [o for o in outcomes.values() if o.result is not None]
    filter_error = image_filter_error
    ranked: dict[str, SourceRun] = {}
    if filter_error is None:
        before = {s.name: s for s in previous.sources}
        try:
            ranked = {
                o.name: _ranked_source(o, image_filter, keep, _same_source(before.get(o.name), o.type))
                for o in succeeded
            }
        except InvalidImageFilterError as err:
            filter_error = err.message
    if filter_error is not None:
        # The filter cannot be evaluated: nothing new is published and no source's stored images
        # are replaced by unfiltered ones; only the health of the sources that ran is recorded.
        ranked = {o.name: _healthy_but_unchanged(o, previous) for o in succeeded}
    runs.update(ranked)
    statuses = merge_source_statuses(names=names, previous=previous.sources, runs=runs, now=now, keep=keep)
    ran = [s for s in statuses if s.last_sync_time is not None]
    all_failed = bool(ran) and not any(s.healthy or is_partial(s) for s in statuses)

    images = previous.discovered_images
    kept_previous = True
    if filter_error is None and not all_failed:
        try:
            ranking = rank(
                [
                    SourceCandidates(s.name, [Candidate(i.image, i.score) for i in s.images], weights[s.name])
                    for s in statuses
                ],
                top_x=spec.top_x,
                image_filter=image_filter,
            )
        except InvalidImageFilterError as err:
            filter_error = err.message
        else:
            images = [
                DiscoveredImage(image=i.image, score=i.score, sources=list(i.sources)) for i in ranking.images
            ]
            kept_previous = False

    published_at = max(
        (s.last_success_time for s in statuses if s.last_success_time is not None), default=None
    )
    conditions = build_conditions(
        previous.conditions,
        generation=generation,
        sources=statuses,
        image_count=len(images),
        image_filter_error=filter_error,
        all_failed=all_failed,
        published_at=published_at,
        now=now,
    )
    status = DiscoveryPolicyStatus(
        observed_generation=generation if full else previous.observed_generation,
        last_sync_time=now if full else previous.last_sync_time,
        image_count=len(images),
        discovered_images=list(images),
        sources=statuses,
        conditions=conditions,
    )
    return SyncOutcome(
        status=status,
        runs=runs,
        all_failed=all_failed,
        image_filter_error=filter_error,
        kept_previous_images=kept_previous,
    )


def _same_source(entry: SourceStatus | None, type_: SourceType) -> SourceStatus | None:
    """The previous entry if it was for a source of the same type (a reused name starts over)."""
    return entry if entry is not None and entry.type == type_ else None


def _healthy_but_unchanged(outcome: RawOutcome, previous: DiscoveryPolicyStatus) -> SourceRun:
    """A source that answered while the filter was unusable: healthy, stored images unchanged."""
    old = next((s for s in previous.sources if s.name == outcome.name and s.type == outcome.type), None)
    return SourceRun(
        name=outcome.name,
        type=outcome.type,
        images=list(old.images) if old else [],
        images_found=old.images_found if old else 0,
        dropped={d.reason: d.count for d in old.dropped} if old else {},
        duration=outcome.duration,
    )
