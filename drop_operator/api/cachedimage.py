"""CachedImage: one image reference to keep present on every target node.

``spec.image`` is the repository (``registry.example.com/group/app``), the version is ``tag`` or
``digest`` (never both); the full reference is :attr:`CachedImageSpec.reference`. Status holds
counts and a bounded list of recent failures rather than per-node entries, so its size does not
grow with the cluster.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from drop_operator.api.meta import Condition, KubeModel, KubeObject, Timestamp, cel, list_map
from drop_operator.api.pulltemplate import PullTemplate

__all__ = [
    "DEFAULT_TAG",
    "DEGRADED",
    "DIGEST_PATTERN",
    "MAX_PLATFORMS",
    "MAX_RECENT_FAILURES",
    "PROGRESSING",
    "READY",
    "REPOSITORY_PATTERN",
    "TAG_PATTERN",
    "CachedImage",
    "CachedImageSpec",
    "CachedImageStatus",
    "NodeFailure",
]

#: Condition types written by the node-caching reconciler.
READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"

DEFAULT_TAG = "latest"
MAX_RECENT_FAILURES = 10
MAX_PLATFORMS = 64
"""Bound of ``status.platforms`` (indexes of real images list a dozen at most)."""

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
#: Repository name of the distribution reference grammar: optional ``host[:port]/`` then lowercase path.
REPOSITORY_PATTERN = rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$"
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
# The digests image references may carry (drop_operator.imageref) and the kubelet accepts: the
# OCI image spec's registered algorithms, sha256 and sha512.
DIGEST_PATTERN = r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$"


class CachedImageSpec(PullTemplate):
    """The image to cache and the pull settings (inherited from the owning set, if any)."""

    model_config = PullTemplate.model_config | {
        "json_schema_extra": cel(
            ("!(has(self.tag) && has(self.digest))", "tag and digest are mutually exclusive")
        )
    }

    image: str = Field(min_length=1, max_length=255, pattern=REPOSITORY_PATTERN)
    """Repository without tag or digest, e.g. ``registry.example.com/group/app`` or ``nginx``."""
    tag: str | None = Field(None, pattern=TAG_PATTERN, max_length=128)
    """Tag to pull; ``latest`` when neither tag nor digest is set."""
    digest: str | None = Field(None, pattern=DIGEST_PATTERN, max_length=256)
    """Digest to pull, e.g. ``sha256:...``; pins the content."""
    rank: int | None = Field(None, ge=0, le=1_000_000)
    """Place of the image in its set's ranking, 0 first (set by the owning CachedImageSet: its static
    images in the order listed, then the discovered ones by score). When pulls of several images
    wait for room in the same PullPolicy, the best-ranked image is admitted first; an image without
    a rank comes after every ranked one."""

    @model_validator(mode="after")
    def _tag_or_digest(self) -> Self:
        if self.tag is not None and self.digest is not None:
            raise ValueError("tag and digest are mutually exclusive")
        return self

    @property
    def reference(self) -> str:
        """The full reference pull pods use: ``image:tag``, ``image@digest`` or ``image:latest``."""
        if self.digest is not None:
            return f"{self.image}@{self.digest}"
        return f"{self.image}:{self.tag or DEFAULT_TAG}"


class NodeFailure(KubeModel):
    """A recent pull failure on one node, with the kubelet's reason (``ErrImagePull``...)."""

    node: str = Field(max_length=253)
    reason: str = Field(max_length=128)
    message: str = Field("", max_length=1024)
    time: Timestamp


class CachedImageStatus(KubeModel):
    """Node counts, recent failures and conditions; bounded whatever the cluster size."""

    observed_generation: int | None = None
    target_nodes: int = 0
    """Nodes selected by ``nodeSelector`` and tolerations that are schedulable."""
    cached_nodes: int = 0
    """Target nodes where the image is known to be present."""
    pulling_nodes: int = 0
    """Target nodes with a pull in flight."""
    failed_nodes: int = 0
    """Target nodes whose last pull failed (retried with backoff)."""
    warming_nodes: int = 0
    """With ``warmUp``: target nodes that still carry the warming taint (see ``warmUp``)."""
    incompatible_nodes: int = 0
    """Nodes selected by ``nodeSelector`` and tolerations whose ``kubernetes.io/os`` and
    ``kubernetes.io/arch`` match no platform of the image: not targets (and not failures)."""
    platforms: list[str] = Field(default_factory=list, max_length=MAX_PLATFORMS)
    """The image's platforms as its registry lists them (``os/architecture[/variant]``), sorted;
    empty while unknown (then nodes are targeted by labels only)."""
    recent_failures: list[NodeFailure] = Field(default_factory=list, max_length=MAX_RECENT_FAILURES)
    """Most recent failures, newest first, at most ten."""
    resolved_digest: str | None = Field(None, max_length=256)
    """Digest the pulled reference resolved to, when known."""
    last_pulled_time: Timestamp | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=list_map("type"),
    )
    """``Ready``, ``Progressing`` and ``Degraded``."""


class CachedImage(KubeObject):
    """Keeps one image present on every target node through paced pull pods."""

    spec: CachedImageSpec
    status: CachedImageStatus = Field(default_factory=CachedImageStatus)

    @property
    def reference(self) -> str:
        """Shortcut for ``spec.reference``."""
        return self.spec.reference
