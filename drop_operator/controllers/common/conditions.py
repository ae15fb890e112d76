"""Building and finding conditions (KEP-1623) the same way in every controller.

Typed conditions come from :mod:`drop_operator.api.meta` (``find_condition``, ``set_condition``);
:func:`condition` builds one with the message bounded, :func:`raw_condition` finds one in an
object that is not parsed (a Node, or another controller's object read through the cache).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from drop_operator.api.meta import Condition, ConditionStatus

__all__ = ["MAX_MESSAGE", "condition", "raw_condition"]

#: Messages are cut here; the API allows 32768 but ``kubectl describe`` readers do not.
MAX_MESSAGE = 4096


def condition(
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime | None = None,
) -> Condition:
    """A condition for ``set_condition``, which keeps the old transition time while ``status`` holds.

    ``now`` is the transition time if this is a transition (default: the current second).
    """
    fields: dict[str, Any] = {"last_transition_time": now} if now is not None else {}
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:MAX_MESSAGE],
        observed_generation=generation,
        **fields,
    )


def raw_condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The ``status.conditions`` entry of ``type_`` of an unparsed object, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return cond
    return None
