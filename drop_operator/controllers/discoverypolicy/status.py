"""Per-source status entries and the ``Ready``/``SourcesHealthy`` conditions of a DiscoveryPolicy.

Pure functions from "what ran and what happened" to api models, so the same wording appears in the
cluster and in ``drop-operator discover``, and every rule is unit-tested.

A failing source keeps its previous entry's ``images`` and ``lastSuccessTime``: that is the
last-known-good result the merge keeps using, and the "since when" of the stale condition. A
*partial* answer (some repositories of a registry source failed) is current for the parts that
answered: the entry is fresh but not healthy, and lists the failing repositories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from drop_operator.api.discoverypolicy import (
    READY,
    SOURCES_HEALTHY,
    DiscoveryPolicyStatus,
    DroppedCount,
    RepositoryStatus,
    SourceImage,
    SourceStatus,
    SourceType,
)
from drop_operator.api.meta import Condition, set_condition
from drop_operator.controllers.common import MAX_MESSAGE, condition, format_time

__all__ = [
    "ALL_CANDIDATES_DROPPED",
    "ALL_SOURCES_FAILED",
    "ALL_SOURCES_HEALTHY",
    "DISCOVERED",
    "INVALID_SPEC",
    "NOT_SYNCED",
    "PARTIALLY_DISCOVERED",
    "SOURCE_FAILED",
    "SourceRun",
    "build_conditions",
    "is_partial",
    "merge_source_statuses",
    "unreadable_spec_status",
]

# Reasons of the conditions (per-source failure reasons come from the sources themselves).
ALL_SOURCES_HEALTHY = "AllSourcesHealthy"
SOURCE_FAILED = "SourceFailed"
DISCOVERED = "Discovered"
PARTIALLY_DISCOVERED = "PartiallyDiscovered"
ALL_SOURCES_FAILED = "AllSourcesFailed"
NOT_SYNCED = "NotSynced"
INVALID_SPEC = "InvalidSpec"
ALL_CANDIDATES_DROPPED = "AllCandidatesDropped"

_MAX_DROPPED = 32
_MAX_ERROR = 1024


@dataclass(frozen=True)
class SourceRun:
    """The outcome of running one source once.

    ``images`` is None when the run failed; then ``reason`` and ``message`` say why. A partial
    answer has ``images`` and also ``reason``/``message`` (what is missing), and ``failing_parts``
    (``reason``, ``message`` of each failing repository).
    """

    name: str
    type: SourceType
    images: Sequence[SourceImage] | None
    images_found: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)
    warnings: Sequence[str] = ()
    reason: str | None = None
    message: str | None = None
    duration: float = 0.0
    failing_parts: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Answered completely (what retries, metrics and events count as success)."""
        return self.images is not None and self.reason is None

    @property
    def answered(self) -> bool:
        """Produced images, completely or partially."""
        return self.images is not None


