"""CachedImageSet -> CachedImage: materialize static and discovered images as owned children.

``wiring`` registers the informers, indexes and watches; ``reconciler`` is one pass over a set.
"""

from drop_operator.controllers.cachedimageset.reconciler import ImageSetReconciler
from drop_operator.controllers.cachedimageset.wiring import CONTROLLER_NAME, setup

__all__ = ["CONTROLLER_NAME", "ImageSetReconciler", "setup"]
