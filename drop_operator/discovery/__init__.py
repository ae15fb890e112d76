"""Image discovery: sources that name images with a score, and the engine that ranks them.

Knows nothing of Kubernetes; the DiscoveryPolicy reconciler and `drop-operator discover` build
sources from a policy and a Secret's data and call `rank()` on the results.
"""

from drop_operator.discovery.engine import (
    ImageFilter,
    InvalidReferences,
    RankedImage,
    Ranking,
    SourceCandidates,
    rank,
)
from drop_operator.discovery.errors import DiscoveryError, InvalidImageFilterError, Reason, SourceError
from drop_operator.discovery.http import Credentials
from drop_operator.discovery.prometheus import PrometheusConfig, PrometheusSource
from drop_operator.discovery.registry import RegistryConfig, RegistrySource, TokenCache
from drop_operator.discovery.source import Candidate, Source, SourceResult

__all__ = [
    "Candidate",
    "Credentials",
    "DiscoveryError",
    "ImageFilter",
    "InvalidImageFilterError",
    "InvalidReferences",
    "PrometheusConfig",
    "PrometheusSource",
    "RankedImage",
    "Ranking",
    "Reason",
    "RegistryConfig",
    "RegistrySource",
    "Source",
    "SourceCandidates",
    "SourceError",
    "SourceResult",
    "TokenCache",
    "rank",
]
