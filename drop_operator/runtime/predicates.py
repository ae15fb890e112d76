"""Event filters for ``Controller.watch_for``/``watch_mapped``.

A predicate sees ``(old, new)`` for updates and ``(None, obj)`` for adds and deletes; adds and
deletes always pass the built-ins here, because only updates can be "nothing relevant changed".
The classic use: ``generation_changed`` on a controller's own kind stops its status writes from
triggering itself again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Predicate = Callable[[Obj | None, Obj], bool]


def _meta(obj: Obj) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta


def generation_changed(old: Obj | None, new: Obj) -> bool:
    """Spec changes (and deletion starting, which moves generation too) but not status-only writes.

    Objects without a generation (most core kinds) always pass.
    """
    if old is None:
        return True
    before, after = _meta(old).get("generation"), _meta(new).get("generation")
    if after is None:
        return True
    return bool(
        before != after or (_meta(old).get("deletionTimestamp") != _meta(new).get("deletionTimestamp"))
    )


def labels_changed(old: Obj | None, new: Obj) -> bool:
    return old is None or (_meta(old).get("labels") or {}) != (_meta(new).get("labels") or {})


def resource_version_changed(old: Obj | None, new: Obj) -> bool:
    """Drops periodic resync replays (same object twice) but keeps every real change."""
    return old is None or _meta(old).get("resourceVersion") != _meta(new).get("resourceVersion")


def resynced(old: Obj | None, new: Obj) -> bool:
    """Only the periodic resync replays (the same object twice), for level-triggered re-checks
    alongside a predicate that otherwise drops what did not change (``any_of(p, resynced)``)."""
    return old is not None and _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion")


def any_of(*predicates: Predicate) -> Predicate:
    def combined(old: Obj | None, new: Obj) -> bool:
        return any(p(old, new) for p in predicates)

    return combined
