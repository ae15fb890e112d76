"""PullPolicy -> ``status.imagesUsing``: how many CachedImages use each policy.

``wiring`` registers the watches; ``reconciler`` is one pass over a policy.
"""

from drop_operator.controllers.pullpolicy.reconciler import PullPolicyReconciler
from drop_operator.controllers.pullpolicy.wiring import CONTROLLER_NAME, setup

__all__ = ["CONTROLLER_NAME", "PullPolicyReconciler", "setup"]
