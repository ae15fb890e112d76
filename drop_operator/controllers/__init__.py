"""Reconcilers, one package per kind; they meet only through object status in the API server.

Each package has the same shape (see docs/architecture.md); ``common`` is the kit they share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["register_controllers"]

if TYPE_CHECKING:
    from drop_operator.controllers.settings import OperatorSettings
    from drop_operator.runtime import Manager


def register_controllers(manager: Manager, settings: OperatorSettings) -> None:
    """Create the operator's informers and controllers on ``manager``.

    ``drop-operator run`` calls this once before ``Manager.run()``; each reconciler module adds its
    own controller here (informers are shared through ``manager.informer``), so the CLI does not need
    to know which reconcilers exist. The reconciler packages are imported here, not with this
    package, so that reading ``controllers.settings`` (the CLI's defaults) loads no reconciler.
    """
    from drop_operator.controllers import cachedimage, cachedimageset, discoverypolicy, pullpolicy, warmup

    discoverypolicy.setup(manager, settings)
    cachedimageset.setup(manager, settings)
    cachedimage.setup(manager, settings)
    pullpolicy.setup(manager, settings)
    if settings.warm_up:
        warmup.setup(manager, settings)
