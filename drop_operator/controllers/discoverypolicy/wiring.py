"""The DiscoveryPolicy reconciler: query each policy's sources on its interval, publish the ranked images.

Modules: ``schedule`` (when to sync), ``secrets`` (credentials from Secrets), ``sourcebuild`` (spec →
discovery sources), ``sync`` (one pass over the sources, merged with last-known-good results, shared
with ``drop-operator discover``), ``status`` (conditions and per-source status), ``reconciler``
(the Kubernetes side: gate, status writes, events), ``metrics``. :func:`setup` wires it into a
:class:`~drop_operator.runtime.manager.Manager`.
"""

from __future__ import annotations

from drop_operator.controllers.discoverypolicy.reconciler import DiscoveryReconciler
from drop_operator.controllers.kinds import DISCOVERY_POLICIES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime.manager import Manager
from drop_operator.runtime.predicates import generation_changed

__all__ = ["CONTROLLER_NAME", "setup"]

CONTROLLER_NAME = "discoverypolicy"


def setup(manager: Manager, settings: OperatorSettings) -> DiscoveryReconciler:
    """Register the informer, the watch and the controller; returns the reconciler.

    Only spec changes (and adds/deletes) enqueue a policy: ``generation_changed`` drops the
    reconciler's own status writes, and the reconciler requeues itself for the next due time.
    Secrets are not watched; they are read by name on each sync.
    """
    policies = manager.informer(DISCOVERY_POLICIES)
    reconciler = DiscoveryReconciler(
        manager.client,
        settings,
        policies=policies,
        recorder=manager.event_recorder("drop-operator-discovery"),
    )
    controller = manager.controller(CONTROLLER_NAME, reconciler.reconcile, workers=settings.workers)
    controller.watch_for(policies, predicates=[generation_changed])
    return reconciler
