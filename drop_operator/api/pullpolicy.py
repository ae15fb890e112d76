"""PullPolicy: how fast images may be pulled onto nodes.

Thundering herds of pulls are what this operator exists to avoid, so pacing is explicit and every
limit has a default that is safe on a busy cluster. A CachedImage without ``pullPolicyRef`` uses
:data:`DEFAULT_PULL_POLICY`, which has exactly the schema defaults below.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from drop_operator.api.duration import (
    Duration,
    duration_guard,
    duration_rule,
    parse_duration,
    positive_duration,
)
from drop_operator.api.meta import KubeModel, KubeObject, cel

__all__ = ["DEFAULT_PULL_POLICY", "FailureBackoff", "PullPolicy", "PullPolicySpec", "PullPolicyStatus"]


class FailureBackoff(KubeModel):
    """Per-node delay before retrying a failed pull: ``initial`` doubling up to ``max``, +/- ``jitter``."""

    model_config = KubeModel.model_config | {
        "json_schema_extra": cel(
            (
                "!has(self.initial) || !has(self.max)"
                f" || {duration_guard('self.initial')} || {duration_guard('self.max')}"
                " || duration(self.max) >= duration(self.initial)",
                "failureBackoff.max must be >= failureBackoff.initial",
            )
        )
    }

    initial: Duration = Field("30s", json_schema_extra=positive_duration("failureBackoff.initial"))
    max: Duration = Field("30m", json_schema_extra=positive_duration("failureBackoff.max"))
    jitter: float = Field(0.2, ge=0, le=1)
    """Fraction of the delay added or removed at random, so failed nodes do not retry in lockstep."""

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> Self:
        if parse_duration(self.max) < parse_duration(self.initial):
            raise ValueError("failureBackoff.max must be >= failureBackoff.initial")
        return self


class PullPolicySpec(KubeModel):
    """Pacing limits for the images that reference this policy."""

    max_concurrent_nodes: int = Field(2, ge=1, le=1000)
    """Nodes pulling the same image at once."""
    max_concurrent_pulls: int = Field(5, ge=1, le=10000)
    """Pulls in flight across all images using this policy."""
    max_pulls_per_node: int = Field(1, ge=1, le=100)
    """Pulls in flight on one node (across images using this policy)."""
    min_delay_between_pulls: Duration = "2s"
    """Minimum gap between starting two pulls under this policy, across all of its images.

    It paces pod creation (API server) and pulls (registry) for the whole policy; the
    per-image and per-node limits above come on top."""
    failure_backoff: FailureBackoff = Field(default_factory=FailureBackoff, json_schema_extra={"default": {}})
    pull_timeout: Duration = Field("10m", json_schema_extra=positive_duration("pullTimeout"))
    """Deadline of one pull pod (``activeDeadlineSeconds``); a hung pull counts as a failure."""
    repull_interval: Duration | None = Field(
        None,
        json_schema_extra=duration_rule(
            "duration(self) >= duration('1m')", "repullInterval must be at least 1m"
        ),
    )
    """Re-pull cached images this often (gradually, within the limits above); unset means never."""


class PullPolicyStatus(KubeModel):
    """How the policy is used."""

    observed_generation: int | None = None
    images_using: int = 0
    """CachedImages that reference this policy."""


class PullPolicy(KubeObject):
    """Pacing shared by the CachedImages that reference it."""

    spec: PullPolicySpec = Field(default_factory=PullPolicySpec)
    status: PullPolicyStatus = Field(default_factory=PullPolicyStatus)


#: What a CachedImage without ``pullPolicyRef`` uses: the schema defaults (2 nodes per image, 5 pulls
#: in flight, 1 per node, 2s between starts, 30s..30m backoff, 10m deadline, no periodic re-pull).
DEFAULT_PULL_POLICY = PullPolicySpec()
