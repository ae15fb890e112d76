"""Wiring of the PullPolicy status controller into a :class:`~drop_operator.runtime.manager.Manager`.

* PullPolicy spec changes (and adds, deletes) reconcile the policy itself;
* a CachedImage added, deleted or changed reconciles the policies it referenced before and after.
"""

from __future__ import annotations

from drop_operator.controllers.common import IMAGES_BY_PULL_POLICY, pull_policy_of
from drop_operator.controllers.kinds import CACHED_IMAGES, PULL_POLICIES
from drop_operator.controllers.pullpolicy.reconciler import PullPolicyReconciler
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime.manager import Manager
from drop_operator.runtime.predicates import generation_changed

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
    controller.watch_mapped(images, pull_policy_of)
    return reconciler
