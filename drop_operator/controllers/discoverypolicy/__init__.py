"""DiscoveryPolicy -> ranked ``status.discoveredImages``: query each policy's sources on its interval.

``wiring`` registers the informer and watch; ``reconciler`` is one pass over a policy.
"""

from drop_operator.controllers.discoverypolicy.reconciler import DiscoveryReconciler
from drop_operator.controllers.discoverypolicy.wiring import CONTROLLER_NAME, setup

__all__ = ["CONTROLLER_NAME", "DiscoveryReconciler", "setup"]
