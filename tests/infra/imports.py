"""What ``drop-operator run`` imports, for the lazy-import test and the memory benchmark."""

from __future__ import annotations

__all__ = ["RUN_IMPORTS"]

RUN_IMPORTS = (
    "drop_operator.cli",
    "drop_operator.runtime",
    "drop_operator.controllers.cachedimage",
    "drop_operator.controllers.cachedimageset",
    "drop_operator.controllers.discoverypolicy",
    "drop_operator.controllers.pullpolicy",
    "drop_operator.controllers.warmup",
)
"""The modules ``run`` loads: the CLI, the runtime and every controller package."""
