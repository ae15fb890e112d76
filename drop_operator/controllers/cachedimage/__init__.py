"""CachedImage -> paced pull pods on the target nodes.

``wiring`` registers the informers, indexes and watches; ``reconciler`` is one pass over an image.
"""

from drop_operator.controllers.cachedimage.reconciler import CachedImageReconciler
from drop_operator.controllers.cachedimage.wiring import CONTROLLER_NAME, setup

__all__ = ["CONTROLLER_NAME", "CachedImageReconciler", "setup"]
