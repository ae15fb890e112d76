"""Informer indexes more than one controller reads, defined once so every setup asks for the same one.

``Informer.ensure_index`` adds an index once per shared informer; passing these very functions
makes a second setup a no-op instead of a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["IMAGES_BY_PULL_POLICY", "pull_policy_changed", "pull_policy_of"]

IMAGES_BY_PULL_POLICY = "cachedimage.pullpolicy"
"""Index on CachedImages: the name of the PullPolicy they reference."""


def pull_policy_of(image: Mapping[str, Any]) -> Iterable[str]:
    """Index function of :data:`IMAGES_BY_PULL_POLICY`: ``spec.pullPolicyRef.name``, if any."""
    name = ((image.get("spec") or {}).get("pullPolicyRef") or {}).get("name")
    return (str(name),) if name else ()


def pull_policy_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Predicate on CachedImages: added, deleted, or moved to another PullPolicy.

    What a count of images per policy depends on; status writes and every other update of an
    image leave it as it is.
    """
    return old is None or tuple(pull_policy_of(old)) != tuple(pull_policy_of(new))
