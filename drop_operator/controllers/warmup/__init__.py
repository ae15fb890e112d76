"""Warm-up: a node's warming taint goes once the images gating it are cached there (or after maxWait).

It reads CachedImages (``spec.warmUp``) and their node records (ConfigMaps) and patches Nodes; it meets
the node-caching reconciler only through those objects.
"""

from drop_operator.controllers.warmup.reconciler import WarmUpReconciler
from drop_operator.controllers.warmup.wiring import CONTROLLER_NAME, setup

__all__ = ["CONTROLLER_NAME", "WarmUpReconciler", "setup"]
