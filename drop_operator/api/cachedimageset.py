"""CachedImageSet: a set of images (static and/or discovered) materialized as CachedImage children.

Both ``discoveryPolicyRef`` and ``images`` are optional, and a set with neither is valid: it desires
nothing and is Ready with 0/0. Refusing it would make GitOps flows that fill a set in steps fail to
apply, and an empty set is harmless.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from drop_operator.api.meta import Condition, KubeModel, KubeObject, LocalObjectReference, list_map
from drop_operator.api.pulltemplate import PullTemplate

__all__ = [
    "CACHED_IMAGE_SET_LABEL",
    "DISCOVERY_READY",
    "READY",
    "CachedImageSet",
    "CachedImageSetSpec",
    "CachedImageSetStatus",
]

#: Condition types written by the image-set reconciler.
READY = "Ready"
DISCOVERY_READY = "DiscoveryReady"

#: Label on each CachedImage child naming its set (truncated + hash when longer than 63 characters).
CACHED_IMAGE_SET_LABEL = "drop.corewire.io/cachedimageset"


class CachedImageSetSpec(PullTemplate):
    """Which images to keep cached, and the pull settings every child inherits."""

    discovery_policy_ref: LocalObjectReference | None = None
    """DiscoveryPolicy whose ``status.discoveredImages`` are added to the set."""
    images: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        default_factory=list, max_length=1000
    )
    """Static image references (``nginx:1.25``, ``repo@sha256:...``); duplicates collapse into one child."""


class CachedImageSetStatus(KubeModel):
    """Counts of the set's children and conditions."""

    observed_generation: int | None = None
    desired: int = 0
    """Distinct images the set wants (static and discovered, deduplicated)."""
    managed: int = 0
    """CachedImage children that exist."""
    ready: int = 0
    """Children whose ``Ready`` condition is True."""
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=list_map("type"),
    )
    """``Ready`` and ``DiscoveryReady`` (the referenced policy is missing, failing or stale)."""


class CachedImageSet(KubeObject):
    """Creates one CachedImage per desired image and removes the ones no longer desired."""

    spec: CachedImageSetSpec = Field(default_factory=CachedImageSetSpec)
    status: CachedImageSetStatus = Field(default_factory=CachedImageSetStatus)
