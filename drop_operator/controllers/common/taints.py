"""Taints against tolerations, the rule of the scheduler, for every controller that picks nodes.

Pure functions over taints as the API server returns them (``{"key", "value", "effect"}`` dicts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from drop_operator.api import Toleration

__all__ = ["tolerates", "tolerates_taint"]

Obj = Mapping[str, Any]


def tolerates_taint(toleration: Toleration, taint: Obj) -> bool:
    """Kubernetes' ``Toleration.ToleratesTaint``: effect, key, then operator and value."""
    effect = taint.get("effect") or ""
    if toleration.effect and toleration.effect != effect:
        return False
    if toleration.key and toleration.key != taint.get("key"):
        return False
    if toleration.operator == "Exists":
        return True
    if not toleration.key:  # an empty key only makes sense with Exists
        return False
    return (toleration.value or "") == (taint.get("value") or "")


def tolerates(tolerations: Sequence[Toleration], taint: Obj) -> bool:
    return any(tolerates_taint(t, taint) for t in tolerations)
