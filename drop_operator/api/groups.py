"""The API group, its version and the naming of each kind.

Everything that needs a kind's plural or short names (CRD generation, the controllers' resource
descriptors, the CLI) reads it from :data:`KINDS`, so a name is spelled in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drop_operator.api.cachedimage import CachedImage
from drop_operator.api.cachedimageset import CachedImageSet
from drop_operator.api.discoverypolicy import DiscoveryPolicy
from drop_operator.api.meta import KubeObject
from drop_operator.api.pullpolicy import PullPolicy

__all__ = [
    "API_VERSION",
    "CACHED_IMAGE",
    "CACHED_IMAGE_SET",
    "CATEGORIES",
    "DISCOVERY_POLICY",
    "GROUP",
    "KINDS",
    "PULL_POLICY",
    "VERSION",
    "KindInfo",
]

GROUP = "drop.corewire.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORIES = ("drop",)


@dataclass(frozen=True)
class KindInfo:
    """Names of one kind; all drop kinds are cluster-scoped."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    model: type[KubeObject]
    printer_columns: tuple[dict[str, Any], ...] = ()
    categories: tuple[str, ...] = field(default=CATEGORIES)
    group: str = GROUP
    version: str = VERSION
    namespaced: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        """``<plural>.<group>``, the CustomResourceDefinition's name."""
        return f"{self.plural}.{self.group}"


def _column(name: str, type_: str, path: str, description: str, priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path, "description": description}
    if priority:
        column["priority"] = priority
    return column


def _condition(type_: str, field_: str = "status") -> str:
    return f'.status.conditions[?(@.type=="{type_}")].{field_}'


_AGE = _column("Age", "date", ".metadata.creationTimestamp", "Time since creation")

DISCOVERY_POLICY = KindInfo(
    "DiscoveryPolicy",
    "discoverypolicies",
    "discoverypolicy",
    ("dp",),
    DiscoveryPolicy,
    (
        _column("Images", "integer", ".status.imageCount", "Images discovered"),
        _column("Ready", "string", _condition("Ready"), "Discovered images are available"),
        _column(
            "Sources Healthy",
            "string",
            _condition("SourcesHealthy"),
            "Every source answered on the last sync",
        ),
        _column("Last Sync", "date", ".status.lastSyncTime", "Time of the last sync"),
        _column("Interval", "string", ".spec.interval", "Time between syncs", priority=1),
        _AGE,
    ),
)
CACHED_IMAGE_SET = KindInfo(
    "CachedImageSet",
    "cachedimagesets",
    "cachedimageset",
    ("cis",),
    CachedImageSet,
    (
        _column("Policy", "string", ".spec.discoveryPolicyRef.name", "DiscoveryPolicy feeding the set"),
        _column("Desired", "integer", ".status.desired", "Distinct images wanted"),
        _column("Ready", "integer", ".status.ready", "Children that are Ready"),
        _column("Status", "string", _condition("Ready", "reason"), "Reason of the Ready condition"),
        _AGE,
    ),
)
CACHED_IMAGE = KindInfo(
    "CachedImage",
    "cachedimages",
    "cachedimage",
    ("ci",),
    CachedImage,
    (
        _column("Image", "string", ".spec.image", "Repository"),
        _column("Tag", "string", ".spec.tag", "Tag (empty when pinned by digest, or latest)"),
        _column("Digest", "string", ".spec.digest", "Digest", priority=1),
        _column("Target", "integer", ".status.targetNodes", "Nodes that should hold the image"),
        _column("Cached", "integer", ".status.cachedNodes", "Nodes that hold the image"),
        _column("Failed", "integer", ".status.failedNodes", "Nodes whose last pull failed"),
        _column("Ready", "string", _condition("Ready"), "Cached on every target node"),
        _AGE,
    ),
)
PULL_POLICY = KindInfo(
    "PullPolicy",
    "pullpolicies",
    "pullpolicy",
    ("pp",),
    PullPolicy,
    (
        _column("Nodes/Image", "integer", ".spec.maxConcurrentNodes", "Nodes pulling one image at once"),
        _column("Pulls", "integer", ".spec.maxConcurrentPulls", "Pulls in flight across images"),
        _column("Per Node", "integer", ".spec.maxPullsPerNode", "Pulls in flight per node"),
        _column("Images", "integer", ".status.imagesUsing", "CachedImages using this policy"),
        _AGE,
    ),
)

#: Every kind of the group, keyed by kind.
KINDS: dict[str, KindInfo] = {
    k.kind: k for k in (DISCOVERY_POLICY, CACHED_IMAGE_SET, CACHED_IMAGE, PULL_POLICY)
}
