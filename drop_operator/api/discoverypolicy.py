"""DiscoveryPolicy: which sources to ask for the images that matter, and what they answered.

The spec keeps the fields and meaning of the published examples (``interval``, ``topX``,
``imageFilter``, ``sources[]`` with a ``prometheus`` or ``registry`` block and ``secretRef``); every
addition is optional and defaulted. What the schema can check, it checks (CEL rules below, evaluated
by the API server); the same rules are mirrored as pydantic validators so ``drop-operator discover
-f policy.yaml`` rejects a bad policy before it ever reaches a cluster. What no schema can check
(regular expressions, templates, reachability) is reported in conditions at reconcile time.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from drop_operator.api.duration import Duration, duration_rule, parse_duration, positive_duration
from drop_operator.api.meta import (
    DNS_LABEL_PATTERN,
    Condition,
    KubeModel,
    KubeObject,
    LocalObjectReference,
    Timestamp,
    cel,
    list_map,
)

__all__ = [
    "MAX_DISCOVERED_IMAGES",
    "MAX_SOURCES",
    "MAX_SOURCE_IMAGES",
    "READY",
    "SOURCES_HEALTHY",
    "DiscoveredImage",
    "DiscoveryPolicy",
    "DiscoveryPolicySpec",
    "DiscoveryPolicyStatus",
    "DiscoverySource",
    "DroppedCount",
    "PrometheusSourceSpec",
    "RegistrySourceSpec",
    "RepositoryStatus",
    "ScoredImage",
    "SourceImage",
    "SourceStatus",
    "SourceType",
]

#: Condition types written by the discovery reconciler.
READY = "Ready"
SOURCES_HEALTHY = "SourcesHealthy"

MAX_SOURCES = 20
MAX_DISCOVERED_IMAGES = 1000
#: Cap of a source's last-known-good list in status. Keep objects far below etcd's ~1.5 MiB limit:
#: the reconciler should store no more of a source's images than the policy's ``topX``.
MAX_SOURCE_IMAGES = 1000
_MAX_IMAGE_LENGTH = 512
_MAX_PATTERN_LENGTH = 1024

SourceType = Literal["prometheus", "registry"]

_INTERVAL_MIN = "30s"
_INTERVAL_MAX = "168h"
_INTERVAL_RULE = (
    f"duration(self) >= duration('{_INTERVAL_MIN}') && duration(self) <= duration('{_INTERVAL_MAX}')"
)
_RESERVED_NAME = r"^(prometheus|registry)-[0-9]+$"


class PrometheusSourceSpec(KubeModel):
    """A Prometheus-compatible query API (Prometheus, Mimir, Thanos, VictoriaMetrics).

    The query must return series with an ``image`` label; each series' value is that image's score
    (higher ranks first).
    """

    endpoint: str = Field(max_length=2048, pattern=r"^https?://[^\s]+$", json_schema_extra={"format": "uri"})
    """Base URL; a path such as Mimir's ``/prometheus`` is kept and ``/api/v1/query`` appended."""
    query: str = Field(min_length=1, max_length=16384)
    """PromQL returning series labelled ``image``."""
    query_type: Literal["instant", "range"] = "instant"
    """``instant`` evaluates at sync time; ``range`` evaluates over ``lookback`` and scores each image by its highest finite value."""
    lookback: Duration = Field("1h", json_schema_extra=positive_duration("lookback"))
    """Range queries: how far back the range starts."""
    step: Duration = Field("5m", json_schema_extra=positive_duration("step"))
    """Range queries: resolution step."""
    timeout: Duration = Field("30s", json_schema_extra=positive_duration("timeout"))
    """Whole-request timeout, also sent to the server as the query ``timeout``."""


