"""The pull settings a CachedImageSet hands down to each CachedImage it creates.

Both kinds share this model so that "bring the child back to the set's template" is a plain
comparison of the same fields, and a field added here reaches both CRDs at once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drop_operator.api.meta import KubeModel, LocalObjectReference, Toleration
from drop_operator.api.warmup import WarmUp

__all__ = ["ImagePullPolicy", "PullTemplate"]

ImagePullPolicy = Literal["Always", "IfNotPresent"]


class PullTemplate(KubeModel):
    """Where and how an image is pulled onto nodes."""

    image_pull_policy: ImagePullPolicy = "IfNotPresent"
    """``IfNotPresent`` only fetches what a node lacks; ``Always`` re-checks the registry on every pull."""
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list, max_length=16)
    """Secrets in the operator's namespace used by pull pods."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Only nodes with all these labels are targeted."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64)
    """Taints of target nodes that pull pods tolerate (NoSchedule/NoExecute taints exclude a node otherwise)."""
    pull_policy_ref: LocalObjectReference | None = None
    """PullPolicy that paces the pulls; without one the documented defaults apply."""
    warm_up: WarmUp | None = None
    """Set: new nodes carrying the warming taint ``warmUp.taintKey`` keep it until these images are
    cached on them (or ``warmUp.maxWait`` has passed). Pull pods tolerate the taint, and pulls onto
    warming nodes are admitted before the others of the pool. Unset: these images do not gate
    warm-up and are pulled onto a node once its warming taint is gone."""

    def template(self) -> PullTemplate:
        """Just the inherited fields, e.g. to compare a child against its set."""
        return PullTemplate.model_validate(self.model_dump(include=set(PullTemplate.model_fields)))
