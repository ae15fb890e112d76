"""Pydantic models of the drop.corewire.io/v1alpha1 kinds; the CRDs are generated from them.

This is the lowest layer: it knows pydantic and nothing of Kubernetes clients or the reconcilers.
Regenerate the CRD YAML after changing a model: ``python -m devtools.crdgen``.
"""

from drop_operator.api.cachedimage import CachedImage, CachedImageSpec, CachedImageStatus, NodeFailure
from drop_operator.api.cachedimageset import CachedImageSet, CachedImageSetSpec, CachedImageSetStatus
from drop_operator.api.discoverypolicy import (
    DiscoveredImage,
    DiscoveryPolicy,
    DiscoveryPolicySpec,
    DiscoveryPolicyStatus,
    DiscoverySource,
    DroppedCount,
    PrometheusSourceSpec,
    RegistrySourceSpec,
    RepositoryStatus,
    ScoredImage,
    SourceImage,
    SourceStatus,
)
from drop_operator.api.duration import format_duration, parse_duration
from drop_operator.api.groups import (
    API_VERSION,
    CACHED_IMAGE,
    CACHED_IMAGE_SET,
    DISCOVERY_POLICY,
    GROUP,
    KINDS,
    PULL_POLICY,
    VERSION,
    KindInfo,
)
from drop_operator.api.meta import (
    Condition,
    KubeObject,
    LocalObjectReference,
    ObjectMeta,
    OwnerReference,
    Toleration,
    find_condition,
    is_condition_true,
    set_condition,
    utcnow,
)
from drop_operator.api.pullpolicy import (
    DEFAULT_PULL_POLICY,
    FailureBackoff,
    PullPolicy,
    PullPolicySpec,
    PullPolicyStatus,
)
from drop_operator.api.pulltemplate import PullTemplate
from drop_operator.api.warmup import DEFAULT_WARMING_TAINT, WarmUp

__all__ = [
    "API_VERSION",
    "CACHED_IMAGE",
    "CACHED_IMAGE_SET",
    "DEFAULT_PULL_POLICY",
    "DEFAULT_WARMING_TAINT",
    "DISCOVERY_POLICY",
    "GROUP",
    "KINDS",
    "PULL_POLICY",
    "VERSION",
    "CachedImage",
    "CachedImageSet",
    "CachedImageSetSpec",
    "CachedImageSetStatus",
    "CachedImageSpec",
    "CachedImageStatus",
    "Condition",
    "DiscoveredImage",
    "DiscoveryPolicy",
    "DiscoveryPolicySpec",
    "DiscoveryPolicyStatus",
    "DiscoverySource",
    "DroppedCount",
    "FailureBackoff",
    "KindInfo",
    "KubeObject",
    "LocalObjectReference",
    "NodeFailure",
    "ObjectMeta",
    "OwnerReference",
    "PrometheusSourceSpec",
    "PullPolicy",
    "PullPolicySpec",
    "PullPolicyStatus",
    "PullTemplate",
    "RegistrySourceSpec",
    "RepositoryStatus",
    "ScoredImage",
    "SourceImage",
    "SourceStatus",
    "Toleration",
    "WarmUp",
    "find_condition",
    "format_duration",
    "is_condition_true",
    "parse_duration",
    "set_condition",
    "utcnow",
]