class RegistrySourceSpec(KubeModel):
    """An OCI distribution registry whose tag lists yield images (newest versions first)."""

    url: str = Field(max_length=2048, pattern=r"^https?://[^\s]+$", json_schema_extra={"format": "uri"})
    """Registry base URL, e.g. ``https://registry.example.com``."""
    repositories: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        min_length=1, max_length=50
    )
    """Repository paths on that registry (without host or tag)."""
    tag_filter: str | None = Field(None, max_length=_MAX_PATTERN_LENGTH)
    """Regular expression a tag must match to be considered."""
    top_x: int = Field(10, ge=1, le=100)
    """Newest matching tags kept per repository."""
    image_template: str | None = Field(None, max_length=_MAX_PATTERN_LENGTH)
    """Go-template spelling of the image reference (``{{ .Registry }}``, ``{{ .Repository }}``, ``{{ .Tag }}``).

    Default: ``<registry host>/<repository>:<tag>``.
    """
    max_scan: int = Field(5000, ge=1, le=100000)
    """Upper bound of tags listed per repository, so huge repositories stay cheap."""
    version_pattern: str | None = Field(None, max_length=_MAX_PATTERN_LENGTH)
    """Regular expression that extracts the version used for ordering: the group named ``version``, else the first group, else the whole match."""
    timeout: Duration = Field("30s", json_schema_extra=positive_duration("timeout"))
    """Timeout of each registry request."""


class DiscoverySource(KubeModel):
    """One place to ask; exactly the block named by ``type`` is set."""

    model_config = KubeModel.model_config | {
        "json_schema_extra": cel(
            (
                "self.type != 'prometheus' || has(self.prometheus)",
                "type prometheus requires the prometheus block",
            ),
            ("self.type != 'registry' || has(self.registry)", "type registry requires the registry block"),
            (
                "!has(self.prometheus) || self.type == 'prometheus'",
                "the prometheus block is only allowed when type is prometheus",
            ),
            (
                "!has(self.registry) || self.type == 'registry'",
                "the registry block is only allowed when type is registry",
            ),
        )
    }

    type: SourceType
    """Which block configures this source."""
    name: str | None = Field(
        None,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        json_schema_extra=cel(
            (
                f"!self.matches('{_RESERVED_NAME}')",
                "names of the form <type>-<index> are reserved for unnamed sources",
            )
        ),
    )
    """Name used in status and conditions. Default: ``<type>-<index>`` (index in ``sources``)."""
    weight: float = Field(1.0, gt=0, le=1000000)
    """Multiplier applied to this source's scores before sources are merged."""
    prometheus: PrometheusSourceSpec | None = None
    registry: RegistrySourceSpec | None = None
    secret_ref: LocalObjectReference | None = None
    """Secret in the operator's namespace with credentials: ``username``/``password``, ``token``,
    ``ca.crt``, ``tls.crt``/``tls.key``, ``headers.<Name>``."""

    @model_validator(mode="after")
    def _block_matches_type(self) -> Self:
        if self.type == "prometheus" and self.prometheus is None:
            raise ValueError("type prometheus requires the prometheus block")
        if self.type == "registry" and self.registry is None:
            raise ValueError("type registry requires the registry block")
        if self.prometheus is not None and self.type != "prometheus":
            raise ValueError("the prometheus block is only allowed when type is prometheus")
        if self.registry is not None and self.type != "registry":
            raise ValueError("the registry block is only allowed when type is registry")
        return self


