"""CachedImageSet -> CachedImage: materialize static and discovered images as owned children.

This reconciler meets the discovery reconciler only through the API server: it reads
``DiscoveryPolicy.status.discoveredImages`` from its informer and never imports the discovery code.
:func:`setup` wires it into a :class:`~drop_operator.runtime.manager.Manager`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drop_operator.controllers.cachedimageset.reconciler import (
    DISCOVERY_POLICY_INDEX,
    OWNER_INDEX,
    ImageSetReconciler,
    owner_uids,
    referenced_discovery_policy,
)
from drop_operator.controllers.common import meta, pull_policy_of
from drop_operator.controllers.kinds import (
    CACHED_IMAGE_SETS,
    CACHED_IMAGES,
    DISCOVERY_POLICIES,
    PULL_POLICIES,
)
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime.manager import Manager
from drop_operator.runtime.predicates import generation_changed
from drop_operator.runtime.resources import object_key

__all__ = ["CONTROLLER_NAME", "discovery_policy_changed", "setup"]

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


def setup(manager: Manager, settings: OperatorSettings) -> ImageSetReconciler:
    """Register the informers, indexes, watches and the controller; returns the reconciler."""
    sets = manager.informer(CACHED_IMAGE_SETS)
    children = manager.informer(CACHED_IMAGES)
    policies = manager.informer(DISCOVERY_POLICIES)
    pull_policies = manager.informer(PULL_POLICIES)
    children.ensure_index(OWNER_INDEX, owner_uids)
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
    controller.watch_for(sets, predicates=[generation_changed])
    controller.watch_owned(children, CACHED_IMAGE_SETS.kind)

    def sets_of(policy: Obj) -> list[str]:
        return [object_key(s) for s in sets.by_index(DISCOVERY_POLICY_INDEX, meta(policy).name)]

    controller.watch_mapped(policies, sets_of, predicates=[discovery_policy_changed])
    # A PullPolicy appearing or going away mends or breaks the sets that reference it (Ready).
    controller.watch_mapped(
        pull_policies,
        lambda policy: [object_key(s) for s in sets.by_index(SETS_BY_PULL_POLICY, meta(policy).name)],
        events=("add", "delete"),
    )
    return reconciler
