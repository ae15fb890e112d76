"""Wiring of the PullPolicy status controller into a :class:`~drop_operator.runtime.manager.Manager`.

* PullPolicy spec changes (and adds, deletes) reconcile the policy itself, at once;
* a CachedImage added, deleted or moved to another policy reconciles the policies it referenced
  before and after, debounced (:mod:`drop_operator.controllers.common.coalesce`): a thousand
  images created in a burst cost one status write once the burst pauses, and one every
  ``STATUS_MAX_DELAY`` seconds while it does not. An image's status writes do not count; the
  informer's periodic resync does, debounced too, so the count is re-checked now and then.
"""

from __future__ import annotations

from drop_operator.controllers.common import (
    IMAGES_BY_PULL_POLICY,
    STATUS_MAX_DELAY,
    STATUS_QUIET,
    pull_policy_changed,
    pull_policy_of,
)
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES
from drop_operator.controllers.pullpolicy.reconciler import PullPolicyReconciler
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime.manager import Manager
from drop_operator.runtime.predicates import any_of, generation_changed, resynced
from drop_operator.runtime.workqueue import Debounce

__all__ = ["CONTROLLER_NAME", "setup"]

CONTROLLER_NAME = "pullpolicy-status"


def setup(manager: Manager, settings: OperatorSettings) -> PullPolicyReconciler:
    """Register the informers, the index and the controller; returns the reconciler."""
    policies = manager.informer(PULL_POLICIES)
    images = manager.informer(CACHED_IMAGES)
    images.ensure_index(IMAGES_BY_PULL_POLICY, pull_policy_of)
    reconciler = PullPolicyReconciler(manager.client, policies=policies, images=images)
    controller = manager.controller(CONTROLLER_NAME, reconciler.reconcile, workers=1)
    controller.watch_for(policies, predicates=(generation_changed,))
    controller.watch_mapped(
        images,
        pull_policy_of,
        predicates=(any_of(pull_policy_changed, resynced),),
        debounce=Debounce(STATUS_QUIET, STATUS_MAX_DELAY),
    )
    return reconciler
