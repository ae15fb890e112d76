"""The set's status: counts and the ``Ready`` / ``DiscoveryReady`` conditions.

Built as a whole from the current status (transition times of unchanged conditions are kept), so
"nothing changed" is a plain equality and the reconciler writes status only when it differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from drop_operator.api.cachedimageset import DISCOVERY_READY, READY, CachedImageSetStatus
from drop_operator.api.meta import Condition, ConditionStatus, set_condition
from drop_operator.controllers.cachedimageset.desired import InvalidImage
from drop_operator.controllers.cachedimageset.discovered import (
    POLICY_NOT_FOUND,
    POLICY_PENDING,
    DiscoveryView,
)
from drop_operator.controllers.common import condition, first_and_more, meta

__all__ = [
    "CHILDREN_FAILED",
    "CHILDREN_PENDING",
    "DISCOVERY_PENDING",
    "DISCOVERY_POLICY_NOT_FOUND",
    "IMAGES_CACHED",
    "IMAGES_CACHING",
    "INVALID_IMAGES",
    "PULL_POLICY_NOT_FOUND",
    "build_status",
    "current_status",
    "parse_status",
]

#: Ready means what it means on every drop kind: done. For a set, every desired image is a
#: CachedImage that is itself Ready (cached on all its target nodes); an empty set is Ready 0/0.
IMAGES_CACHED = "ImagesCached"
IMAGES_CACHING = "ImagesCaching"
CHILDREN_PENDING = "ChildrenPending"
CHILDREN_FAILED = "ChildrenFailed"
INVALID_IMAGES = "InvalidImages"
#: A broken reference outranks every count: ``kubectl get`` must show it, not "0/0 Ready".
DISCOVERY_POLICY_NOT_FOUND = "DiscoveryPolicyNotFound"
DISCOVERY_PENDING = "DiscoveryPending"
PULL_POLICY_NOT_FOUND = "PullPolicyNotFound"
_MAX_LISTED = 5


def current_status(owner: Mapping[str, Any]) -> CachedImageSetStatus:
    """The stored status, parsed; an unparsable one counts as empty (and gets rewritten)."""
    return parse_status(owner.get("status") or {})


def parse_status(status: Mapping[str, Any]) -> CachedImageSetStatus:
    """A status as written or stored, parsed; an unparsable one counts as empty."""
    try:
        return CachedImageSetStatus.model_validate(status)
    except ValueError:
        return CachedImageSetStatus()


def _listing(items: Sequence[str]) -> str:
    return first_and_more(items, _MAX_LISTED)


def _ready_condition(
    generation: int | None,
    *,
    desired: int,
    managed: int,
    ready: int,
    invalid: Sequence[InvalidImage],
    failures: Sequence[str],
    broken: tuple[str, str] | None,
) -> Condition:
    counts = f"{managed}/{desired} CachedImages exist, {ready} ready"
    status: ConditionStatus
    if broken is not None:
        status, reason, message = "False", broken[0], f"{broken[1]} ({counts})"
    elif failures:
        status, reason = "False", CHILDREN_FAILED
        message = (
            f"{counts}; {len(failures)} write{'s' if len(failures) != 1 else ''} failed: {_listing(failures)}"
        )
    elif invalid:
        status, reason = "False", INVALID_IMAGES
        message = f"{counts}; invalid images not created: " + _listing(
            [f"{i.reference!r} ({i.reason})" for i in invalid]
        )
    elif managed < desired:
        status, reason, message = "False", CHILDREN_PENDING, counts
    elif ready < desired:
        status, reason, message = "False", IMAGES_CACHING, counts
    else:
        status, reason, message = "True", IMAGES_CACHED, counts
    return condition(READY, status, reason, message, generation=generation)


def _broken_reference(
    discovery: DiscoveryView | None, missing_pull_policy: str | None
) -> tuple[str, str] | None:
    """``(reason, message)`` of the first broken reference, or None."""
    if discovery is not None and discovery.reason == POLICY_NOT_FOUND:
        return DISCOVERY_POLICY_NOT_FOUND, discovery.message
    if missing_pull_policy is not None:
        return (
            PULL_POLICY_NOT_FOUND,
            f"PullPolicy {missing_pull_policy} not found; no pulls start until it exists",
        )
    if discovery is not None and discovery.reason == POLICY_PENDING:
        return DISCOVERY_PENDING, discovery.message
    return None


def build_status(
    owner: Mapping[str, Any],
    *,
    desired: int,
    managed: int,
    ready: int,
    invalid: Sequence[InvalidImage] = (),
    failures: Sequence[str] = (),
    discovery: DiscoveryView | None = None,
    missing_pull_policy: str | None = None,
    current: CachedImageSetStatus | None = None,
) -> CachedImageSetStatus:
    """The status the set should have; ``discovery`` is ``None`` when the set references no policy,
    ``missing_pull_policy`` names a ``pullPolicyRef`` that does not exist. Conditions keep the
    transition times of ``current`` (default: the owner's stored status) while their status holds.

    ``Ready`` is False while a reference is broken, whatever the counts say: a DiscoveryPolicy that
    does not exist (``DiscoveryPolicyNotFound``) or has never synced (``DiscoveryPending``), or a
    PullPolicy that does not exist (``PullPolicyNotFound``; no pull starts until it does).
    """
    generation = meta(owner).generation
    broken = _broken_reference(discovery, missing_pull_policy)
    conditions = list((current if current is not None else current_status(owner)).conditions)
    conditions = set_condition(
        conditions,
        _ready_condition(
            generation,
            desired=desired,
            managed=managed,
            ready=ready,
            invalid=invalid,
            failures=failures,
            broken=broken,
        ),
    )
    if discovery is None:
        conditions = [c for c in conditions if c.type != DISCOVERY_READY]
    else:
        conditions = set_condition(
            conditions,
            condition(
                DISCOVERY_READY, discovery.status, discovery.reason, discovery.message, generation=generation
            ),
        )
    return CachedImageSetStatus(
        observed_generation=generation,
        desired=desired,
        managed=managed,
        ready=ready,
        conditions=conditions,
    )