def is_partial(status: SourceStatus) -> bool:
    """Whether the entry's last attempt was a partial answer (fresh, but some repositories failing)."""
    return (
        not status.healthy
        and bool(status.failing_repositories)
        and status.last_success_time is not None
        and status.last_success_time == status.last_sync_time
    )


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def merge_source_statuses(
    *,
    names: Sequence[tuple[str, SourceType]],
    previous: Sequence[SourceStatus],
    runs: Mapping[str, SourceRun],
    now: datetime,
    keep: int,
) -> list[SourceStatus]:
    """One status entry per source in the spec, in spec order.

    A source that ran successfully gets a fresh entry with its best ``keep`` images. A source that
    failed keeps its previous images and last success (only if the previous entry was for the same
    type: a name reused for another backend starts over). A source that did not run this time (a
    retry of other sources) keeps its entry unchanged. Entries of sources no longer in the spec are
    dropped, with their images.
    """
    before = {s.name: s for s in previous}
    out: list[SourceStatus] = []
    for name, type_ in names:
        old = before.get(name)
        if old is not None and old.type != type_:
            old = None
        run = runs.get(name)
        if run is None:
            out.append(old if old is not None else SourceStatus(name=name, type=type_))
            continue
        if run.images is not None:
            dropped = [DroppedCount(reason=r, count=c) for r, c in sorted(run.dropped.items()) if c > 0]
            out.append(
                SourceStatus(
                    name=name,
                    type=type_,
                    healthy=run.reason is None,
                    last_sync_time=now,
                    last_success_time=now,
                    last_error=_truncate(run.message, _MAX_ERROR) if run.message else None,
                    reason=run.reason,
                    images_found=run.images_found,
                    dropped=dropped[:_MAX_DROPPED],
                    failing_repositories=_failing_repositories(run, old) or None,
                    images=list(run.images[:keep]),
                )
            )
            continue
        out.append(
            SourceStatus(
                name=name,
                type=type_,
                healthy=False,
                last_sync_time=now,
                last_success_time=old.last_success_time if old else None,
                last_error=_truncate(run.message or run.reason or "failed", _MAX_ERROR),
                reason=run.reason or "Failed",
                images_found=old.images_found if old else 0,
                dropped=list(old.dropped) if old else [],
                failing_repositories=old.failing_repositories if old else None,
                images=list(old.images) if old else [],
            )
        )
    return out


def _failing_repositories(run: SourceRun, old: SourceStatus | None) -> list[RepositoryStatus]:
    """One entry per failing repository; "last success" is its own, or when the source last had it."""
    before = {r.name: r for r in (old.failing_repositories or [])} if old else {}
    out: list[RepositoryStatus] = []
    for repo, (reason, message) in list(run.failing_parts.items())[:50]:
        if repo in before:
            since = before[repo].last_success_time
        elif old is not None and any(i.repository in (repo, None) for i in old.images):
            since = old.last_success_time
        else:
            since = None
        out.append(
            RepositoryStatus(
                name=repo, reason=reason, last_error=_truncate(message, _MAX_ERROR), last_success_time=since
            )
        )
    return out


def _failure_line(status: SourceStatus) -> str:
    if is_partial(status):
        return (
            f"{status.name}: {status.reason}: {status.last_error or ''} (the other repositories are "
            f"current; each failing one keeps its last good images)"
        )
    stale = (
        f"stale since {format_time(status.last_success_time)}, keeping its {len(status.images)} images"
        if status.last_success_time is not None
        else "no successful sync yet"
    )
    return f"{status.name}: {status.reason}: {status.last_error or ''} ({stale})"


def _dropped_candidates(sources: Sequence[SourceStatus]) -> str:
    """``"FilteredOut 12, InvalidReference 1"``: candidates healthy sources returned and dropped,
    by reason, summed over sources; empty when they returned none (a healthy empty answer)."""
    totals: dict[str, int] = {}
    found = 0
    for source in sources:
        if not source.healthy:
            continue
        found += source.images_found
        for d in source.dropped:
            totals[d.reason] = totals.get(d.reason, 0) + d.count
    if not totals and not found:
        return ""
    parts = [f"{reason} {count}" for reason, count in sorted(totals.items())]
    return ", ".join(parts) or f"{found} found, none kept"