class DiscoveryPolicySpec(KubeModel):
    """How often to ask which sources, and how many of the best images to keep."""

    interval: Duration = Field(
        "1h",
        json_schema_extra=duration_rule(
            _INTERVAL_RULE, f"interval must be between {_INTERVAL_MIN} and {_INTERVAL_MAX}"
        ),
    )
    """Time between syncs (Go duration, 30s..168h); a spec change syncs at once."""
    top_x: int = Field(50, ge=1, le=MAX_DISCOVERED_IMAGES)
    """Number of highest-scoring images published in ``status.discoveredImages``."""
    image_filter: str | None = Field(None, max_length=_MAX_PATTERN_LENGTH)
    """Regular expression (lookaround allowed) a normalized image reference must match to be kept."""
    sources: list[DiscoverySource] = Field(
        min_length=1,
        max_length=MAX_SOURCES,
        json_schema_extra=cel(
            (
                "self.all(s, !has(s.name) || self.exists_one(t, has(t.name) && t.name == s.name))",
                "source names must be unique",
            )
        ),
    )
    """Sources, queried concurrently and independently of each other."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        seconds = parse_duration(self.interval)
        if not parse_duration(_INTERVAL_MIN) <= seconds <= parse_duration(_INTERVAL_MAX):
            raise ValueError(f"interval must be between {_INTERVAL_MIN} and {_INTERVAL_MAX}")
        names = [s.name for s in self.sources if s.name is not None]
        if len(names) != len(set(names)):
            raise ValueError("source names must be unique")
        return self

    def source_names(self) -> list[str]:
        """Effective name of each source, in order: its ``name`` or ``<type>-<index>``.

        Unique by construction: explicit names are unique (schema) and may not take the reserved
        ``<type>-<index>`` form.
        """
        return [s.name or f"{s.type}-{i}" for i, s in enumerate(self.sources)]


class ScoredImage(KubeModel):
    """An image reference with its score."""

    image: str = Field(max_length=_MAX_IMAGE_LENGTH)
    score: float


class DiscoveredImage(ScoredImage):
    """A ranked image of the policy's merged result."""

    sources: list[str] = Field(default_factory=list, max_length=MAX_SOURCES)
    """Names of the sources that reported this image."""


class SourceImage(ScoredImage):
    """An image of a source's last-known-good result."""

    repository: str | None = Field(None, max_length=255)
    """Registry sources: the repository the image's tag was listed in. A repository that fails keeps its images by this."""


class RepositoryStatus(KubeModel):
    """A repository of a registry source that failed on the source's last attempt."""

    name: str = Field(max_length=255)
    reason: str = Field(max_length=128)
    """CamelCase reason (``NotFound``, ``Unauthorized``...)."""
    last_error: str | None = Field(None, max_length=1024)
    last_success_time: Timestamp | None = None
    """When the repository last answered; its images from then are still used."""


class DroppedCount(KubeModel):
    """How many results of a source were discarded for one reason (e.g. ``MissingImageLabel``)."""

    reason: str = Field(max_length=128)
    count: int = Field(ge=0)


class SourceStatus(KubeModel):
    """Health and last-known-good result of one source.

    ``images`` is what this source last returned successfully; it survives failures and operator
    restarts (status lives in the API server), which is how a failing source keeps contributing.
    """

    name: str = Field(max_length=63)
    type: SourceType
    healthy: bool = False
    last_sync_time: Timestamp | None = None
    """Last attempt, successful or not."""
    last_success_time: Timestamp | None = None
    last_error: str | None = Field(None, max_length=1024)
    reason: str | None = Field(None, max_length=128)
    """CamelCase reason of the last failure (``Unauthorized``, ``Timeout``, ``TLSError``...)."""
    images_found: int = 0
    """Images this source yielded on its last success, before ranking and truncation."""
    dropped: list[DroppedCount] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra=list_map("reason"),
    )
    failing_repositories: list[RepositoryStatus] | None = Field(
        None,
        max_length=50,
        json_schema_extra=list_map("name"),
    )
    """Registry sources: the repositories that failed while the others answered. The source is then not healthy, its other repositories' images are current and each failing one keeps its last good images."""
    images: list[SourceImage] = Field(default_factory=list, max_length=MAX_SOURCE_IMAGES)


class DiscoveryPolicyStatus(KubeModel):
    """What the sources answered, merged and ranked, plus per-source health."""

    observed_generation: int | None = None
    last_sync_time: Timestamp | None = None
    image_count: int = 0
    discovered_images: list[DiscoveredImage] = Field(default_factory=list, max_length=MAX_DISCOVERED_IMAGES)
    """Top ``topX`` images, highest score first (ties by name). Kept when every source fails."""
    sources: list[SourceStatus] = Field(
        default_factory=list,
        max_length=MAX_SOURCES,
        json_schema_extra=list_map("name"),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=list_map("type"),
    )
    """``Ready`` and ``SourcesHealthy``."""


class DiscoveryPolicy(KubeObject):
    """Queries sources on an interval and publishes the top images in ``status.discoveredImages``."""

    spec: DiscoveryPolicySpec
    status: DiscoveryPolicyStatus = Field(default_factory=DiscoveryPolicyStatus)
