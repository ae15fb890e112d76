"""Informer indexes more than one controller reads, defined once so every setup asks for the same one.

``Informer.ensure_index`` adds an index once per shared informer; passing these very functions
makes a second setup a no-op instead of a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["IMAGES_BY_PULL_POLICY", "pull_policy_of"]

IMAGES_BY_PULL_POLICY = "cachedimage.pullpolicy"
"""Index on CachedImages: the name of the PullPolicy they reference."""


def pull_policy_of(image: Mapping[str, Any]) -> Iterable[str]:
    """Index function of :data:`IMAGES_BY_PULL_POLICY`: ``spec.pullPolicyRef.name``, if any."""
    name = ((image.get("spec") or {}).get("pullPolicyRef") or {}).get("name")
    return (str(name),) if name else ()