def build_conditions(
    previous: Sequence[Condition],
    *,
    generation: int | None,
    sources: Sequence[SourceStatus],
    image_count: int,
    image_filter_error: str | None,
    all_failed: bool,
    published_at: datetime | None,
    now: datetime,
) -> list[Condition]:
    """``SourcesHealthy`` and ``Ready`` for the new status (other condition types are kept).

    * ``SourcesHealthy`` is True with ``AllSourcesHealthy``, or False naming every broken source,
      its reason and since when it is stale. The reason is the failing sources' own reason when
      they share one (``Unauthorized``, ``Timeout``, ``SecretNotFound``...), else ``SourceFailed``.
    * ``Ready`` is False with ``InvalidImageFilter`` when the filter cannot be used, False with
      ``AllSourcesFailed`` when no source answered (the previous images are kept: the message says
      from when), otherwise True (``Discovered``, or ``PartiallyDiscovered`` when some sources only
      contribute their last-known-good images), except that a result of 0 images although the
      sources answered with candidates is False with ``AllCandidatesDropped``: a filter, a template
      or the references themselves dropped every one, which is a mistake far more often than an
      intent, and must not look like a healthy empty answer.
    """
    failing = [s for s in sources if not s.healthy and s.last_sync_time is not None]
    if not any(s.last_sync_time is not None for s in sources):
        healthy = condition(
            SOURCES_HEALTHY,
            "Unknown",
            NOT_SYNCED,
            "no source has been queried yet",
            generation=generation,
            now=now,
        )
    elif not failing:
        healthy = condition(
            SOURCES_HEALTHY,
            "True",
            ALL_SOURCES_HEALTHY,
            f"all {len(sources)} sources healthy",
            generation=generation,
            now=now,
        )
    else:
        reasons = {s.reason for s in failing}
        healthy = condition(
            SOURCES_HEALTHY,
            "False",
            (reasons.pop() or SOURCE_FAILED) if len(reasons) == 1 else SOURCE_FAILED,
            _truncate(
                f"{len(failing)} of {len(sources)} sources failing: "
                + "; ".join(_failure_line(s) for s in failing),
                MAX_MESSAGE,
            ),
            generation=generation,
            now=now,
        )

    if image_filter_error is not None:
        ready = condition(
            READY,
            "False",
            "InvalidImageFilter",
            _truncate(
                f"{image_filter_error}; keeping the {image_count} images published at {format_time(published_at)}",
                MAX_MESSAGE,
            ),
            generation=generation,
            now=now,
        )
    elif all_failed:
        kept = (
            f"keeping the {image_count} images published at {format_time(published_at)} (stale since then)"
            if published_at is not None
            else "no images discovered yet"
        )
        ready = condition(
            READY, "False", ALL_SOURCES_FAILED, f"every source failed; {kept}", generation=generation, now=now
        )
    elif failing:
        ready = condition(
            READY,
            "True",
            PARTIALLY_DISCOVERED,
            _truncate(
                f"{image_count} images; "
                + ", ".join(f"{s.name} failing ({s.reason})" for s in failing)
                + ", using last-known-good results",
                MAX_MESSAGE,
            ),
            generation=generation,
            now=now,
        )
    elif image_count == 0 and (dropped := _dropped_candidates(sources)):
        ready = condition(
            READY,
            "False",
            ALL_CANDIDATES_DROPPED,
            _truncate(
                f"0 images: every candidate the sources returned was dropped ({dropped}); "
                "check imageFilter, tagFilter and the templates against the sources' status",
                MAX_MESSAGE,
            ),
            generation=generation,
            now=now,
        )
    else:
        ready = condition(
            READY,
            "True",
            DISCOVERED,
            f"{image_count} images from {len(sources)} sources",
            generation=generation,
            now=now,
        )
    out = set_condition(list(previous), ready)
    return set_condition(out, healthy)


def unreadable_spec_status(
    previous: DiscoveryPolicyStatus, *, generation: int | None, error: str, now: datetime
) -> DiscoveryPolicyStatus:
    """The stored status with ``Ready`` False/``InvalidSpec``; everything discovered is kept.

    The API server validated the spec against the installed CRD, so this only happens when the CRD
    and the operator are of different versions. Nothing is queried until the spec (or the operator)
    changes, and the last published images stay for the CachedImageSets that use them.
    """
    ready = condition(
        READY,
        "False",
        INVALID_SPEC,
        _truncate(
            f"this operator cannot read the spec (CRD and operator versions differ?): {error}", MAX_MESSAGE
        ),
        generation=generation,
        now=now,
    )
    return previous.model_copy(update={"conditions": set_condition(previous.conditions, ready)})
