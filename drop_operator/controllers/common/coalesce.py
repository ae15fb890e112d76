"""Coalesced status writes: what a status that counts other objects waits for, and what it compares with.

A CachedImageSet's status counts its children, a PullPolicy's ``imagesUsing`` counts the
CachedImages that reference it. When a thousand children appear, a status rewritten on every
child event costs a thousand writes that nobody reads. So the controllers that keep such a status
queue its object through a debounce (``runtime.Debounce(STATUS_QUIET, STATUS_MAX_DELAY)`` on the
watch of the counted objects):

* the object is reconciled once its counted objects were quiet for :data:`STATUS_QUIET` seconds,
  each new event restarting the wait: a burst of any size costs one write once it settles;
* and at the latest :data:`STATUS_MAX_DELAY` seconds after the first event of a burst, so a burst
  that never pauses (a slow rollout) still shows its progress that often.

Events of the object itself (its spec) are not debounced: a spec change shows at once.

:func:`status_base` is the other half: a status equal to the last one written is never written
again, even while the informer still shows the object from before that write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["STATUS_MAX_DELAY", "STATUS_QUIET", "status_base"]

STATUS_QUIET = 1.0
"""Seconds without an event for an object's counted objects before its status is recomputed."""
STATUS_MAX_DELAY = 5.0
"""Seconds after the first event of a burst by which the status is recomputed however many follow."""


def status_base(
    cached: Mapping[str, Any],
    written: tuple[str, Mapping[str, Any]] | None,
) -> Mapping[str, Any]:
    """The status to build on and compare with: the cached object's, or the one this process wrote
    last while the cache still shows the object from before that write.

    ``written`` is ``(resourceVersion the status was written over, status written)``. Building on it
    keeps the transition times it set (a condition that changed in that write keeps its
    ``lastTransitionTime`` instead of getting a newer one), so an unchanged status compares equal
    and is not written twice.
    """
    rv = str((cached.get("metadata") or {}).get("resourceVersion") or "")
    if written is not None and written[0] == rv:
        return written[1]
    status: Mapping[str, Any] = cached.get("status") or {}
    return status
