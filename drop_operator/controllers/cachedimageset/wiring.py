"""CachedImageSet -> CachedImage: materialize static and discovered images as owned children.

This reconciler meets the discovery reconciler only through the API server: it reads
``DiscoveryPolicy.status.discoveredImages`` from its informer and never imports the discovery code.
:func:`setup` wires it into a :class:`~drop_operator.runtime.manager.Manager`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from drop_operator.controllers.cachedimageset.plan import child_is_ready
from drop_operator.controllers.cachedimageset.reconciler import (
    DISCOVERY_POLICY_INDEX,
    OWNER_INDEX,
    READY_OWNER_INDEX,
    ImageSetReconciler,
    owner_uids,
    ready_owner_uids,
    referenced_discovery_policy,
)
from drop_operator.controllers.common import STATUS_MAX_DELAY, STATUS_QUIET, meta, pull_policy_of
from drop_operator.controllers.kinds import (
    CACHED_IMAGE_SETS,
    CACHED_IMAGES,
    DISCOVERY_POLICIES,
    PULL_POLICIES,
)
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime.controller import controller_owner_key
from drop_operator.runtime.manager import Manager
from drop_operator.runtime.predicates import any_of, generation_changed, resynced
from drop_operator.runtime.resources import object_key
from drop_operator.runtime.workqueue import Debounce

__all__ = [
    "CONTROLLER_NAME",
    "child_readiness_changed",
    "child_restructured",
    "discovery_policy_changed",
    "setup",
]

CONTROLLER_NAME = "cachedimageset"
SETS_BY_PULL_POLICY = "cachedimageset.pullpolicy"
"""Index on CachedImageSets: the PullPolicy their ``pullPolicyRef`` names (same path as on images)."""

Obj = dict[str, Any]


def discovery_policy_changed(old: Obj | None, new: Obj) -> bool:
    """Predicate on DiscoveryPolicies: only what a set reads (its list, conditions, generations).

    ``lastSyncTime`` moving on every sync, and resync replays, do not wake the sets.
    """
    if old is None:
        return True

    def view(obj: Mapping[str, Any]) -> tuple[Any, ...]:
        metadata = meta(obj)
        status = obj.get("status") or {}
        return (
            metadata.generation,
            metadata.uid,
            status.get("observedGeneration"),
            status.get("discoveredImages"),
            status.get("conditions"),
            bool(status.get("lastSyncTime")),
        )

    return view(old) != view(new)


_CHILD_FIELDS_READ = ("generation", "labels", "ownerReferences", "deletionTimestamp")


def child_restructured(old: Obj | None, new: Obj) -> bool:
    """Predicate on children: added, deleted, or changed in what the diff reads (spec, which moves
    ``generation``; labels; owners; deletion). Status writes and resync replays are not."""
    if old is None:
        return True
    before, after = old.get("metadata") or {}, new.get("metadata") or {}
    return any(before.get(f) != after.get(f) for f in _CHILD_FIELDS_READ)


def child_readiness_changed(old: Obj | None, new: Obj) -> bool:
    """Predicate on children: an update that turned ``Ready`` true or false (what the set counts)."""
    return old is not None and child_is_ready(old) != child_is_ready(new)


def setup(manager: Manager, settings: OperatorSettings) -> ImageSetReconciler:
    """Register the informers, indexes, watches and the controller; returns the reconciler."""
    sets = manager.informer(CACHED_IMAGE_SETS)
    children = manager.informer(CACHED_IMAGES)
    policies = manager.informer(DISCOVERY_POLICIES)
    pull_policies = manager.informer(PULL_POLICIES)
    children.ensure_index(OWNER_INDEX, owner_uids)
    children.ensure_index(READY_OWNER_INDEX, ready_owner_uids)
    sets.ensure_index(DISCOVERY_POLICY_INDEX, referenced_discovery_policy)
    sets.ensure_index(SETS_BY_PULL_POLICY, pull_policy_of)

    reconciler = ImageSetReconciler(
        manager.client,
        settings,
        sets=sets,
        children=children,
        policies=policies,
        pull_policies=pull_policies,
        recorder=manager.event_recorder("drop-operator-imageset"),
    )
    controller = manager.controller(CONTROLLER_NAME, reconciler.reconcile, workers=settings.workers)

    def diff_again(keys: Iterable[str]) -> list[str]:
        """The map functions of every event but a child's readiness: a full pass is due."""
        found = list(keys)
        for key in found:
            reconciler.full_pass_due(key)
        return found

    # The set's own spec changes, and its periodic resync (a level-triggered full re-check).
    controller.watch_mapped(
        sets,
        lambda owner: diff_again((object_key(owner),)),
        predicates=[any_of(generation_changed, resynced)],
    )
    # Children: a burst of events (a thousand created, a thousand turning Ready) is one pass once it
    # pauses, at most STATUS_MAX_DELAY apart while it goes on; only readiness flips skip the diff.
    coalesced = Debounce(STATUS_QUIET, STATUS_MAX_DELAY)

    def owner_of(child: Obj) -> tuple[str, ...]:
        owner = controller_owner_key(child, CACHED_IMAGE_SETS.kind)
        return (owner,) if owner else ()

    controller.watch_mapped(
        children, lambda c: diff_again(owner_of(c)), predicates=[child_restructured], debounce=coalesced
    )
    controller.watch_mapped(children, owner_of, predicates=[child_readiness_changed], debounce=coalesced)

    def sets_of(policy: Obj) -> list[str]:
        return diff_again(object_key(s) for s in sets.by_index(DISCOVERY_POLICY_INDEX, meta(policy).name))

    controller.watch_mapped(policies, sets_of, predicates=[discovery_policy_changed])
    # A PullPolicy appearing or going away mends or breaks the sets that reference it (Ready).
    controller.watch_mapped(
        pull_policies,
        lambda policy: diff_again(
            object_key(s) for s in sets.by_index(SETS_BY_PULL_POLICY, meta(policy).name)
        ),
        events=("add", "delete"),
    )
    return reconciler
